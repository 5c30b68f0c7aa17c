"""The accuracy bench's per-feed task components and the source photo of each held-out image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import tiny
from PIL import Image

from bench import accuracy_data as data
from bench.accuracy_metrics import metric_value, ratio_parts, task_scores
from bench.accuracy_models import BenchModel
from bench.accuracy_rescore import rescore_folder


def model(metric: str) -> BenchModel:
    def decode(outputs, threshold):   # rows of [label, score, x1, y1, x2, y2]
        return [(int(r[0]), float(r[1]), list(r[2:])) for r in outputs[0] if r[1] >= threshold]
    return BenchModel("tiny", "shared", "tiny.onnx", (1, 3, 4, 4), lambda rgb: [rgb], metric, decode, 0.5)


def boxes(*rows):
    return [np.asarray(rows, dtype=np.float32).reshape(-1, 6)]


def test_detection_components_sum_to_the_f1_and_count_each_feed():
    reference = [boxes([0, 0.9, 0, 0, 10, 10], [1, 0.8, 20, 20, 30, 30]), boxes([0, 0.9, 0, 0, 10, 10])]
    candidate = [boxes([0, 0.9, 0, 0, 10, 10]), boxes([0, 0.9, 0, 0, 10, 10], [2, 0.7, 50, 50, 60, 60])]
    scores = task_scores(model("detection"), reference, candidate)
    assert scores["per_feed"] == {"matched": [2, 2], "n_ref": [2, 1], "n_cand": [1, 2]}
    assert scores["f1"] == pytest.approx(4 / 6) == metric_value("detection", scores["per_feed"])
    assert scores["fp32_detections"] == 3


def test_mask_components_are_per_feed_intersections_and_unions():
    reference = [[np.array([[0.9, 0.9], [0.1, 0.1]])], [np.array([[0.9, 0.1], [0.1, 0.1]])]]
    candidate = [[np.array([[0.9, 0.1], [0.1, 0.1]])], [np.array([[0.9, 0.9], [0.9, 0.1]])]]
    scores = task_scores(model("mask"), reference, candidate)
    assert scores["per_feed"] == {"intersection": [1, 1], "union": [2, 3]}
    assert scores["mask_iou"] == pytest.approx(2 / 5)


def test_top1_components_are_per_feed_agreement():
    reference = [[np.array([0.1, 0.9])], [np.array([0.8, 0.2])], [np.array([0.3, 0.7])]]
    candidate = [[np.array([0.2, 0.8])], [np.array([0.4, 0.6])], [np.array([0.1, 0.9])]]
    scores = task_scores(model("top1"), reference, candidate)
    assert scores["per_feed"] == {"agree": [1, 0, 1]} and scores["top1_agree"] == 2
    numerator, denominator = ratio_parts("top1", scores["per_feed"])
    assert numerator.tolist() == [1, 0, 1] and denominator.tolist() == [1, 1, 1]


def test_nothing_to_compare_counts_as_full_agreement():
    assert metric_value("detection", {"matched": [0], "n_ref": [0], "n_cand": [0]}) == 1.0


def test_each_crop_is_named_after_the_photo_it_was_cut_from(tmp_path: Path):
    colours = {"zebra.png": (255, 0, 0), "apple.png": (0, 255, 0), "moon.png": (0, 0, 255)}
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, colour in colours.items():
        Image.new("RGB", (40, 30), colour).save(photos / name)
    sources = [photos / name for name in colours]          # not in name order: crops cycle in name order
    images = data._images(sources, 5, tmp_path / "work", "held_out")
    names = data.source_names(sources, 5)
    assert names == ["zebra.png", "apple.png", "moon.png", "apple.png", "moon.png", "zebra.png", "apple.png",
                     "moon.png"]
    dominant = [int(np.argmax(image.reshape(-1, 3).mean(0))) for image in images]
    assert dominant == [int(np.argmax(colours[name])) for name in names]


def write_tiny(path: Path, op_type: str) -> None:
    builder = tiny.Builder()
    x = builder.input("x", [1, 2])
    onnx.save(builder.model([builder.op(op_type, [x])]), str(path))


def saved_result(folder: Path, agree: int) -> None:
    rows = [{"name": "FP32", "task": {"top1_agree": 4, "feeds": 4}},
            {"name": "qdqtool --method max", "tool": "qdqtool", "task": {"top1_agree": agree, "feeds": 4}},
            {"name": "ModelOpt int8 max", "tool": "modelopt", "error_message": "exit 1"}]
    (folder / "result.json").write_text(json.dumps({"metric": "top1", "held_out_feeds": 4, "rows": rows}))


def test_saved_results_are_rescored_from_their_models_and_given_the_feeds_source_photos(tmp_path: Path):
    write_tiny(tmp_path / "fp32.onnx", "Identity")
    write_tiny(tmp_path / "qdqtool_method_max.onnx", "Neg")   # flips every argmax
    feeds = [np.array([[0.0, 1.0]], np.float32), np.array([[2.0, 1.0]], np.float32)] * 2
    saved_result(tmp_path, agree=0)
    line = rescore_folder(model("top1"), tmp_path, feeds, ["a", "a", "b", "b"])
    result = json.loads((tmp_path / "result.json").read_text())
    assert line.endswith("per-feed components added to 2 rows"), line
    assert result["rows"][1]["task"]["per_feed"] == {"agree": [0, 0, 0, 0]}
    assert result["rows"][0]["task"]["per_feed"] == {"agree": [1, 1, 1, 1]}
    assert result["held_out_sources"] == ["a", "a", "b", "b"]
    assert rescore_folder(model("top1"), tmp_path, feeds, ["a", "a", "b", "b"]).endswith("complete")


def test_a_rescore_that_disagrees_with_the_saved_figure_leaves_the_result_as_it_was(tmp_path: Path):
    write_tiny(tmp_path / "fp32.onnx", "Identity")
    write_tiny(tmp_path / "qdqtool_method_max.onnx", "Neg")
    saved_result(tmp_path, agree=3)
    before = (tmp_path / "result.json").read_text()
    line = rescore_folder(model("top1"), tmp_path, [np.array([[0.0, 1.0]], np.float32)] * 4, ["a"] * 4)
    assert "left as is" in line and (tmp_path / "result.json").read_text() == before
