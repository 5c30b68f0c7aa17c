"""The printed trtexec command per TensorRT version: precision flags, shapes, workspace, detailed layer info."""

from __future__ import annotations

from pathlib import Path

from qdqtool.build.config import BuildConfig
from qdqtool.build.shapes import parse_shapes
from qdqtool.build.trtexec import layer_info_path, shell_line, trtexec_command, trtexec_commands

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
