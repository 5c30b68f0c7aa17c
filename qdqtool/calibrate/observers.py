"""Streaming range observers for `qdqtool calibrate`: fed one batch at a time, constant memory, one amax each.

`max` keeps the running max |x|. The other methods keep a fixed-size histogram of |x| (split by sign, for the
activation grid [-128, 127]) over [0, range]: the first non-zero batch sets the range, a batch beyond it doubles
the range as often as needed and merges adjacent bin pairs, which is exact (bin edges of the doubled histogram are
edges of the old one). No activation is kept between update() calls.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from qdqtool.calibrate.entropy import entropy_amax
from qdqtool.errors import ConfigError
from qdqtool.trt.kinds import StrEnum
from qdqtool.trt.scales import ACTIVATION_QMAX, ACTIVATION_QMIN

log = logging.getLogger("qdqtool")



class Method(StrEnum):
    """The calibration method setting; members are their text ("max" == Method.MAX)."""

    AUTO = "auto"   # every candidate below per tensor; the one that changes the model's outputs least is chosen later
    MAX = "max"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"
    MSE = "mse"


AUTO = Method.AUTO
METHODS = tuple(m.value for m in Method if m is not AUTO)   # one observer, one amax per tensor
DEFAULT_METHOD = Method.PERCENTILE.value  # single-observer default (fix-residuals' quick calibration, collect_ranges)
DEFAULT_PERCENTILE = 99.99
CALIBRATION_METHODS = tuple(m.value for m in Method)


def check_percentile(percentile: float) -> None:
    if not 0.0 < percentile <= 100.0:
        raise ConfigError(f"percentile {percentile} is outside (0, 100]; use e.g. 99.99", settings=("percentile",))


def method_setting(value: str) -> Method:
    """The Method named by value; ConfigError (setting "method") naming the choices otherwise."""
    try:
        return Method(str(value).lower())
    except ValueError:
        raise ConfigError(f"unknown calibration method {value!r}; use one of: {', '.join(CALIBRATION_METHODS)}",
                          settings=("method",)) from None
CANDIDATE_PERCENTILES = (99.9, 99.99, 99.999)
AUTO_START = "p99.99"   # the candidate a tensor keeps when no search chooses (e.g. ranges collected for a report)

MSE_FIRST_CANDIDATE_BIN = 128  # candidates below 128 bins would quantize finer than the histogram
_INITIAL_RANGE_MARGIN = 2.0**-20  # keeps the first batch's max strictly inside the last bin


class Observer(Protocol):
    method: str

    def update(self, values: np.ndarray) -> None: ...

    def amax(self) -> float: ...

    @property
    def observed_max(self) -> float: ...

    @property
    def count(self) -> int: ...


def _finite_values(values: np.ndarray) -> tuple:
    """(finite values as float64 1-D, number of non-finite values dropped)."""
    flat = np.asarray(values).reshape(-1).astype(np.float64, copy=False)
    finite = np.isfinite(flat)
    if finite.all():
        return flat, 0
    return flat[finite], int(flat.size - np.count_nonzero(finite))


class Histogram:
    """Counts of |x| in `num_bins` equal bins over [0, range_max], one row for x >= 0 and one for x < 0."""

    def __init__(self, num_bins: int) -> None:
        self.num_bins = num_bins
        self.signed_counts = np.zeros((2, num_bins), dtype=np.int64)
        self.range_max = 0.0
        self.zero_count = 0

    @property
    def counts(self) -> np.ndarray:
        """Counts of |x| per bin."""
        return self.signed_counts.sum(axis=0)

    @property
    def bin_width(self) -> float:
        return self.range_max / self.num_bins

    def add(self, values: np.ndarray) -> None:
        """Add finite float64 values (1-D)."""
        if values.size == 0:
            return
        magnitudes = np.abs(values)
        batch_max = float(magnitudes.max())
        self.zero_count += int(values.size - np.count_nonzero(magnitudes))
        if batch_max == 0.0:  # zeros fall in bin 0 whatever the range turns out to be
            self.signed_counts[0, 0] += values.size
            return
        if self.range_max == 0.0:
            self.range_max = batch_max * (1.0 + _INITIAL_RANGE_MARGIN)
        elif batch_max >= self.range_max:
            self._double_range_until_above(batch_max)
        index = (magnitudes / self.bin_width).astype(np.int64)  # bin_width = range / 2^k: doubling stays exact
        np.minimum(index, self.num_bins - 1, out=index)
        index[values < 0] += self.num_bins
        self.signed_counts += np.bincount(index, minlength=2 * self.num_bins).reshape(2, self.num_bins)

    def _double_range_until_above(self, batch_max: float) -> None:
        doublings = 0
        while self.range_max <= batch_max:
            self.range_max *= 2.0
            doublings += 1
        merged = np.zeros_like(self.signed_counts)
        group = 2**doublings
        if group >= self.num_bins:
            merged[:, 0] = self.signed_counts.sum(axis=1)
        else:
            kept = self.num_bins // group
            merged[:, :kept] = self.signed_counts.reshape(2, kept, group).sum(axis=2)
        self.signed_counts = merged


def percentile_amax(histogram: Histogram, percentile: float) -> float:
    """The value below which `percentile` % of |x| lies, interpolated linearly inside its bin."""
    counts = histogram.counts.astype(np.float64)
    cumulative = np.cumsum(counts)
    target = cumulative[-1] * percentile / 100.0
    bin_index = min(int(np.searchsorted(cumulative, target, side="left")), histogram.num_bins - 1)
    before = cumulative[bin_index] - counts[bin_index]
    fraction = (target - before) / counts[bin_index] if counts[bin_index] > 0 else 1.0
    return (bin_index + fraction) * histogram.bin_width


def _suffix_sums(weights: np.ndarray) -> np.ndarray:
    """sums[k] = weights[k:].sum(), with sums[len] = 0."""
    return np.concatenate((np.cumsum(weights[::-1])[::-1], [0.0]))


def mse_amax(histogram: Histogram) -> float:
    """The candidate amax (a bin edge from bin 128 on) with the least expected squared int8 quantization error.

    Per value: rounding error scale^2/12 when inside the grid (exact zeros: none), (x - clip)^2 when clipped,
    with clip = 127*scale for x >= 0 and 128*scale for x < 0, scale = amax/127; bin centres stand for values.
    """
    width = histogram.bin_width
    nonzero_bins = np.flatnonzero(histogram.counts)
    used = int(nonzero_bins[-1]) + 1
    if used <= MSE_FIRST_CANDIDATE_BIN:
        return used * width
    candidates = np.arange(MSE_FIRST_CANDIDATE_BIN, used + 1) * width
    scales = candidates / ACTIVATION_QMAX
    centers = (np.arange(histogram.num_bins) + 0.5) * width
    nonzero_values = histogram.signed_counts.sum() - histogram.zero_count
    errors = scales**2 / 12.0 * nonzero_values
    for row, clip_levels in ((0, ACTIVATION_QMAX), (1, -ACTIVATION_QMIN)):
        counts = histogram.signed_counts[row].astype(np.float64)
        clips = scales * clip_levels
        first = np.searchsorted(centers, clips, side="right")  # first bin whose centre is clipped
        clipped_count = _suffix_sums(counts)[first]
        clipped_error = (
            _suffix_sums(counts * centers**2)[first]
            - 2 * clips * _suffix_sums(counts * centers)[first]
            + clips**2 * clipped_count
        )
        errors += clipped_error + clipped_count * (width**2 / 12.0 - scales**2 / 12.0)
    return float(candidates[int(np.argmin(errors))])


class _RunningMax:
    """What every observer keeps: the max |x| and the number of finite values seen (non-finite ones are dropped)."""

    method: str

    def __init__(self) -> None:
        self._max = 0.0
        self._count = 0

    def _observe(self, values: np.ndarray) -> np.ndarray:
        """Record the batch's finite values in the running max and count; returns them (float64, 1-D)."""
        finite, dropped = _finite_values(values)
        if dropped:
            log.debug("%s observer ignored %d non-finite values", self.method, dropped)
        if finite.size:
            self._max = max(self._max, float(np.abs(finite).max()))
            self._count += int(finite.size)
        return finite

    @property
    def observed_max(self) -> float:
        return self._max

    @property
    def count(self) -> int:
        return self._count


