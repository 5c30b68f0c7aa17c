"""`qdqtool calibrate` through the CLI on tiny models: outputs, JSON summary, and every refusal (one line, no file)."""

import hashlib
import json

import numpy as np
import onnx
import pytest
import tiny
from click.testing import CliRunner
from onnx import TensorProto, helper
from PIL import Image
from qdqtool.cli.main import cli

from qdqtool.calibrate.trtcache import read_calibration_cache


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_calibrate_writes_model_ranges_and_cache(resnet, tmp_path):
    model, data = resnet
    before = digest(model)
    out, cache = tmp_path / "out.onnx", tmp_path / "calib.cache"
    result = invoke("calibrate", model, "--data", data, "-o", out, "--cache", cache, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["samples"] == 6 and summary["counts"]["residual-add"] == {"fused-int8": 1}
    assert summary["counts"]["weighted"] == {"int8": 4}
    qdq = onnx.load(out)
    onnx.checker.check_model(qdq)
    assert sum(n.op_type == "QuantizeLinear" for n in qdq.graph.node) == summary["quantized_activations"]
    ranges = json.loads((tmp_path / "out.ranges.json").read_text())
    assert {"tensor", "amax", "method"} <= set(ranges["ranges"][0])
    methods = {r["tensor"]: r["method"] for r in ranges["ranges"]}
    assert methods["stem_relu_out"].startswith("auto: ") and methods["conv3_out"] == "max"  # outputs, for ORT builds
    assert sum(summary["auto"]["scales_by_candidate"].values()) >= 1   # auto is the default
    assert 0 < summary["output_error"]["headline_error"] < 0.2 and summary["output_error"]["samples"] == 4
    header, scales = read_calibration_cache(cache)
    assert header.startswith("TRT-") and "stem_relu_out" in scales and scales["stem_relu_out"] > 0
    assert digest(model) == before  # the input is never modified


def test_human_output_names_what_stayed_float(resnet, tmp_path):
    model, data = resnet
    result = invoke("calibrate", model, "--data", data, "-o", tmp_path / "o.onnx", "--exclude", "conv3")
    assert result.exit_code == 0
    assert "float: Conv conv3: excluded by an exclude pattern" in result.stdout
    assert "residual Adds: 1 fused-int8" in result.stdout


def test_keep_float_names_the_most_sensitive_quantizers(resnet, tmp_path):
    model, data = resnet
    result = invoke("calibrate", model, "--data", data, "-o", tmp_path / "o.onnx", "--keep-float", "1", "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert any(n.startswith("kept float by sensitivity") for n in summary["notes"])
    assert summary["counts"]["weighted"].get("float") >= 1


def assert_refused(result, out, *phrases):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("qdqtool: error: "), result.stderr
    for phrase in phrases:
        assert phrase in lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]  # no temp files left


def test_refuses_a_file_that_is_not_onnx(tmp_path, resnet):
    _, data = resnet
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"this is not a protobuf \x00\xff")
    out = tmp_path / "out.onnx"
    assert_refused(invoke("calibrate", bogus, "--data", data, "-o", out), out, "not an ONNX model")


def test_refuses_models_with_integer_kernels(tmp_path, resnet):
    _, data = resnet
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"], name="dq")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("q", TensorProto.UINT8, [1, 4])])
    path = tmp_path / "int.onnx"
    onnx.save(tiny.make_model(graph), path)
    out = tmp_path / "out.onnx"
    assert_refused(invoke("calibrate", path, "--data", data, "-o", out), out, "DynamicQuantizeLinear", "FP32 model")


def test_refuses_a_model_that_already_has_qdq(tmp_path, resnet):
    model, data = resnet
    first = tmp_path / "first.onnx"
    assert invoke("calibrate", model, "--data", data, "-o", first).exit_code == 0
    out = tmp_path / "again.onnx"
    assert_refused(invoke("calibrate", first, "--data", data, "-o", out), out, "fix-residuals")


def no_files(folder):
    pass


def wrong_shape(folder):
    np.save(folder / "a.npy", np.zeros((1, 3, 8, 8), np.float32))


def nan_in_second_sample(folder):
    sample = np.zeros((1, 4, 8, 8), np.float32)
    np.save(folder / "a.npy", sample)
    sample[0, 0, 0, 0] = np.nan
    np.save(folder / "b.npy", sample)


@pytest.mark.parametrize("fill,phrase", [(no_files, "empty"), (wrong_shape, "shape"), (nan_in_second_sample, "b.npy")])
def test_refuses_unusable_data(tmp_path, resnet, fill, phrase):
    model, _ = resnet
    folder = tmp_path / "data_in_question"
    folder.mkdir()
    fill(folder)
    out = tmp_path / "out.onnx"
    assert_refused(invoke("calibrate", model, "--data", folder, "-o", out), out, phrase)


def test_refuses_output_equal_to_input(resnet):
    model, data = resnet
    before = digest(model)
    result = invoke("calibrate", model, "--data", data, "-o", model)
    assert result.exit_code == 1 and "is the input file" in result.stderr
    assert digest(model) == before


def test_requires_data(resnet, tmp_path):
    """A missing --data is a usage error (exit 2, as for any missing option), said before any work."""
    model, _ = resnet
    out = tmp_path / "out.onnx"
    result = invoke("calibrate", model, "-o", out)
    assert result.exit_code == 2 and "calibrate needs real samples: pass --data DIR" in result.stderr, result.output
    assert not out.exists()


def test_dynamic_image_size_needs_size_option(tmp_path):
    b = tiny.Builder()
    x = b.input("x", [1, 3, "h", "w"])
    path = tmp_path / "dyn.onnx"
    onnx.save(b.model([b.conv(x, 3, 4, "c")]), path)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (20, 10), (10, 200, 30)).save(photos / "a.png")
    out = tmp_path / "out.onnx"
    assert_refused(invoke("calibrate", path, "--data", photos, "-o", out), out, "--size")
    assert invoke("calibrate", path, "--data", photos, "-o", out, "--size", "16").exit_code == 0
    assert out.exists()


def test_missing_output_folder_is_refused_before_calibrating(resnet, tmp_path):
    model, data = resnet
    out = tmp_path / "no_such_folder" / "out.onnx"
    result = invoke("calibrate", model, "--data", data, "-o", out)
    assert result.exit_code == 1 and "does not exist" in result.stderr and "calibrating" not in result.stderr
    assert not out.parent.exists()
