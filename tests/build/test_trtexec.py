"""The printed trtexec command per TensorRT version: precision flags, shapes, workspace, detailed layer info."""

from __future__ import annotations

from pathlib import Path

from qdqtool.build.config import BuildConfig
from qdqtool.build.shapes import parse_shapes
from qdqtool.build.trtexec import layer_info_path, shell_line, trtexec_command, trtexec_commands
from qdqtool.samples.images import Preprocess

STATIC = [("images", (1, 3, 320, 320))]
TAIL = ["--profilingVerbosity=detailed", "--exportLayerInfo=out/yolo.layerinfo.json"]


def _config(**options) -> BuildConfig:
    return BuildConfig(model=Path("out/yolo.qdq.onnx"), engine=Path("out/yolo.engine"), **options)


def test_tensorrt_10_strongly_typed_by_default():
    command = trtexec_command(_config(), STATIC, 10)
    assert list(command.argv) == ["trtexec", "--onnx=out/yolo.qdq.onnx", "--saveEngine=out/yolo.engine",
                                  "--stronglyTyped", *TAIL]
    assert command.note == "" and layer_info_path(Path("out/yolo.engine")) == Path("out/yolo.layerinfo.json")


def test_tensorrt_10_weakly_typed_int8_and_fp16():
    assert trtexec_command(_config(weakly_typed=True), STATIC, 10).argv[3:-2] == ("--int8",)
    assert trtexec_command(_config(fp16=True), STATIC, 10).argv[3:-2] == ("--int8", "--fp16")


def test_tensorrt_11_takes_no_precision_flags():
    command = trtexec_command(_config(), STATIC, 11)
    assert list(command.argv[3:]) == TAIL and "no precision flags" in command.note
    weak = trtexec_command(_config(fp16=True), STATIC, 11)
    assert list(weak.argv[3:]) == TAIL and weak.note.startswith("weak typing/FP16 were asked for but")


def test_dynamic_inputs_get_shapes_and_workspace_is_passed():
    inputs = [("images", (-1, 3, -1, -1)), ("scale", (None, 2))]
    config = _config(shapes=parse_shapes(["images:1x3x320x320/1x3x640x640/4x3x640x640", "scale:1x2"]),
                     workspace_mib=2048)
    argv = trtexec_command(config, inputs, 10).argv
    assert argv[4:9] == ("--minShapes=images:1x3x320x320", "--optShapes=images:1x3x640x640",
                         "--maxShapes=images:4x3x640x640", "--shapes=scale:1x2", "--memPoolSize=workspace:2048M")
    missing = trtexec_command(_config(), [("images", (-1, 3, 320, 320))], 10)
    assert "dynamic input(s) images need --minShapes/--optShapes/--maxShapes" in missing.note


def test_one_command_per_version_unless_detected_or_given():
    assert [c.tensorrt_major for c in trtexec_commands(_config(), None, STATIC)] == [10, 11]
    assert [c.tensorrt_major for c in trtexec_commands(_config(), 11, STATIC)] == [11]
    assert [c.tensorrt_major for c in trtexec_commands(_config(trtexec_major=10), 11, STATIC)] == [10]


def test_an_onnx_runtime_engine_name_becomes_a_plan():
    config = BuildConfig(model=Path("m.onnx"), engine=Path("out/m.engine.onnx"))
    argv = trtexec_command(config, STATIC, 10).argv
    assert argv[2] == "--saveEngine=out/m.engine.plan" and argv[-1] == "--exportLayerInfo=out/m.engine.layerinfo.json"


def test_shell_line_quotes_paths_with_spaces():
    config = BuildConfig(model=Path("my models/a.onnx"), engine=Path("e.plan"))
    assert shell_line(trtexec_command(config, STATIC, 11)).startswith("trtexec '--onnx=my models/a.onnx' ")


def test_static_inputs_get_no_shapes_even_with_a_profile():
    """trtexec refuses shapes for a static model ("Static model does not take explicit shapes")."""
    argv = trtexec_command(_config(shapes=parse_shapes(["images:1x3x320x320"])), STATIC, 10).argv
    assert not any(flag.startswith(("--shapes", "--minShapes", "--optShapes", "--maxShapes")) for flag in argv)
    mixed = trtexec_command(_config(shapes=parse_shapes(["images:1x3x320x320", "scale:1x2"])),
                            [*STATIC, ("scale", (-1, 2))], 10).argv
    assert [flag for flag in mixed if flag.startswith("--shapes")] == ["--shapes=scale:1x2"]


def test_a_dynamic_image_input_gets_the_size_the_run_used():
    dynamic = [("images", (-1, 3, -1, -1))]
    command = trtexec_command(_config(preprocess=Preprocess(size=(320, 480))), dynamic, 10)
    assert "--shapes=images:1x3x320x480" in command.argv and command.note == ""
    nhwc = trtexec_command(_config(preprocess=Preprocess(size=(64, 32), layout="NHWC")), [("x", (2, -1, -1, 3))], 11)
    assert "--shapes=x:2x64x32x3" in nhwc.argv
    given = trtexec_command(_config(preprocess=Preprocess(size=(320, 320)),
                                    shapes=parse_shapes(["images:1x3x320x320/1x3x640x640/4x3x640x640"])), dynamic, 10)
    assert "--optShapes=images:1x3x640x640" in given.argv  # a profile given wins over the run's size
    unknown = trtexec_command(_config(preprocess=Preprocess(size=(320, 320))), [("images", (-1, -1, -1, -1))], 10)
    assert "dynamic input(s) images need" in unknown.note


def test_an_onnx_runtime_default_output_name_becomes_an_engine():
    config = BuildConfig(model=Path("out/m.qdq.onnx"), engine=Path("out/m.qdq.ort.onnx"))
    argv = trtexec_command(config, STATIC, 10).argv
    assert argv[2] == "--saveEngine=out/m.qdq.engine" and argv[-1] == "--exportLayerInfo=out/m.qdq.layerinfo.json"
