"""The scope-all bench's accuracy figures: F1 of a YOLO head's detections and text-mask IoU, per batch-1 output."""

from __future__ import annotations

import numpy as np
import pytest

from bench.bench_scope_all import text_iou, yolo_f1


def yolo_output(score: float) -> np.ndarray:
    """[1, 4 + 2 classes, 8 anchors]: one box of class 1 at `score`, the other anchors empty."""
    output = np.zeros((1, 6, 8), np.float32)
    output[0, :4, 0] = [50, 50, 20, 20]
    output[0, 5, 0] = score
    return output


def test_yolo_f1_counts_a_detection_the_candidate_loses():
    found, lost = yolo_output(0.9), yolo_output(0.0)
    assert yolo_f1([found, found], [found, found]) == 1.0
    assert yolo_f1([found, found], [found, lost]) == pytest.approx(0.5)


def test_text_iou_is_the_mean_mask_iou_at_0_3():
    reference = [np.array([[0.9, 0.9], [0.1, 0.1]])]
    assert text_iou(reference, [np.array([[0.9, 0.2], [0.1, 0.1]])]) == pytest.approx(0.5)
