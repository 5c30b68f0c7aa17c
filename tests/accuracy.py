"""Accuracy measures against FP32 for the integration tests and benchmarks: YOLO detections, masks, top-1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np


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


def yolo_detections(output: np.ndarray, conf: float = 0.25, nms_iou: float = 0.45) -> List[Detection]:
    """Decode a YOLOv8 output (1, 4 + classes, anchors): cx, cy, w, h then class scores; class-wise NMS."""
    pred = output[0].T
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
            cx, cy, w, h = boxes[i]
            det = Detection((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), int(label), float(best[i]))
            if all(iou(det.box, c.box) < nms_iou for c in chosen):
                chosen.append(det)
        found.extend(chosen)
    return found


def match_detections(reference: List[Detection], candidate: List[Detection], min_iou: float = 0.5):
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
                        score_tolerance: float = 0.05):
    """F1 between two models' detections, where a detection near the confidence threshold counts as found when the
    other model has it within score_tolerance (a 0.26 vs 0.24 pair is the same detection, not a miss).

    Returns (f1, matched pairs at the threshold, number of reference and candidate detections)."""
    ref_hi, cand_hi = yolo_detections(reference_output, conf), yolo_detections(candidate_output, conf)
    ref_lo = yolo_detections(reference_output, conf - score_tolerance)
    cand_lo = yolo_detections(candidate_output, conf - score_tolerance)
    pairs = match_detections(ref_hi, cand_lo)[0]
    found_cand = len(match_detections(cand_hi, ref_lo)[0])
    total = len(ref_hi) + len(cand_hi)
    f1 = 1.0 if total == 0 else (len(pairs) + found_cand) / total
    return f1, pairs, len(ref_hi), len(cand_hi)