class MaxObserver(_RunningMax):
    """amax = max |x| seen."""

    method = "max"

    def update(self, values: np.ndarray) -> None:
        self._observe(values)

    def amax(self) -> float:
        return self._max


class HistogramObserver(_RunningMax):
    """amax computed from a streaming histogram of |x| by `rule(histogram)`, clamped to [0, observed max]."""

    def __init__(self, method: str, rule: Callable[[Histogram], float], num_bins: int) -> None:
        super().__init__()
        self.method = method
        self.histogram = Histogram(num_bins)
        self._rule = rule

    def update(self, values: np.ndarray) -> None:
        finite = self._observe(values)
        if finite.size:
            self.histogram.add(finite)

    def amax(self) -> float:
        return self.amax_by(self._rule)

    def amax_by(self, rule: Callable[[Histogram], float]) -> float:
        """rule(histogram) clamped to [0, observed max] (the max when the rule gives no finite number)."""
        if self._max == 0.0:
            return 0.0
        amax = float(rule(self.histogram))
        return min(max(amax, 0.0), self._max) if math.isfinite(amax) else self._max


def _entropy_rule(histogram: Histogram) -> float:
    return entropy_amax(histogram.counts, histogram.bin_width, histogram.range_max)


def candidate_rules() -> dict[str, Callable[[Histogram], float]]:
    """Name -> rule of every candidate amax `auto` chooses from (max is the observer's running max)."""
    rules: dict[str, Callable[[Histogram], float]] = {
        f"p{p:g}": (lambda histogram, p=p: percentile_amax(histogram, p)) for p in CANDIDATE_PERCENTILES}
    rules["entropy"] = _entropy_rule
    rules["mse"] = mse_amax
    return rules


CANDIDATES = ("max", *candidate_rules())


class CandidateObserver(HistogramObserver):
    """One streamed histogram, every candidate amax of CANDIDATES from it; amax() is the AUTO_START candidate."""

    def __init__(self, num_bins: int = 2048) -> None:
        rules = candidate_rules()
        super().__init__(AUTO, rules[AUTO_START], num_bins)
        self._rules = rules

    def candidates(self) -> dict[str, float]:
        """Candidate name -> amax, each clamped to [0, observed max] like amax()."""
        return {"max": self._max, **{name: self.amax_by(rule) for name, rule in self._rules.items()}}


def make_observer(method: str, *, percentile: float = DEFAULT_PERCENTILE, num_bins: int = 2048) -> Observer:
    """A fresh observer for one tensor; raises ConfigError for an unknown method or bad settings."""
    method = method_setting(method)
    if method == AUTO:
        return CandidateObserver(num_bins)
    if method == Method.MAX:
        return MaxObserver()
    check_percentile(percentile)
    if num_bins < 256 or num_bins & (num_bins - 1):
        raise ConfigError(f"histogram bins {num_bins} must be a power of two >= 256; use the default 2048")
    rules: dict[str, Callable[[Histogram], float]] = {
        "entropy": _entropy_rule,
        "percentile": lambda histogram: percentile_amax(histogram, percentile),
        "mse": mse_amax,
    }
    return HistogramObserver(method, rules[method], num_bins)
