"""TensorRT backend: version dispatch, option handling and parser messages run everywhere; the real build needs a
GPU and the tensorrt package (marked `gpu`, skipped elsewhere). Nothing here imitates TensorRT."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
import tiny
from onnx import TensorProto, helper, numpy_helper

from qdqtool.build.pipeline import BuildConfig, choose_backend
from qdqtool.build.shapes import parse_shapes
from qdqtool.build.tensorrt_backend import (
    INSTALL_HINT,
    parser_error_line,
    plan_network,
    profiles_for_inputs,
    tensorrt_status,
    version_major,
)
from qdqtool.errors import BackendUnavailable, ConfigError, QdqError

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_version_major():
    assert version_major("10.3.0.26") == 10
    assert version_major("11.0.0") == 11
    with pytest.raises(BackendUnavailable):
        version_major("unknown")


def test_tensorrt_11_is_strongly_typed_without_flags():
    plan = plan_network(11)
    assert not plan.strongly_typed_flag and plan.builder_flags == ()
    with pytest.raises(QdqError, match="strongly typed"):
        plan_network(11, fp16=True)
    with pytest.raises(QdqError, match="strongly typed"):
        plan_network(12, weakly_typed=True)


def test_tensorrt_10_strongly_typed_by_default_or_weak_with_flags():
    assert plan_network(10).strongly_typed_flag and plan_network(10).builder_flags == ()
    weak = plan_network(10, weakly_typed=True)
    assert not weak.strongly_typed_flag and weak.builder_flags == ("INT8",)
    assert plan_network(10, fp16=True).builder_flags == ("INT8", "FP16")


def test_older_tensorrt_is_refused():
    with pytest.raises(BackendUnavailable, match="too old"):
        plan_network(8)


def test_profiles_for_dynamic_inputs():
    shapes = parse_shapes("images:1x3x320x320/1x3x640x640/4x3x640x640")
    profiles = profiles_for_inputs([("images", (-1, 3, -1, -1))], shapes)
    assert [p.name for p in profiles] == ["images"] and profiles[0].max == (4, 3, 640, 640)
    assert profiles_for_inputs([("x", (1, 3, 8, 8))], {}) == []
    with pytest.raises(QdqError, match="--shapes images:MIN/OPT/MAX"):
        profiles_for_inputs([("images", (-1, 3, 320, 320))], {})
    with pytest.raises(QdqError, match="does not have"):
        profiles_for_inputs([("images", (1, 3, 320, 320))], parse_shapes("input:1x3x320x320"))
    with pytest.raises(QdqError, match="fixed at 3"):
        profiles_for_inputs([("images", (-1, 3, -1, -1))], parse_shapes("images:1x4x320x320"))
    with pytest.raises(QdqError, match="rank"):
        profiles_for_inputs([("images", (-1, 3, -1, -1))], parse_shapes("images:1x3x320"))


def test_parser_error_line_names_the_node():
    line = parser_error_line("/model.0/conv/Conv", "Conv", "bad weights")
    assert line == "node '/model.0/conv/Conv' (Conv): bad weights"
    assert parser_error_line("", "", "no graph") == "the model: no graph"


def test_backend_build_config_validation(tmp_path):
    with pytest.raises(ConfigError, match="backend 'tvm'") as raised:
        BuildConfig(model=tmp_path / "m.onnx", engine=tmp_path / "e", backend="tvm")
    assert raised.value.settings == ("backend",)
    with pytest.raises(ConfigError, match="timed runs") as raised:
        BuildConfig(model=tmp_path / "m.onnx", engine=tmp_path / "e", runs=0)
    assert raised.value.settings == ("runs", "warmup")


@pytest.mark.skipif(HAVE_TENSORRT, reason="tensorrt is installed here")
def test_without_tensorrt_auto_picks_onnxruntime_and_trt_says_how_to_install():
    usable, why = tensorrt_status()
    assert not usable and "not installed" in why
    backend, reason = choose_backend("auto")
    assert backend == "ort" and "ONNX Runtime" in reason
    with pytest.raises(BackendUnavailable) as info:
        choose_backend("trt")
    assert str(info.value) == INSTALL_HINT and "\n" not in str(info.value)


def _tiny_qdq_conv(path):
    rng = np.random.default_rng(0)
    weight = np.clip(np.round(rng.standard_normal((8, 3, 3, 3)) * 40), -127, 127).astype(np.int8)
    inits = [numpy_helper.from_array(np.array(1 / 127, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(weight, "w_q"),
             numpy_helper.from_array(np.full(8, 0.005, np.float32), "w_s"),
             numpy_helper.from_array(np.zeros(8, np.int8), "w_z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="x_Q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xdq"], name="x_DQ"),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], name="w_DQ", axis=0),
             helper.make_node("Conv", ["xdq", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 32, 32])], inits)
    onnx.save(tiny.make_model(graph), path)


@pytest.mark.gpu
def test_real_build_reports_int8_convolution(tmp_path):
    if not HAVE_TENSORRT or not tensorrt_status()[0]:
        pytest.skip("needs the tensorrt package and an NVIDIA GPU")
    from qdqtool.build.tensorrt_backend import build_with_tensorrt

    _tiny_qdq_conv(tmp_path / "tiny.onnx")
    result = build_with_tensorrt(BuildConfig(model=tmp_path / "tiny.onnx", engine=tmp_path / "tiny.plan",
                                             backend="trt", runs=5, warmup=1))
    assert result.engine.stat().st_size > 0
    convs = [layer for layer in result.report.layers if "conv" in layer.layer_type.lower()]
    assert convs and all(layer.computes_int8 for layer in convs)
    assert result.report.precision_known
