"""Calibrate the real models on some photos, check placement rules on the output, and accuracy on other photos."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from photos import turned_copies

from qdqtool.accuracy.tasks import detection_agreement, mask_iou
from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, calibrate_file
from qdqtool.errors import ModelError
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.prepare import load_model
from qdqtool.placement.plan import PlacementConfig
from qdqtool.runner import create_session
from qdqtool.samples.images import PRESETS, write_augmented_crops
from qdqtool.samples.sets import SampleSet, model_input_specs
from qdqtool.trt.kinds import Cause
from qdqtool.trt.rules import weight_channel_axis

pytestmark = pytest.mark.assets

TEXT_LIKE = ("text.png",)          # the text detector is calibrated on text, evaluated on page.png
EVAL_TEXT = "page.png"
MIN_MARGIN = 0.3                   # orientation: above the 0.3-0.5 probability movement of INT8 on natural photos


@pytest.fixture(scope="module")
def photos(images_dir, tmp_path_factory):
    """Even-numbered photos (plus augmented crops of them) calibrate, odd-numbered photos evaluate."""
    root = tmp_path_factory.mktemp("photos")
    names = sorted(p.name for p in images_dir.iterdir())
    calib, held_out = root / "calib", root / "eval"
    calib.mkdir()
    held_out.mkdir()
    for index, name in enumerate(names):
        shutil.copy(images_dir / name, (calib if index % 2 == 0 else held_out) / name)
    crops = root / "calib_crops"
    write_augmented_crops(calib, crops, 32, seed=0)
    for photo in calib.iterdir():
        shutil.copy(photo, crops / photo.name)
    text = root / "text"
    text.mkdir()
    for name in TEXT_LIKE:
        shutil.copy(images_dir / name, text / name)
    text_crops = root / "text_crops"
    write_augmented_crops(text, text_crops, 15, seed=1)
    shutil.copy(images_dir / TEXT_LIKE[0], text_crops / TEXT_LIKE[0])
    page = root / "page"
    page.mkdir()
    shutil.copy(images_dir / EVAL_TEXT, page / EVAL_TEXT)
    return {"calib": crops, "eval": held_out, "text": text_crops, "page": page}


def calibrated(models_dir, tmp_path, name, data, preprocess, **config):
    out = tmp_path / f"{name}.qdq.onnx"
    result = calibrate_file(models_dir / f"{name}.onnx", data, CalibrationOutputs(model=out),
                            CalibrationConfig(preprocess=preprocess, **config))
    print(f"{name}: auto {result.summary().get('auto')}")
    return result, out


def outputs(model_path, folder, preprocess):
    session = create_session(model_path)
    samples = SampleSet(folder, model_input_specs(load_model(model_path)), preprocess)
    return [session.run(None, feed)[0] for feed in samples], samples.files


def check_placement_rules(result, qdq_path):
    """Every int8 weighted op has DQ on activation and weight; residual Adds have DQ on the skip input only;
    every quantized Concat group has one scale."""
    view = GraphView(onnx.load(qdq_path))
    inits = {t.name: numpy_helper.to_array(t) for t in view.graph.initializer}

    def dq_scale(tensor):
        node = view.producer(tensor)
        return float(inits[node.input[1]]) if node is not None and node.op_type == "DequantizeLinear" else None

    for decision in result.plan.decisions:
        node = view.by_name[decision.node]
        if decision.rule == "weighted" and decision.outcome == "int8":
            weight = view.producer(node.input[1])
            assert dq_scale(node.input[0]) is not None and weight.op_type == "DequantizeLinear"
            axis = next(a.i for a in weight.attribute if a.name == "axis")
            assert axis == weight_channel_axis(node, inits[weight.input[0]].ndim)
            assert inits[weight.input[0]].dtype == np.int8
        if decision.rule == "residual-add":
            from_dq = [dq_scale(t) is not None for t in node.input]
            assert sorted(from_dq) == [False, True], decision
        if decision.rule == "concat" and decision.outcome == "int8":
            tensors = [*node.input, *node.output]
            scales = {round(float(inits[q.input[1]]), 9) for t in tensors for q, _ in view.consumers(t)
                      if q.op_type == "QuantizeLinear"}
            assert len(scales) == 1, (decision.node, scales)
    for node in view.nodes:
        if node.op_type == "QuantizeLinear":
            assert not np.any(inits[node.input[2]])  # zero points are 0
            assert inits[node.input[1]].ndim == 0     # activations per tensor


def test_yolov8n_placement_and_detections_match_fp32(models_dir, photos, tmp_path):
    preprocess = dataclasses.replace(PRESETS["yolo"], size=(320, 320))
    result, qdq = calibrated(models_dir, tmp_path, "yolov8n_320", photos["calib"], preprocess)   # default flags
    check_placement_rules(result, qdq)
    onnx.checker.check_model(onnx.load(qdq))
    decisions = {d.node: d for d in result.plan.decisions}
    weighted = [d for d in result.plan.decisions if d.rule == "weighted"]
    assert sum(d.outcome == "int8" for d in weighted) >= 0.98 * len(weighted) - 1 and len(weighted) == 64
    assert len([d for d in result.plan.decisions if d.rule == "residual-add" and d.outcome == "fused-int8"]) == 6
    head = GraphView(load_model(models_dir / "yolov8n_320.onnx")).producer("output0")
    assert head.op_type == "Concat" and decisions[head.name].outcome == "float"
    assert decisions[head.name].cause == Cause.RANGE_SPREAD  # box coordinates (0..320) vs class scores (0..1)
    assert decisions[head.name].spread > PlacementConfig().concat_ratio

    reference, files = outputs(models_dir / "yolov8n_320.onnx", photos["eval"], preprocess)
    quantized, _ = outputs(qdq, photos["eval"], preprocess)
    pairs, counts, found = [], [0, 0], 0.0
    for ref, got in zip(reference, quantized):
        f1, matched, n_ref, n_cand = detection_agreement(ref[0], got[0])
        pairs += matched
        counts[0] += n_ref
        counts[1] += n_cand
        found += f1 * (n_ref + n_cand)
    f1 = found / max(1, sum(counts))
    score_gap = max((abs(r.score - q.score) for r, q in pairs), default=0.0)
    print(f"yolov8n on {len(files)} held-out photos: {counts[0]} fp32 / {counts[1]} int8 detections, "
          f"F1 {f1:.3f} (IoU 0.5, conf 0.25 +- 0.05), max class score gap {score_gap:.3f}")
    assert counts[0] >= 2
    assert f1 >= 0.95
    assert score_gap <= 0.10


def test_orientation_classifier_top1_agrees(models_dir, images_dir, photos, tmp_path):
    """Documents turned 0/90/180/270 (issue 10: every one must agree) and held-out natural photos, which have no
    orientation: FP32's top-1 margin there is 0.002 to 0.43 (page.png 0.90). INT8 moves this classifier's
    probabilities by 0.3 to 0.5 on such photos with every calibration method (accuracy bench, probability gap), so a
    photo FP32 decides by less than that is a coin flip for any INT8 model (cell.png, margin 0.26, flips under some
    uniform ranges and not others); only photos FP32 decides by at least MIN_MARGIN must agree."""
    preprocess = PRESETS["imagenet"]
    result, qdq = calibrated(models_dir, tmp_path, "orientation_cls", photos["calib"], preprocess)   # default flags
    check_placement_rules(result, qdq)
    turned = turned_copies(images_dir, tmp_path / "turned")
    for folder in (photos["eval"], turned):
        reference, files = outputs(models_dir / "orientation_cls.onnx", folder, preprocess)
        quantized, _ = outputs(qdq, folder, preprocess)
        agree = [int(r.argmax()) == int(q.argmax()) for r, q in zip(reference, quantized)]
        gaps = [float(np.abs(r - q).max()) for r, q in zip(reference, quantized)]
        print(f"orientation: top-1 agrees on {sum(agree)}/{len(agree)} images in {folder.name}, "
              f"max probability gap {max(gaps):.3f}")
        decided = [np.diff(np.sort(r.reshape(-1))[-2:])[0] >= MIN_MARGIN for r in reference]
        must = decided if folder == photos["eval"] else [True] * len(agree)
        assert all(ok for ok, needed in zip(agree, must) if needed), [f.name for f, ok, n in zip(files, agree, must)
                                                                      if n and not ok]
        assert sum(must) >= (2 if folder == photos["eval"] else 8)   # the check is not empty
    turned_classes = [int(r.argmax()) for r in outputs(models_dir / "orientation_cls.onnx", turned, preprocess)[0]]
    assert len(set(turned_classes)) == 4  # the documents' four turns really are four different answers


def test_text_detector_mask_iou_on_page(models_dir, photos, tmp_path):
    preprocess = dataclasses.replace(PRESETS["rapidocr"], size=(640, 640))
    result, qdq = calibrated(models_dir, tmp_path, "ppocrv4_det", photos["text"], preprocess)
    assert any("opset 12 converted to 13" in n for n in result.notes)
    assert any("Constant nodes treated as weights" in n for n in result.notes)
    check_placement_rules(result, qdq)
    assert all(d.outcome == "int8" for d in result.plan.decisions if d.rule == "weighted")
    (reference,), _ = outputs(models_dir / "ppocrv4_det.onnx", photos["page"], preprocess)
    (quantized,), _ = outputs(qdq, photos["page"], preprocess)
    iou = mask_iou(reference > 0.3, quantized > 0.3)
    print(f"ppocrv4_det: text mask IoU on page.png {iou:.3f} ({int((reference > 0.3).sum())} text pixels)")
    assert (reference > 0.3).sum() > 1000 and iou >= 0.9


def test_dynamic_int8_model_is_refused(models_dir):
    with pytest.raises(ModelError, match="ConvInteger"):
        calibrate_file(models_dir / "ocr_dynamic_int8.onnx", Path("."), CalibrationOutputs(model=Path("x.onnx")))
    assert not Path("x.onnx").exists()
