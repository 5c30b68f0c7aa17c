"""Task metrics of a quantized model against FP32 on the held-out feeds (FP32's own answers are the reference).

- detection: F1 at IoU 0.5 of the candidate's detections matched one-to-one (same class) against FP32's, where a
  detection within 0.05 of the threshold counts as found when the other model has it just below (as in
  qdqtool.accuracy.tasks), and the largest score gap over matched pairs;
- mask: IoU of the probability maps thresholded at 0.3, pooled over all held-out images (intersection / union sums);
- top1: share of feeds whose argmax agrees, and the largest probability gap.

Each also returns its per-feed components ("per_feed", one list per component, in feed order), from which the
metric is a ratio of sums (RATIO_PARTS): bench/accuracy_stats.py resamples them by source image.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bench.accuracy_models import BenchModel
from qdqtool.accuracy.tasks import SCORE_TOLERANCE as TOLERANCE
from qdqtool.accuracy.tasks import Detection, match_detections

Outputs = List[np.ndarray]


def _detections(model: BenchModel, outputs: Outputs, threshold: float) -> List[Detection]:
    return [Detection(tuple(box), label, score) for label, score, box in model.decode(outputs, threshold)]


def detection_scores(model: BenchModel, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> Dict:
    """F1 = matched / (n_ref + n_cand) summed over feeds, where matched counts FP32's detections the candidate finds
    plus the candidate's detections FP32 finds (each within the score tolerance)."""
    parts: Dict[str, List[int]] = {"matched": [], "n_ref": [], "n_cand": []}
    gaps: List[float] = []
    for ref, cand in zip(reference, candidate):
        ref_hi, cand_hi = _detections(model, ref, model.threshold), _detections(model, cand, model.threshold)
        ref_lo = _detections(model, ref, model.threshold - TOLERANCE)
        cand_lo = _detections(model, cand, model.threshold - TOLERANCE)
        pairs = match_detections(ref_hi, cand_lo)[0]
        parts["matched"].append(len(pairs) + len(match_detections(cand_hi, ref_lo)[0]))
        parts["n_ref"].append(len(ref_hi))
        parts["n_cand"].append(len(cand_hi))
        gaps += [abs(r.score - c.score) for r, c in pairs]
    return {"f1": metric_value("detection", parts), "score_gap": max(gaps, default=0.0),
            "fp32_detections": sum(parts["n_ref"]), "per_feed": parts}


def mask_scores(model: BenchModel, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> Dict:
    parts: Dict[str, List[int]] = {"intersection": [], "union": []}
    pixels = 0
    for ref, cand in zip(reference, candidate):
        a, b = ref[0] > model.threshold, cand[0] > model.threshold
        parts["intersection"].append(int(np.logical_and(a, b).sum()))
        parts["union"].append(int(np.logical_or(a, b).sum()))
        pixels += int(a.sum())
    return {"mask_iou": metric_value("mask", parts), "fp32_text_pixels": pixels, "per_feed": parts}


def top1_scores(model: BenchModel, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> Dict:
    agree = [int(int(r[0].argmax()) == int(c[0].argmax())) for r, c in zip(reference, candidate)]
    gap = max(float(np.abs(r[0] - c[0]).max()) for r, c in zip(reference, candidate))
    return {"top1_agree": sum(agree), "feeds": len(agree), "prob_gap": gap, "per_feed": {"agree": agree}}


# metric -> (numerator components, denominator components; None: one per feed): metric = sum(num) / sum(den)
RATIO_PARTS: Dict[str, Tuple[Tuple[str, ...], Optional[Tuple[str, ...]]]] = {
    "detection": (("matched",), ("n_ref", "n_cand")),
    "mask": (("intersection",), ("union",)),
    "top1": (("agree",), None),
}


def ratio_parts(metric: str, per_feed: Dict[str, Sequence[float]]) -> Tuple[np.ndarray, np.ndarray]:
    """Per-feed (numerator, denominator) of a metric's ratio of sums."""
    numerator_keys, denominator_keys = RATIO_PARTS[metric]
    numerator = np.sum([np.asarray(per_feed[k], dtype=np.float64) for k in numerator_keys], axis=0)
    if denominator_keys is None:
        return numerator, np.ones_like(numerator)
    return numerator, np.sum([np.asarray(per_feed[k], dtype=np.float64) for k in denominator_keys], axis=0)


def metric_value(metric: str, per_feed: Dict[str, Sequence[float]]) -> float:
    """The metric from per-feed components: a ratio of sums, 1.0 when there is nothing to compare."""
    numerator, denominator = ratio_parts(metric, per_feed)
    return 1.0 if denominator.sum() == 0 else float(numerator.sum() / denominator.sum())


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
