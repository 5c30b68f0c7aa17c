"""`qdqtool build` end to end on the real YOLOv8n: calibrate (qdqtool's own, max method, few photos), then build with
ONNX Runtime, directly and through `auto`, and check the engine artifact and the layer report."""

from __future__ import annotations

import importlib.util
import json

import onnx
import pytest
from click.testing import CliRunner
from qdqtool.cli.main import cli

pytestmark = pytest.mark.assets

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
    assert "outputs vs FP32 (ONNX Runtime, --data samples) on 4 samples: headline error" in output


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed: auto may pick it")
def test_auto_uses_onnxruntime_and_says_so(yolo_qdq, images_dir):
    engine, report, output = _build(yolo_qdq, images_dir, "auto", "auto")
    assert engine.is_file() and report["backend"].startswith("onnxruntime")
    assert any(note.startswith("backend ort:") and "TensorRT" in note for note in report["notes"])
    assert "backend ort" in output
