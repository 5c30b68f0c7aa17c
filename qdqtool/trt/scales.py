"""TensorRT's int8 arithmetic: symmetric scales (scale = amax / 127, zero point 0) for activations and weights.

The one place for the int8 limits' use in scales; planners, appliers, observers and caches import from here.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from qdqtool.errors import RangeError
from qdqtool.trt.rules import INT8_MAX, INT8_MIN, WEIGHT_MAX

ACTIVATION_QMAX = INT8_MAX   # scale = amax / 127
ACTIVATION_QMIN = INT8_MIN
SCALE_FLOOR = 1e-12          # the amax an all-zero tensor is given: TensorRT needs scale > 0
SCALE_TOLERANCE = 1e-5       # relative difference under which two scales are one scale


def scale_from_amax(amax: float, qmax: int = ACTIVATION_QMAX) -> float:
    """amax / qmax; an amax of 0 (all-zero tensor) gives a tiny positive scale instead of a division by zero."""
    if not math.isfinite(amax) or amax < 0:
        raise RangeError(f"amax {amax} is not a finite non-negative number; recalibrate or fix the ranges file")
    return max(float(amax), SCALE_FLOOR) / qmax


def amax_from_scale(scale: float, qmax: int = ACTIVATION_QMAX) -> float:
    """The range a symmetric int8 scale covers: scale * qmax."""
    return scale * qmax


def same_scale(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=SCALE_TOLERANCE, abs_tol=0.0)


def quantize_weight(value: np.ndarray, axis: Optional[int]) -> tuple:
    """(int8 weights, float32 scales) with scale = amax / 127 per output channel (or per tensor)."""
    value = np.asarray(value, dtype=np.float32)   # memory: one float temporary the weight's size (no |value|)
    if axis is None:
        amax = np.maximum(value.max(initial=0.0), -value.min(initial=0.0))
        scale = np.array(scale_from_amax(amax, WEIGHT_MAX), dtype=np.float32)
        shaped = scale
    else:
        reduce_axes = tuple(a for a in range(value.ndim) if a != axis)
        amax = np.maximum(value.max(axis=reduce_axes), -value.min(axis=reduce_axes))
        scale = (np.maximum(amax, SCALE_FLOOR) / WEIGHT_MAX).astype(np.float32)
        shape = [1] * value.ndim
        shape[axis] = -1
        shaped = scale.reshape(shape)
    scaled = value / shaped
    np.round(scaled, out=scaled)
    np.clip(scaled, -WEIGHT_MAX, WEIGHT_MAX, out=scaled)
    return scaled.astype(np.int8), scale
