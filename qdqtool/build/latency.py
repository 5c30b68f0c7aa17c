"""Latency measurement shared by the backends: warm-up runs, then median/p90/p99 over timed runs."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from qdqtool.errors import QdqError
from qdqtool.report.layers import Latency


def latency_of(samples_ms: list[float]) -> Latency:
    values = np.asarray(samples_ms, dtype=np.float64)
    return Latency(runs=len(samples_ms), median_ms=float(np.median(values)),
                   p90_ms=float(np.percentile(values, 90)), p99_ms=float(np.percentile(values, 99)))


def measure_latency(run_once: Callable[[], object], runs: int = 50, warmup: int = 5) -> Latency:
    """Call run_once warmup times, then time `runs` calls with perf_counter."""
    if runs < 1 or warmup < 0:
        raise QdqError(f"--runs must be >= 1 and warm-up >= 0 (got {runs}, {warmup})")
    for _ in range(warmup):
        run_once()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        run_once()
        samples.append((time.perf_counter() - start) * 1000.0)
    return latency_of(samples)
