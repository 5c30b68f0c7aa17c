"""`qdqtool report ENGINE.json --compare MODEL.onnx` on the real engine pairs (../shared/fixtures/trt/pairs): a
per-node diff, `--fail-on mismatch` (exit 3 on a deliberately changed copy), and the reformat gates read from Origin."""

from __future__ import annotations

import gzip
import json

import onnx
import pytest
from click.testing import CliRunner
from qdqtool.cli.main import cli

PAIRS = ("resnet18-qat", "resnet18-qat-residual", "resnet18-qat-residual-qgap")


def run(*args):
    return CliRunner().invoke(cli, ["report", *map(str, args)])


def unpacked(trt_fixtures, tmp_path, name):
    model = tmp_path / f"{name}.onnx"
    with gzip.open(trt_fixtures / "pairs" / f"{name}.onnx.gz") as packed:
        model.write_bytes(packed.read())
    return trt_fixtures / "pairs" / f"{name}.engine.graph.json", model


@pytest.mark.parametrize("name", PAIRS)
def test_compare_finds_no_disagreement(trt_fixtures, tmp_path, name):
    engine, model = unpacked(trt_fixtures, tmp_path, name)
    result = run(engine, "--compare", model, "--json", "--fail-on", "mismatch")
    assert result.exit_code == 0, result.output
    compare = json.loads(result.stdout)["compare"]
    assert compare["differences"] == [] and compare["nodes_compared"] > 50
    assert all(row["predicted"] == row["observed"] for row in compare["gates"])


def test_a_changed_copy_fails_the_mismatch_gate(trt_fixtures, tmp_path):
    """Drop the Q/DQ pair in front of GlobalAveragePool_300: the pool and the last block now run in float, which the
    engine built from the original does not."""
    engine, path = unpacked(trt_fixtures, tmp_path, "resnet18-qat-residual-qgap")
    model = onnx.load(path)
    nodes = {n.name: n for n in model.graph.node}
    pool = nodes["GlobalAveragePool_300"]
    dq = next(n for n in model.graph.node if n.output[0] == pool.input[0])
    q = next(n for n in model.graph.node if n.output[0] == dq.input[0])
    pool.input[0] = q.input[0]
    model.graph.node.remove(dq)
    model.graph.node.remove(q)
    changed = tmp_path / "changed.onnx"
    onnx.save(model, changed)
    result = run(engine, "--compare", changed, "--fail-on", "mismatch", "--show", "summary")
    assert result.exit_code == 3, result.output
    assert "GlobalAveragePool_300: " in result.stdout and "gate failed: mismatch" in result.stderr


def test_mismatch_gate_needs_compare(trt_fixtures):
    result = run(trt_fixtures / "pairs" / "resnet18-qat.engine.graph.json", "--fail-on", "mismatch")
    assert result.exit_code == 1 and "--compare" in result.stderr


def test_reformat_gates_from_origin(trt_fixtures):
    """The graph input's quantizer is no defect: the best-placed engine passes; resnet18-qat's 9 standalone Qs fail."""
    pairs = trt_fixtures / "pairs"
    good = run(pairs / "resnet18-qat-residual-qgap.engine.graph.json", "--fail-on", "reformat,requant-concat",
               "--json")
    assert good.exit_code == 0, good.output
    kinds = json.loads(good.stdout)["summary"]["reformat_kinds"]
    assert kinds == {"input-quantize": 1}
    bad = run(pairs / "resnet18-qat.engine.graph.json", "--fail-on", "reformat,requant-concat", "--json")
    assert bad.exit_code == 3 and "gate failed: reformat: 9" in bad.stderr
    summary = json.loads(bad.stdout)["summary"]
    assert summary["reformat_kinds"] == {"quantize": 9, "input-quantize": 1, "convert": 1, "layout": 1}
    assert summary["layout_copies"] == ["Reformatting CopyNode for Input Tensor 0 to GlobalAveragePool_246"]
