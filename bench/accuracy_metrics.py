"""Task metrics of a quantized model against FP32 on the held-out feeds (FP32's own answers are the reference).

- detection: F1 at IoU 0.5 of the candidate's detections matched one-to-one (same class) against FP32's, where a
  detection within 0.05 of the threshold counts as found when the other model has it just below (as in
  qdqtool.accuracy.tasks), and the largest score gap over matched pairs;
- mask: IoU of the probability maps thresholded at 0.3, pooled over all held-out images (intersection / union sums);
- top1: share of feeds whose argmax agrees, and the largest probability gap.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from bench.accuracy_models import BenchModel
from qdqtool.accuracy.tasks import SCORE_TOLERANCE as TOLERANCE
from qdqtool.accuracy.tasks import Detection, match_detections

Outputs = List[np.ndarray]


def _detections(model: BenchModel, outputs: Outputs, threshold: float) -> List[Detection]:
    return [Detection(tuple(box), label, score) for label, score, box in model.decode(outputs, threshold)]


def detection_scores(model: BenchModel, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> Dict:
    agreed, total, gaps, fp32_count = 0.0, 0, [], 0
    for ref, cand in zip(reference, candidate):
        ref_hi, cand_hi = _detections(model, ref, model.threshold), _detections(model, cand, model.threshold)
        ref_lo = _detections(model, ref, model.threshold - TOLERANCE)
        cand_lo = _detections(model, cand, model.threshold - TOLERANCE)
        pairs = match_detections(ref_hi, cand_lo)[0]
        agreed += len(pairs) + len(match_detections(cand_hi, ref_lo)[0])
        total += len(ref_hi) + len(cand_hi)
        fp32_count += len(ref_hi)
        gaps += [abs(r.score - c.score) for r, c in pairs]
    return {"f1": 1.0 if total == 0 else agreed / total, "score_gap": max(gaps, default=0.0),
            "fp32_detections": fp32_count}


def mask_scores(model: BenchModel, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> Dict:
    inter = union = pixels = 0
    for ref, cand in zip(reference, candidate):
        a, b = ref[0] > model.threshold, cand[0] > model.threshold
        inter += int(np.logical_and(a, b).sum())
        union += int(np.logical_or(a, b).sum())
        pixels += int(a.sum())
    return {"mask_iou": 1.0 if union == 0 else inter / union, "fp32_text_pixels": pixels}


def top1_scores(model: BenchModel, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> Dict:
    agree = [int(r[0].argmax()) == int(c[0].argmax()) for r, c in zip(reference, candidate)]
    gap = max(float(np.abs(r[0] - c[0]).max()) for r, c in zip(reference, candidate))
    return {"top1_agree": sum(agree), "feeds": len(agree), "prob_gap": gap}


SCORERS = {"detection": detection_scores, "mask": mask_scores, "top1": top1_scores}


def task_scores(model: BenchModel, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> Dict:
    return SCORERS[model.metric](model, reference, candidate)


def task_cell(model: BenchModel, scores: Dict) -> str:
    """The task metric as one Markdown cell."""
    if model.metric == "detection":
        return f"F1 {scores['f1']:.3f}, score gap {scores['score_gap']:.3f}"
    if model.metric == "mask":
        return f"mask IoU {scores['mask_iou']:.3f}"
    return f"top-1 {scores['top1_agree']}/{scores['feeds']}, prob gap {scores['prob_gap']:.3f}"
