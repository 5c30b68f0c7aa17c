"""`qdqtool compare` on tiny models where the worst channel and the worst quantizer are known by construction."""

import json
import sys

import numpy as np
import onnx
import pytest
import tiny
import tiny_qdq
from click.testing import CliRunner
from qdqtool.cli.main import cli

from qdqtool.onnxgraph.graph import GraphView


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def npy_folder(folder, shape, count=4, seed=0):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        np.save(folder / f"s{i}.npy", rng.uniform(0, 1, shape).astype(np.float32))
    return folder


def detector_head(broken_channel=None):
    """[1, 8, 200] -> [1, 8, 200]: four coordinate channels (x 300) and four score channels (x 1)."""
    b = tiny.Builder()
    x = b.input("x", [1, 8, 200])
    gain = np.array([300, 300, 300, 300, 1, 1, 1, 1], np.float32)
    if broken_channel is not None:
        gain[broken_channel] = 0.0
    return b.model([b.op("Mul", [x, b.const(gain.reshape(1, 8, 1))], "head")])


def test_one_destroyed_channel_fails_max_error_while_cosine_stays_high(tmp_path):
    fp32, broken = tmp_path / "fp32.onnx", tmp_path / "broken.onnx"
    onnx.save(detector_head(), fp32)
    onnx.save(detector_head(broken_channel=6), broken)
    data = npy_folder(tmp_path / "data", (1, 8, 200))
    result = invoke("compare", fp32, broken, "--data", data, "--json", "--max-error", "0.1")
    assert result.exit_code == 3, result.output
    payload = json.loads(result.stdout)
    out = payload["outputs"]["head_out"]
    assert out["cosine"] > 0.999 and out["worst_channel"] == 6 and out["channel_axis"] == 1
    assert payload["headline_error"] > 0.5
    assert "gate failed: headline error" in result.stderr
    same = invoke("compare", fp32, fp32, "--data", data, "--max-error", "0.1", "--min-sqnr", "40")
    assert same.exit_code == 0, same.output
    assert "headline error 0.0000" in same.stdout


@pytest.fixture
def resnet_pair(tmp_path):
    """resnet_block with QAT-style Q/DQ; the second conv's input gets a range 50x too small (clips hard)."""
    model = tiny.resnet_block()
    ranges = tiny_qdq.float_ranges(model)
    view = GraphView(model)
    second = next(n for n in view.nodes if n.op_type == "Conv" and n.input[0] != view.input_names[0])
    ranges[second.input[0]] /= 50
    fp32, qdq = tmp_path / "fp32.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, fp32)
    onnx.save(tiny_qdq.qat(model, amax=ranges), qdq)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return fp32, qdq, npy_folder(tmp_path / "data", shape, count=3), second


def test_per_tensor_names_the_clipped_quantizer_first(resnet_pair):
    fp32, qdq, data, second = resnet_pair
    result = invoke("compare", fp32, qdq, "--data", data, "--per-tensor", "--json")
    assert result.exit_code == 0, result.output
    tensors = json.loads(result.stdout)["tensors"]
    assert len(tensors) == 4
    assert tensors[0]["tensor"] == second.input[0]
    assert tensors[0]["feeds"] == "Conv input" and second.name in tensors[0]["consumers"]
    worst_marginal = max(tensors, key=lambda t: t["marginal_error"])
    assert worst_marginal["tensor"] == second.input[0]
    text = invoke("compare", fp32, qdq, "--data", data, "--per-tensor", "--marginal-samples", "0")
    assert f"{second.input[0]} (" in text.stdout and ", marginal " not in text.stdout


def test_plot_draws_the_per_tensor_errors(resnet_pair, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the [plot] extra) is not installed")
    fp32, qdq, data, _ = resnet_pair
    picture = tmp_path / "errors.png"
    result = invoke("compare", fp32, qdq, "--data", data, "--plot", picture)
    assert result.exit_code == 0, result.output
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_refusals_are_one_line(resnet_pair, tmp_path):
    fp32, qdq, data, _ = resnet_pair
    bad_axis = invoke("compare", fp32, qdq, "--data", data, "--channel-axis", "nonsense")
    assert bad_axis.exit_code == 2 and "OUTPUT:AXIS" in bad_axis.output
    no_data = invoke("compare", fp32, qdq)
    assert no_data.exit_code == 2 and "compare needs real samples: pass --data DIR" in no_data.stderr
    other = tmp_path / "other.onnx"
    onnx.save(detector_head(), other)
    mismatch = invoke("compare", fp32, other, "--data", data)
    assert mismatch.exit_code == 1 and "qdqtool: error:" in mismatch.stderr
    floor = invoke("compare", fp32, qdq, "--data", data, "--min-agreement", "0.9")
    assert floor.exit_code == 2


def test_per_tensor_marks_the_residual_skip_of_a_calibrated_model(resnet_pair, tmp_path):
    fp32, _, data, _ = resnet_pair
    calibrated = tmp_path / "calibrated.onnx"
    assert invoke("calibrate", fp32, "--data", data, "-o", calibrated).exit_code == 0
    result = invoke("compare", fp32, calibrated, "--data", data, "--per-tensor", "--marginal-samples", "1", "--json")
    assert result.exit_code == 0, result.output
    feeds = [t["feeds"] for t in json.loads(result.stdout)["tensors"]]
    assert any("Add skip" in f for f in feeds), feeds


def test_plot_without_matplotlib_is_one_line_before_any_work(resnet_pair, tmp_path, monkeypatch):
    fp32, qdq, data, _ = resnet_pair
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # what `import matplotlib` meets when it is absent
    picture = tmp_path / "errors.png"
    result = invoke("compare", fp32, qdq, "--data", data, "--plot", picture)
    assert result.exit_code == 1 and not picture.exists()
    assert result.stderr.strip() == "qdqtool: error: drawing a plot needs matplotlib: pip install 'qdqtool[plot]'"
