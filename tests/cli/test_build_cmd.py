"""`qdqtool build` end to end on the real YOLOv8n: calibrate (qdqtool's own, max method, few photos), then build with
ONNX Runtime, directly and through `auto`, and check the engine artifact and the layer report; and on a tiny model,
the printed trtexec commands and option errors."""

from __future__ import annotations

import importlib.util
import json

import onnx
import pytest
from click.testing import CliRunner
from qdqtool.cli.main import cli
from tiny_build import tiny_qdq_conv

DATA = ["--preset", "yolo", "--size", "320", "--max-samples", "4"]


@pytest.fixture(scope="module")
def yolo_qdq(models_dir, images_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("build")
    out = folder / "yolov8n.qdq.onnx"
    result = CliRunner().invoke(cli, ["calibrate", str(models_dir / "yolov8n_320.onnx"), "-o", str(out),
                                      "--method", "max", "--data", str(images_dir), *DATA])
    assert result.exit_code == 0, result.output
    return out


def _build(yolo_qdq, images_dir, backend, name):
    engine, report = yolo_qdq.parent / f"{name}.engine", yolo_qdq.parent / f"{name}.layers.json"
    result = CliRunner().invoke(cli, ["build", str(yolo_qdq), "-o", str(engine), "--backend", backend,
                                      "--data", str(images_dir), *DATA, "--shapes", "images:1x3x320x320",
                                      "--runs", "5", "--warmup", "2", "--report", str(report), "--summary-only"])
    assert result.exit_code == 0, result.output
    return engine, json.loads(report.read_text()), result.output


def _quantized_convs(model: onnx.ModelProto) -> set:
    producers = {out: node for node in model.graph.node for out in node.output}
    return {node.name for node in model.graph.node if node.op_type == "Conv"
            and getattr(producers.get(node.input[0]), "op_type", "") == "DequantizeLinear"}


@pytest.mark.assets
def test_ort_build_writes_engine_and_int8_report(yolo_qdq, images_dir):
    engine, report, output = _build(yolo_qdq, images_dir, "ort", "ort")
    assert onnx.load(str(engine)).graph.node  # the optimised graph is a loadable ONNX model
    layers = report["layers"]
    qlinear = [layer for layer in layers if layer["layer_type"] == "QLinearConv"]
    assert len(qlinear) == len(_quantized_convs(onnx.load(str(yolo_qdq)))) > 0
    assert all(layer["precision"] == "int8" for layer in qlinear)
    floats = [layer for layer in layers if layer["precision"] == "fp32" and not layer["is_reformat"]]
    assert floats and all(layer["name"] for layer in floats)
    assert set(report["summary"]["fallbacks"]) <= {layer["name"] for layer in floats}
    latency = report["latency"]
    assert latency["ratio"] > 0 and latency["reference"]["median_ms"] > 0 and latency["reference_name"]
    assert "INT8/FP32 latency ratio" in output
    assert any("TensorRT does not need them" in note for note in report["notes"])
    beside = yolo_qdq.with_name("yolov8n.qdq.ranges.json")  # written by calibrate, found by build on its own
    assert any(note.startswith(f"{len(qlinear)} of ") and f"from {beside} (found beside the model" in note
               for note in report["notes"])
    assert "outputs vs FP32 (ONNX Runtime, --data samples) on 4 samples: headline error" in output


@pytest.mark.assets
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed: auto may pick it")
def test_auto_uses_onnxruntime_and_says_so(yolo_qdq, images_dir):
    engine, report, output = _build(yolo_qdq, images_dir, "auto", "auto")
    assert engine.is_file() and report["backend"].startswith("onnxruntime")
    assert any(note.startswith("backend ort:") and "TensorRT" in note for note in report["notes"])
    assert "backend ort" in output


def test_trtexec_commands_are_printed_without_tensorrt(tmp_path):
    tiny_qdq_conv(tmp_path / "tiny.onnx")
    engine = tmp_path / "tiny.engine.onnx"
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "tiny.onnx"), "-o", str(engine), "--backend", "ort",
                                      "--no-latency", "--summary-only"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("trtexec (TensorRT")]
    assert [line.split(")")[0] for line in lines] == ["trtexec (TensorRT 10", "trtexec (TensorRT 11"]
    assert f"--onnx={tmp_path / 'tiny.onnx'}" in lines[0] and "--stronglyTyped" in lines[0]
    assert "--stronglyTyped" not in lines[1] and "--exportLayerInfo=" in lines[1]
    as_json = CliRunner().invoke(cli, ["build", str(tmp_path / "tiny.onnx"), "-o", str(engine), "--backend", "ort",
                                       "--no-latency", "--trt-version", "11", "--json"])
    (command,) = json.loads(as_json.stdout)["trtexec"]
    assert command["tensorrt"] == 11 and "--profilingVerbosity=detailed" in command["command"]


