"""`qdqtool report`: table and summary on stdout, --json, --output, and --fail-on exit statuses (3 = gate failed)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from qdqtool.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, ["report", *map(str, args)])


def test_table_and_summary(trt_fixtures):
    result = run(trt_fixtures / "trex_mobilenet_v2_residuals_qat.graph.json")
    assert result.exit_code == 0, result.output
    assert "CaskConvolution" in result.output and " residual " in result.output
    assert "fused residual convolutions: 10, with INT8 output: 10" in result.output


def test_gate_failure_exits_3_and_json_output(trt_fixtures, tmp_path):
    out = tmp_path / "layers.json"
    result = run(trt_fixtures / "trex_mobilenet_qat.graph.json", "--json", "--fail-on", "float-add", "-o", out)
    assert result.exit_code == 3
    payload = json.loads(result.stdout)
    assert payload["summary"]["gate_counts"]["float-add"] == 10
    assert json.loads(out.read_text())["summary"]["layer_count"] == 73
    assert "gate failed: float-add: 10" in result.stderr


def test_good_engine_passes_float_add_gate(trt_fixtures):
    assert run(trt_fixtures / "trex_mobilenet_v2_residuals_qat.graph.json", "--fail-on", "float-add").exit_code == 0


def test_names_only_refuses_precision_gates(trt_fixtures):
    names_only = trt_fixtures / "detr_names_only_layer_info.json"
    result = run(names_only, "--fail-on", "float-add", "--summary-only")
    assert result.exit_code == 1 and "profilingVerbosity=detailed" in result.stderr
    # its 247 "Reformatting CopyNode" layers are layout copies, no Q/DQ: the reformat gate (judged by name) passes
    assert run(names_only, "--fail-on", "reformat", "--summary-only").exit_code == 0


def test_unknown_gate_and_missing_file_are_user_errors(tmp_path):
    assert run(tmp_path / "none.json").exit_code == 1
    result = run(tmp_path / "none.json", "--fail-on", "nope")
    assert result.exit_code == 2 and "float-add" in result.stderr   # a bad option value: usage error


def test_an_onnxruntime_build_report_is_not_judged_or_compared_as_tensorrt(tmp_path):
    """build's report of an ONNX Runtime build: report --fail-on refuses it (its nodes are not TensorRT's layers) and
    --compare says the prediction cannot be observed there, never 'DIFFERS'."""
    from tiny_build import tiny_qdq_conv

    model, layers = tmp_path / "tiny.qdq.onnx", tmp_path / "tiny.json"
    tiny_qdq_conv(model)
    built = CliRunner().invoke(cli, ["build", str(model), "--backend", "ort", "--no-latency", "--report", str(layers)])
    assert built.exit_code == 0, built.output
    gated = CliRunner().invoke(cli, ["report", str(layers), "--fail-on", "reformat"])
    assert gated.exit_code == 1 and "built by ONNX Runtime" in gated.stderr and "qdqtool check" in gated.stderr
    compared = CliRunner().invoke(cli, ["report", str(layers), "--compare", str(model), "--show", "summary"])
    assert compared.exit_code == 0, compared.output
    assert "this is an ONNX Runtime build" in compared.stdout and "DIFFERS" not in compared.stdout
    assert "not observable (ONNX Runtime build)" in compared.stdout
