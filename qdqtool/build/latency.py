"""Latency measurement shared by the backends: warm-up runs, then median/p90/p99 over timed runs."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from qdqtool.report.layers import Latency


def latency_of(samples_ms: list[float]) -> Latency:
    values = np.asarray(samples_ms, dtype=np.float64)
    return Latency(runs=len(samples_ms), median_ms=float(np.median(values)),
                   p90_ms=float(np.percentile(values, 90)), p99_ms=float(np.percentile(values, 99)))


def sample_latency(time_once_ms: Callable[[], float], runs: int = 50, warmup: int = 5) -> Latency:
    """Call time_once_ms `warmup` times untimed, then `runs` times; each call returns its own duration in ms.

    runs >= 1 and warmup >= 0 are checked where the configuration is made (BuildConfig).
    """
    for _ in range(warmup):
        time_once_ms()
    return latency_of([time_once_ms() for _ in range(runs)])


def measure_latency(run_once: Callable[[], object], runs: int = 50, warmup: int = 5) -> Latency:
    """Wall-clock (perf_counter) timing of a synchronous run_once (ONNX Runtime's session.run)."""
    def timed() -> float:
        start = time.perf_counter()
        run_once()
        return (time.perf_counter() - start) * 1000.0

    return sample_latency(timed, runs, warmup)