@pytest.mark.parametrize("args, option", [(["--shapes", "x:1x3"], "--shapes"), (["--shapes", "nocolon"], "--shapes"),
                                          (["--shapes", "y:1x3x32x32"], "--shapes")])
def test_bad_shape_profiles_are_usage_errors(tmp_path, args, option):
    tiny_qdq_conv(tmp_path / "tiny.onnx")
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "tiny.onnx"), "-o", str(tmp_path / "e.onnx"),
                                      "--backend", "ort", *args])
    assert result.exit_code == 2 and "shape profile" in result.stderr and option in result.stderr, result.output
    assert not (tmp_path / "e.onnx").exists()


def test_onnxruntime_build_judges_tensorrt_gates_on_the_prediction(tmp_path):
    """ONNX Runtime keeps standalone Q/DQ nodes that TensorRT fuses: they are not TensorRT's Reformats, and the
    gates a CPU-only CI runner asks for are judged on check's prediction, said on the first line."""
    tiny_qdq_conv(tmp_path / "tiny.qdq.onnx")
    report = tmp_path / "tiny.json"
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "tiny.qdq.onnx"), "--backend", "ort", "--no-latency",
                                      "--report", str(report), "--fail-on", "float-add,requant-concat,reformat"])
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()[:2]
    assert first.startswith("TensorRT figures predicted") and "ONNX Runtime figures measured" in first
    assert second.startswith("TensorRT (predicted") and "reformat 0" in second
    assert "reformat layers" not in result.stdout and "Adds left in float" not in result.stdout
    payload = json.loads(report.read_text())
    assert payload["summary"]["reformat_count"] > 0  # ONNX Runtime's own Q/DQ nodes, shown under its name
    assert "standalone QuantizeLinear/DequantizeLinear nodes: " in result.stdout
    assert payload["gates"]["judged_on"] == "prediction" and payload["gates"]["counts"]["reformat"] == 0
    assert (tmp_path / "tiny.qdq.ort.onnx").is_file() and not list(tmp_path.glob("*.engine"))  # named for what it is
    assert "--saveEngine=" + str(tmp_path / "tiny.qdq.engine") in result.stdout


def test_onnxruntime_build_fails_a_gate_the_prediction_fails(tmp_path):
    tiny_qdq_conv(tmp_path / "tiny.qdq.onnx")
    model = onnx.load(str(tmp_path / "tiny.qdq.onnx"))
    conv = next(node for node in model.graph.node if node.op_type == "Conv")
    conv.input[0] = "x"  # the convolution's input no longer comes through Q/DQ: TensorRT runs it in float
    onnx.save(model, str(tmp_path / "float.onnx"))
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "float.onnx"), "--backend", "ort", "--no-latency",
                                      "--fail-on", "float-conv"])
    assert result.exit_code == 3, result.output
    assert "qdqtool: gate failed: float-conv: 1" in result.stderr and "[predicted]" in result.stderr


def test_onnxruntime_output_named_engine_is_said_to_be_onnx(tmp_path):
    tiny_qdq_conv(tmp_path / "tiny.qdq.onnx")
    engine = tmp_path / "tiny.engine"
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "tiny.qdq.onnx"), "-o", str(engine), "--backend", "ort",
                                      "--no-latency", "--show", "summary"])
    assert result.exit_code == 0, result.output
    assert onnx.load(str(engine)).graph.node and "tiny.engine holds an ONNX model" in result.stdout
