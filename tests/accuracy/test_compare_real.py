"""`qdqtool compare` on the real models: the measure next to the task metrics users trust."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from photos import turned_copies
from qdqtool.cli.main import cli

from qdqtool.accuracy.compare import CompareConfig, compare_files
from qdqtool.calibrate.observers import METHODS
from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, calibrate_file
from qdqtool.samples.images import PRESETS, write_augmented_crops

pytestmark = pytest.mark.assets

YOLO = dataclasses.replace(PRESETS["yolo"], size=(320, 320))


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def copied(images_dir: Path, target: Path, names) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(images_dir / name, target / name)
    return target


def test_text_detector_mask_iou_and_the_measure(models_dir, images_dir, tmp_path):
    text = tmp_path / "text"
    write_augmented_crops(copied(images_dir, tmp_path / "text_photo", ["text.png"]), text, 4, seed=1)
    copied(images_dir, text, ["text.png"])
    qdq = tmp_path / "ppocr.qdq.onnx"
    size = ["--preset", "rapidocr", "--size", "640"]
    assert invoke("calibrate", models_dir / "ppocrv4_det.onnx", "--data", text, *size, "-o", qdq).exit_code == 0
    page = copied(images_dir, tmp_path / "page", ["page.png"])
    result = invoke("compare", models_dir / "ppocrv4_det.onnx", qdq, "--data", page, *size, "--task", "segment",
                    "--threshold", "0.3", "--json", "--min-agreement", "0.85")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    task = payload["task"]
    print(f"ppocrv4_det on page.png: headline {payload['headline_error']:.4f}, mask IoU {task['value']:.4f}")
    assert task["metric"] == "mask IoU" and task["value"] >= 0.85 and task["reference_count"] > 1000
    (out,) = payload["outputs"].values()
    assert out["channel_axis"] is None          # a one-channel probability map is one channel
    assert out["crossed_rate"] == pytest.approx(1 - task["value"], abs=1e-5)   # the same sets, seen from the measure
    assert 0 < payload["headline_error"] < 0.5


def test_orientation_classifier_top1_and_the_measure(models_dir, images_dir, tmp_path):
    calib = copied(images_dir, tmp_path / "calib", sorted(p.name for p in images_dir.iterdir())[::2])
    qdq = tmp_path / "cls.qdq.onnx"
    assert invoke("calibrate", models_dir / "orientation_cls.onnx", "--data", calib, "--preset", "imagenet",
                  "--method", "mse", "-o", qdq).exit_code == 0
    turned = turned_copies(images_dir, tmp_path / "turned")
    result = invoke("compare", models_dir / "orientation_cls.onnx", qdq, "--data", turned, "--preset", "imagenet",
                    "--task", "classify", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    (name,) = payload["top1"]
    assert payload["top1"][name]["reference_count"] == 8
    assert payload["task"]["value"] == payload["top1"][name]["value"] == 1.0
    assert payload["outputs"][name]["channel_axis"] is None and payload["headline_error"] < 0.2


def test_yolov8n_measure_and_detection_f1_move_together_over_the_methods(models_dir, images_dir, tmp_path):
    """Calibrate once per --method on a few photos; on crops of all photos the headline error must order the methods
    as detection F1 does (where F1 differs), and the cosine over the whole output cannot tell them apart."""
    names = sorted(p.name for p in images_dir.iterdir())
    calib = copied(images_dir, tmp_path / "calib", names[::2])
    evaluate = tmp_path / "eval"
    write_augmented_crops(images_dir, evaluate, 24, seed=7)
    copied(images_dir, evaluate, names)
    rows = {}
    for method in METHODS:
        out = tmp_path / f"{method}.onnx"
        calibrate_file(models_dir / "yolov8n_320.onnx", calib, CalibrationOutputs(model=out),
                       CalibrationConfig(method=method, preprocess=YOLO))
        result = compare_files(models_dir / "yolov8n_320.onnx", out, evaluate,
                               CompareConfig(task="detect", preprocess=YOLO))
        rows[method] = (result.headline, result.task.value, result.errors.outputs["output0"].cosine)
        print(f"yolov8n {method:10s} headline {rows[method][0]:.4f}  F1 {rows[method][1]:.3f}  "
              f"cosine {rows[method][2]:.5f}  ({result.task.reference_count} FP32 detections)")
    worst_f1 = min(rows, key=lambda m: rows[m][1])
    assert max(rows, key=lambda m: rows[m][0]) == worst_f1
    alike = opposite = 0
    for a in METHODS:
        for b in METHODS:
            f1_gap = rows[a][1] - rows[b][1]
            if a < b and abs(f1_gap) > 0.02:
                same_order = (rows[a][0] - rows[b][0]) * -f1_gap > 0
                alike, opposite = alike + same_order, opposite + (not same_order)
    assert alike > opposite, rows
