"""Task metrics against FP32 on outputs built by hand: detections, masks, top-1."""

import numpy as np
import pytest

from qdqtool.accuracy.tasks import TaskMeter, looks_like_detections, looks_like_logits, top1_meters, yolo_detections
from qdqtool.errors import DataError


def yolo_output(boxes, classes=3, anchors=50, layout="channels_first"):
    """[1, 4 + classes, anchors] with the given (cx, cy, w, h, label, score) on the first anchors."""
    out = np.zeros((1, 4 + classes, anchors), np.float32)
    out[0, :4] = 10.0
    for i, (cx, cy, w, h, label, score) in enumerate(boxes):
        out[0, :4, i] = (cx, cy, w, h)
        out[0, 4 + label, i] = score
    return out if layout == "channels_first" else np.transpose(out, (0, 2, 1))


BOXES = [(50, 50, 20, 20, 0, 0.9), (150, 80, 40, 30, 2, 0.6)]


@pytest.mark.parametrize("layout", ["channels_first", "anchors_first"])
def test_detection_f1_counts_a_lost_detection(layout):
    reference = yolo_output(BOXES, layout=layout)
    lost = yolo_output([BOXES[0], (*BOXES[1][:5], 0.1)], layout=layout)
    assert len(yolo_detections(reference[0])) == 2
    meter = TaskMeter("detect")
    meter.add({"o": reference}, {"o": reference})
    meter.add({"o": reference}, {"o": lost})
    result = meter.result()
    assert (result.reference_count, result.candidate_count) == (4, 3)
    assert result.value == pytest.approx(6 / 7)   # all 4 found on the first sample, 1 + 1 of 2 + 1 on the second


def test_detection_near_the_threshold_is_not_a_miss():
    reference = yolo_output([(*BOXES[0][:5], 0.26)])
    candidate = yolo_output([(*BOXES[0][:5], 0.24)])
    meter = TaskMeter("detect", threshold=0.25)
    meter.add({"o": reference}, {"o": candidate})
    assert meter.result().value == 1.0


def test_mask_iou_and_top1():
    reference = np.zeros((1, 1, 10, 10), np.float32)
    reference[0, 0, :4] = 0.9
    candidate = reference.copy()
    candidate[0, 0, 3] = 0.1
    meter = TaskMeter("segment", threshold=0.5)
    meter.add({"m": reference}, {"m": candidate})
    assert meter.result().value == pytest.approx(30 / 40)
    logits = np.array([[0.1, 0.8, 0.1], [0.5, 0.2, 0.3]], np.float32)
    meters = top1_meters({"p": logits, "m": reference})
    assert list(meters) == ["p"]
    meters["p"].add({"p": logits}, {"p": logits[:, [1, 0, 2]]})
    assert meters["p"].result().value == 0.0


def test_shapes_and_a_task_without_its_output():
    assert looks_like_logits((1, 1000)) and looks_like_logits((1, 4, 1, 1)) and not looks_like_logits((1, 1, 8, 8))
    assert looks_like_detections((1, 84, 2100)) and not looks_like_detections((1, 1000))
    with pytest.raises(DataError, match="looks like a detect output"):
        TaskMeter("detect").add({"p": np.zeros((1, 1000))}, {"p": np.zeros((1, 1000))})
