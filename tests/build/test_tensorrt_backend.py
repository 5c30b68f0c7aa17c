"""TensorRT backend: version dispatch, option handling and parser messages run everywhere; the real build needs a
GPU and the tensorrt package (marked `gpu`, skipped elsewhere). Nothing here imitates TensorRT: the control-flow tests
with a stand-in are in test_tensorrt_standin.py."""

from __future__ import annotations

import importlib.util

import pytest
from tiny_build import tiny_qdq_conv

from qdqtool.build.config import BuildConfig, BuildSettingError
from qdqtool.build.pipeline import choose_backend
from qdqtool.build.shapes import parse_shapes
from qdqtool.build.tensorrt_backend import tensorrt_status
from qdqtool.build.tensorrt_status import INSTALL_HINT, TensorRTUnavailable, TrtProblem
from qdqtool.build.trt_plan import parser_error_line, plan_network, profiles_for_inputs, version_major
from qdqtool.errors import BackendUnavailable, ConfigError

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_version_major():
    assert version_major("10.3.0.26") == 10
    assert version_major("11.0.0") == 11
    with pytest.raises(BackendUnavailable):
        version_major("unknown")


def test_tensorrt_11_is_strongly_typed_without_flags():
    plan = plan_network(11)
    assert not plan.strongly_typed_flag and plan.builder_flags == ()
    with pytest.raises(BuildSettingError) as fp16:
        plan_network(11, fp16=True)
    assert fp16.value.setting == "fp16"
    with pytest.raises(BuildSettingError) as weak:
        plan_network(12, weakly_typed=True)
    assert weak.value.setting == "weakly_typed"


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
    for inputs, shapes, says in (([("images", (-1, 3, 320, 320))], {}, "images:1x3x320x320/"),
                                 ([("images", (1, 3, 320, 320))], parse_shapes("input:1x3x320x320"), "does not have"),
                                 ([("images", (-1, 3, -1, -1))], parse_shapes("images:1x4x320x320"), "fixed at 3"),
                                 ([("images", (-1, 3, -1, -1))], parse_shapes("images:1x3x320"), "rank")):
        with pytest.raises(BuildSettingError, match=says) as info:
            profiles_for_inputs(inputs, shapes)
        assert info.value.setting == "shapes" and "--" not in str(info.value)


def test_parser_error_line_names_the_node():
    line = parser_error_line("/model.0/conv/Conv", "Conv", "bad weights")
    assert line == "node '/model.0/conv/Conv' (Conv): bad weights"
    assert parser_error_line("", "", "no graph") == "the model: no graph"


def test_backend_build_config_validation(tmp_path):
    for setting, value in (("backend", "tvm"), ("runs", 0), ("warmup", -1), ("workspace_mib", 0),
                           ("trtexec_major", 9)):
        with pytest.raises(BuildSettingError) as info:
            BuildConfig(model=tmp_path / "m.onnx", engine=tmp_path / "e", **{setting: value})
        assert info.value.setting == setting and "--" not in str(info.value)
        assert isinstance(info.value, ConfigError) and info.value.settings == (setting,)


@pytest.mark.skipif(HAVE_TENSORRT, reason="tensorrt is installed here")
def test_without_tensorrt_auto_picks_onnxruntime_and_trt_says_how_to_install():
    status = tensorrt_status()
    assert not status.usable and status.problem is TrtProblem.NOT_INSTALLED
    backend, _, reason = choose_backend("auto")
    assert backend == "ort" and "ONNX Runtime" in reason
    with pytest.raises(TensorRTUnavailable) as info:
        choose_backend("trt")
    assert info.value.problem is TrtProblem.NOT_INSTALLED
    assert str(info.value) == INSTALL_HINT and "\n" not in str(info.value)


@pytest.mark.gpu
def test_real_build_reports_int8_convolution(tmp_path):
    if not HAVE_TENSORRT or not tensorrt_status().usable:
        pytest.skip("needs the tensorrt package and an NVIDIA GPU")
    from qdqtool.build.tensorrt_backend import build_with_tensorrt

    tiny_qdq_conv(tmp_path / "tiny.onnx")
    result = build_with_tensorrt(BuildConfig(model=tmp_path / "tiny.onnx", engine=tmp_path / "tiny.plan",
                                             backend="trt", runs=5, warmup=1))
    assert result.engine.stat().st_size > 0
    convs = [layer for layer in result.report.layers if "conv" in layer.layer_type.lower()]
    assert convs and all(layer.computes_int8 for layer in convs)
    assert result.report.precision_known
    if importlib.util.find_spec("cuda") is not None:  # cuda-python, installed by qdqtool[trt]
        latency = result.report.latency
        assert latency is not None and latency.engine.median_ms > 0 and latency.reference is not None, \
            result.report.notes
