"""TensorRT's entropy calibration (IInt8EntropyCalibrator2) on a histogram of |x|.

Published description (Migacz, "8-bit Inference with TensorRT", GTC 2017), for every candidate number of kept
bins i in [128, len(histogram)]:
  P = the first i bins, with the mass of all bins >= i (the clipped outliers) added into bin i-1;
  Q = the first i bins (without the outliers) merged into 128 levels, each level's mass spread uniformly over
      the bins of that level where P is non-zero;
  both smoothed (zero bins get a small epsilon) and normalised; the threshold is the i with the least KL(P||Q),
  and amax = (i + 0.5) * bin_width.

Evaluating KL bin by bin costs O(i) per candidate. Here it is O(128): inside one level Q is constant on the
non-zero bins of P, so every sum the divergence needs comes from prefix sums of the histogram. Smoothing is
additive (zero bins of P and Q get `eps` counts, then both are renormalised); ONNX Runtime and MXNet instead take
the added mass off the non-zero bins. The two differ by O(eps * zero_bins / total), far below any KL difference
that decides a threshold.
"""

from __future__ import annotations

import numpy as np

QUANTIZED_LEVELS = 128  # int8 magnitudes 0..127
SMOOTHING_EPS = 1e-4  # counts given to an empty bin, as ONNX Runtime's smooth_distribution


def kl_divergences(counts: np.ndarray, levels: int = QUANTIZED_LEVELS, eps: float = SMOOTHING_EPS) -> tuple:
    """KL(P||Q) for every candidate number of kept bins; returns (kept_bins, divergences) as two arrays.

    `counts` is a histogram of |x| over [0, range]; trailing empty bins are ignored (the histogram is taken to
    end at its last non-zero bin, as TensorRT's ends at max|x|). Empty result when it has <= `levels` used bins.
    """
    hist = np.asarray(counts, dtype=np.float64)
    nonzero_bins = np.flatnonzero(hist)
    used = int(nonzero_bins[-1]) + 1 if nonzero_bins.size else 0
    if used <= levels:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    hist = hist[:used]
    total = hist.sum()
    mass_before = np.concatenate(([0.0], np.cumsum(hist)))
    nonzero_before = np.concatenate(([0], np.cumsum(hist > 0)))
    safe = np.where(hist > 0, hist, 1.0)
    xlogx_before = np.concatenate(([0.0], np.cumsum(hist * np.log(safe))))

    kept = np.arange(levels, used + 1)  # candidate i
    outliers = total - mass_before[kept]
    last_bin = hist[kept - 1] + outliers  # P[i-1]
    safe_last = np.where(last_bin > 0, last_bin, 1.0)
    plogp = xlogx_before[kept - 1] + np.where(last_bin > 0, last_bin * np.log(safe_last), 0.0)

    per_level = kept // levels
    starts = np.arange(levels)[None, :] * per_level[:, None]
    ends = starts + per_level[:, None]
    ends[:, -1] = kept  # the last level takes the remainder bins
    level_mass = mass_before[ends] - mass_before[starts]  # Q's mass per level (no outliers)
    level_nonzero = nonzero_before[ends] - nonzero_before[starts]  # non-zero bins of P per level
    level_nonzero[:, -1] += (hist[kept - 1] == 0) & (outliers > 0)  # P[i-1] made non-zero by the outliers
    level_p_mass = level_mass.copy()
    level_p_mass[:, -1] += outliers

    has_mass = level_mass > 0
    q_value = np.where(has_mass, level_mass / np.maximum(level_nonzero, 1), eps)
    p_log_q = np.sum(level_p_mass * np.log(q_value), axis=1)

    p_zeros = kept - (nonzero_before[kept - 1] + (last_bin > 0))
    q_zeros = kept - np.sum(np.where(has_mass, level_nonzero, 0), axis=1)
    p_sum = total + eps * p_zeros
    q_sum = mass_before[kept] + eps * q_zeros
    divergences = (plogp - p_log_q) / p_sum + np.log(q_sum / p_sum)
    return kept, np.maximum(divergences, 0.0)


def entropy_amax(counts: np.ndarray, bin_width: float, observed_max: float) -> float:
    """amax = (i + 0.5) * bin_width for the i of least KL; at most `observed_max` (a few-bin histogram gives it)."""
    kept, divergences = kl_divergences(counts)
    if kept.size == 0:
        return float(observed_max)
    best = int(kept[int(np.argmin(divergences))])
    return float(min((best + 0.5) * bin_width, observed_max))
