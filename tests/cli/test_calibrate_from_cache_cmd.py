"""`qdqtool calibrate --from-cache` through the CLI: no data needed, what the cache gave, JSON, one-line refusals."""

import json

import onnx
from click.testing import CliRunner
from qdqtool.cli.main import cli

from qdqtool.onnxgraph.qdqview import read_qdq


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_from_cache_needs_no_data_and_says_what_it_used(resnet, tmp_path):
    model, data = resnet
    cache = tmp_path / "c.cache"
    assert invoke("calibrate", model, "--data", data, "--method", "max", "-o", tmp_path / "a.onnx",
                  "--cache", cache).exit_code == 0
    out = tmp_path / "b.onnx"
    result = invoke("calibrate", model, "--from-cache", cache, "-o", out)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"wrote {out} (scales from {cache}; ranges in {tmp_path / 'b.ranges.json'})"
    assert any(line.startswith("cache c.cache (TRT-100300-EntropyCalibration2, TensorRT 10.3.0): ") for line in lines)
    assert any(line.startswith("cache entries used by the plan: ") for line in lines)
    assert any(line.startswith("  unused: ") and "convolution side of a residual Add" in line for line in lines)
    first, again = read_qdq(onnx.load(tmp_path / "a.onnx")), read_qdq(onnx.load(out))
    assert {e.tensor: e.scale for e in first.edges.values()} == {e.tensor: e.scale for e in again.edges.values()}


def test_from_cache_json(resnet, tmp_path):
    model, data = resnet
    cache = tmp_path / "c.cache"
    invoke("calibrate", model, "--data", data, "-o", tmp_path / "a.onnx", "--cache", cache)
    result = invoke("calibrate", model, "--from-cache", cache, "-o", tmp_path / "b.onnx", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["from_cache"]
    assert report["header"] == "TRT-100300-EntropyCalibration2" and report["calibrator"] == "EntropyCalibration2"
    assert report["used"] + report["unused"] == report["matched"] == report["entries"]
    assert report["used_as"]["quantizer scale"] == json.loads(result.stdout)["quantized_activations"]


def test_without_data_or_cache_the_message_names_both(resnet, tmp_path):
    model, _ = resnet
    result = invoke("calibrate", model, "-o", tmp_path / "o.onnx")
    assert result.exit_code == 2   # a missing option: click's usage error
    assert "--data DIR" in result.stderr and "--from-cache CACHE" in result.stderr
