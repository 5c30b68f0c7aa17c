"""Task metrics against FP32, which users read better than dB: detections (F1 at IoU 0.5), masks (IoU), top-1.

Every metric is an *agreement with FP32* in [0, 1] (1 = the quantized model decides as FP32 does), accumulated
sample by sample (streaming). Detection assumes a YOLOv8-style head: per anchor cx, cy, w, h then one score per
class, as [batch, 4 + classes, anchors] or [batch, anchors, 4 + classes].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from qdqtool.errors import DataError

TASKS = ("detect", "segment", "classify")
DEFAULT_THRESHOLDS = {"detect": 0.25, "segment": 0.5}
SCORE_TOLERANCE = 0.05    # a detection this close to the score threshold in the other model is the same detection
MATCH_IOU = 0.5
NMS_IOU = 0.45


@dataclass(frozen=True)
class Detection:
    box: Tuple[float, float, float, float]   # x1, y1, x2, y2
    label: int
    score: float


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def yolo_detections(output: np.ndarray, conf: float = 0.25, nms_iou: float = NMS_IOU) -> List[Detection]:
    """Decode one sample of a YOLOv8 head ([4 + classes, anchors] or transposed); class-wise NMS."""
    pred = output if output.shape[0] > output.shape[1] else output.T
    boxes, scores = pred[:, :4], pred[:, 4:]
    labels = scores.argmax(1)
    best = scores.max(1)
    keep = best >= conf
    found: List[Detection] = []
    for label in np.unique(labels[keep]):
        idx = np.where(keep & (labels == label))[0]
        idx = idx[np.argsort(-best[idx])]
        chosen: List[Detection] = []
        for i in idx:
            cx, cy, w, h = (float(v) for v in boxes[i])
            det = Detection((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), int(label), float(best[i]))
            if all(iou(det.box, c.box) < nms_iou for c in chosen):
                chosen.append(det)
        found.extend(chosen)
    return found


def match_detections(reference: List[Detection], candidate: List[Detection], min_iou: float = MATCH_IOU):
    """Greedy one-to-one matching by IoU within a class. Returns (pairs, f1)."""
    pairs = []
    used = set()
    for ref in sorted(reference, key=lambda d: -d.score):
        best, best_iou = None, min_iou
        for j, cand in enumerate(candidate):
            if j in used or cand.label != ref.label:
                continue
            overlap = iou(ref.box, cand.box)
            if overlap >= best_iou:
                best, best_iou = j, overlap
        if best is not None:
            used.add(best)
            pairs.append((ref, candidate[best]))
    total = len(reference) + len(candidate)
    f1 = 1.0 if total == 0 else 2 * len(pairs) / total
    return pairs, f1


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def detection_agreement(reference_output: np.ndarray, candidate_output: np.ndarray, conf: float = 0.25,
                        score_tolerance: float = SCORE_TOLERANCE):
    """F1 between two models' detections on one sample, where a detection near the score threshold counts as found
    when the other model has it within score_tolerance (a 0.26 vs 0.24 pair is the same detection, not a miss).

    Returns (f1, matched pairs at the threshold, number of reference and candidate detections)."""
    ref_hi, cand_hi = yolo_detections(reference_output, conf), yolo_detections(candidate_output, conf)
    ref_lo = yolo_detections(reference_output, conf - score_tolerance)
    cand_lo = yolo_detections(candidate_output, conf - score_tolerance)
    pairs = match_detections(ref_hi, cand_lo)[0]
    found_cand = len(match_detections(cand_hi, ref_lo)[0])
    total = len(ref_hi) + len(cand_hi)
    f1 = 1.0 if total == 0 else (len(pairs) + found_cand) / total
    return f1, pairs, len(ref_hi), len(cand_hi)


def looks_like_logits(shape: Tuple[int, ...]) -> bool:
    """[batch, classes] (or [batch, classes, 1, 1]) with at least two classes."""
    return len(shape) >= 2 and shape[1] >= 2 and all(d == 1 for d in shape[2:])


def looks_like_detections(shape: Tuple[int, ...]) -> bool:
    return len(shape) == 3 and min(shape[1:]) >= 5 and max(shape[1:]) > min(shape[1:])


@dataclass(frozen=True)
class TaskResult:
    task: str
    metric: str                     # "detection F1" | "mask IoU" | "top-1 agreement"
    value: float                    # agreement with FP32, 1 = the same decisions
    output: str
    threshold: Optional[float]
    reference_count: int            # FP32 detections / mask pixels / samples
    candidate_count: int

    def as_dict(self) -> Dict[str, object]:
        return {**self.__dict__, "value": round(self.value, 6)}


class TaskMeter:
    """Accumulates one task metric over batches of (FP32, quantized) outputs."""

    def __init__(self, task: str, threshold: Optional[float] = None, output: Optional[str] = None) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}")
        self.task, self.output = task, output
        self.threshold = threshold if threshold is not None else DEFAULT_THRESHOLDS.get(task)
        self.agree = self.total = 0.0
        self.ref_count = self.cand_count = 0

    def _pick(self, outputs: Mapping[str, np.ndarray]) -> str:
        if self.output is not None:
            if self.output not in outputs:
                raise DataError(f"the model has no output {self.output!r}; name one of {sorted(outputs)}")
            return self.output
        test = {"detect": looks_like_detections, "classify": looks_like_logits}.get(self.task, lambda s: len(s) >= 3)
        for name, value in outputs.items():
            if test(np.shape(value)):
                return name
        raise DataError(f"no output of the model looks like a {self.task} output (shapes "
                        f"{ {n: list(np.shape(v)) for n, v in outputs.items()} }); choose another task")

    def add(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> None:
        self.output = self._pick(reference)
        ref, got = np.asarray(reference[self.output]), np.asarray(candidate[self.output])
        for one_ref, one_got in zip(ref, got):
            self._add_sample(one_ref, one_got)

    def _add_sample(self, ref: np.ndarray, got: np.ndarray) -> None:
        if self.task == "detect":
            f1, _, n_ref, n_cand = detection_agreement(ref, got, self.threshold)
            self.agree += f1 * (n_ref + n_cand)
            self.total += n_ref + n_cand
            self.ref_count, self.cand_count = self.ref_count + n_ref, self.cand_count + n_cand
        elif self.task == "segment":
            ref_on, got_on = ref >= self.threshold, got >= self.threshold
            self.agree += float(np.logical_and(ref_on, got_on).sum())
            self.total += float(np.logical_or(ref_on, got_on).sum())
            self.ref_count += int(ref_on.sum())
            self.cand_count += int(got_on.sum())
        else:
            self.agree += float(int(np.argmax(ref)) == int(np.argmax(got)))
            self.total += 1
            self.ref_count += 1
            self.cand_count += 1

    def result(self) -> TaskResult:
        value = 1.0 if self.total == 0 else self.agree / self.total
        metric = {"detect": "detection F1", "segment": "mask IoU", "classify": "top-1 agreement"}[self.task]
        threshold = None if self.task == "classify" else self.threshold
        return TaskResult(self.task, metric, float(value), self.output or "", threshold, self.ref_count,
                          self.cand_count)


def top1_meters(outputs: Mapping[str, np.ndarray]) -> Dict[str, TaskMeter]:
    """A top-1 meter for every output that looks like class logits."""
    return {name: TaskMeter("classify", output=name) for name, value in outputs.items()
            if looks_like_logits(np.shape(value))}
