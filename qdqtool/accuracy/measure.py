"""The output error measure: how far a quantized model's outputs are from FP32, so a detector's scores cannot hide.

A whole-tensor L2 or cosine over a YOLO output [1, 4 + classes, anchors] is all box coordinates (0..640): class
scores (0..1) may collapse while cosine stays at 0.99. So each output is measured per *channel*:

- The channel axis is picked from the FP32 data: the smallest non-batch axis whose slices have very different
  FP32 ranges (largest slice range >= SPREAD_RATIO x the smallest), and that is shorter than the rest of a sample
  (a channel is a population of values); in 4-D and 5-D (NCHW) outputs only axis 1, the others being positions.
  84 in [1, 84, N], 85 in [1, N, 85]; class logits [1, 1000] and one-channel maps [1, 1, H, W] are one channel.
  `MeasureConfig.channel_axes` overrides.
- Each channel is measured against its own FP32 scale (largest |FP32| value of the channel over all data), floored
  at `scale_floor` x the loudest channel's scale: a channel quieter than one 8-bit step of the whole output carries
  no signal (an absent class's 0.001 scores), and its relative noise must not decide the figure.
- The values that decide results count on their own: per channel, the `top_fraction` largest FP32 values over all
  data (confident detections, text pixels); their RMS error against the channel scale is the channel's *top error*.
  The fraction is small (0.1%) because deciding values are rare: a few objects among thousands of anchors x images.
  Per-sample top values, or 1% of them, are mostly an absent class's noise: on YOLOv8n (4 methods, 90 photos)
  they hid the method whose class scores moved most (0.15 mean gap on confident anchors, lowest detection F1).
- A channel's error is the larger of its RMS error over all values and its top error; an output's error is its worst
  channel's, raised to the "crossed threshold" rate when the user names a score threshold (in the worst channel,
  the share of values above the threshold in FP32 or INT8 but not both: 1 - IoU of the two above-threshold sets;
  per channel, so box coordinates, always above a score threshold, do not dilute it).
- Score outputs (`MeasureConfig.score_outputs`: a Sigmoid/Softmax output, see accuracy.scores) also count what a
  threshold or a ranking acts on, which an RMS can call small: the *lost rate*, the share of confident FP32 values
  (>= `score_threshold`, in the output's channels whose FP32 values all lie in [0, 1]) that fall below the threshold
  minus SCORE_TOLERANCE (the tolerance the detection F1 of accuracy.tasks allows), and for [N, classes] outputs the
  *flip rate*, the share of samples whose top class changes. A clip that pulls a detector's confident logits down
  loses detections while its RMS error falls; these rates see it. The output's error is the largest of its worst
  channel's error, the crossed rate and these rates. The headline is the worst output.
  0 = identical, lower is better; roughly "the worst channel is off by this fraction of its range".

Why worst and not mean: a detector with one broken class channel misses that class in every image; a mean over 84
channels dilutes the break 84 times. Why max(bulk, top): the bulk error sees a scale that is off for everything,
the top error sees the confident values a downstream threshold acts on, which the bulk (mostly near zero) hides.

Streaming: `OutputErrorMeter.add` takes one batch at a time (any batch size) and keeps running sums per channel
and the largest FP32 values with their errors (at most TOP_KEPT_PER_OUTPUT per output), never the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from qdqtool.accuracy.tasks import SCORE_TOLERANCE, looks_like_logits
from qdqtool.errors import DataError

SPREAD_RATIO = 10.0        # "very different ranges": an order of magnitude between the widest and narrowest slice
TOP_KEPT_PER_OUTPUT = 1 << 16   # largest FP32 values (with their errors) kept per output, shared by its channels
MIN_TOP_KEPT = 64
_TINY = 1e-12


@dataclass(frozen=True)
class MeasureConfig:
    channel_axes: Mapping[str, int] = field(default_factory=dict)  # output name -> axis override (batch axis is 0)
    threshold: Optional[float] = None     # a user-named score threshold: enables the "crossed threshold" rate
    top_fraction: float = 0.001           # share of each channel's largest FP32 values (over all data) on their own
    scale_floor: float = 1.0 / 256        # a channel's scale is at least this share of the loudest channel's scale
    score_outputs: Tuple[str, ...] = ()   # outputs whose confident values (and top class) are counted when lost
    score_threshold: float = 0.25         # FP32 values at or above it are confident (accuracy.scores)


DEFAULT_MEASURE = MeasureConfig()


@dataclass(frozen=True)
class OutputError:
    name: str
    channel_axis: Optional[int]       # None: the whole output is one channel
    channels: int
    worst_channel: int                # index along channel_axis (0 without a channel axis)
    worst_channel_error: float        # max over channels of max(rms error, top error), each against its FP32 scale
    mean_channel_error: float
    top_error: float                  # worst channel's RMS error on its top FP32 values, against its FP32 scale
    crossed_rate: Optional[float]     # worst channel's 1 - IoU of the above-threshold sets; None without a threshold
    lost_rate: Optional[float]        # score outputs: share of confident FP32 values the candidate drops; else None
    flip_rate: Optional[float]        # score outputs [N, classes]: share of samples whose top class changes
    cosine: float                     # whole-tensor cosine similarity (for reference: blind to small channels)
    sqnr_db: float                    # whole-tensor signal to quantization-noise ratio
    max_abs: float                    # largest absolute difference
    error: float                      # this output's part of the headline

    def as_dict(self) -> Dict[str, object]:
        return {key: (round(value, 6) if isinstance(value, float) else value) for key, value in self.__dict__.items()}


@dataclass(frozen=True)
class ErrorSummary:
    headline: float
    outputs: Dict[str, OutputError]
    samples: int

    @property
    def worst_output(self) -> Optional[str]:
        return max(self.outputs, key=lambda n: self.outputs[n].error) if self.outputs else None

    def as_dict(self) -> Dict[str, object]:
        return {"headline_error": round(self.headline, 6), "samples": self.samples,
                "outputs": {name: out.as_dict() for name, out in self.outputs.items()}}


def choose_channel_axis(reference: np.ndarray) -> Optional[int]:
    """The smallest non-batch axis whose slices' FP32 ranges differ by SPREAD_RATIO or more, None if there is none."""
    if reference.ndim < 2:
        return None
    sample_size = int(np.prod(reference.shape[1:]))
    axes = range(1, reference.ndim) if reference.ndim <= 3 else (1,)   # NCHW: H, W are positions, not channels
    for axis in sorted(axes, key=lambda a: (reference.shape[a], a)):
        length = reference.shape[axis]
        if length < 2 or length * length >= sample_size:    # a channel must be shorter than the rest of a sample
            continue
        others = tuple(a for a in range(reference.ndim) if a != axis)
        ranges = np.ptp(reference, axis=others).astype(np.float64)
        if ranges.max() >= SPREAD_RATIO * max(ranges.min(), _TINY) and ranges.max() > 0:
            return axis
    return None


def _channels_last(array: np.ndarray, axis: Optional[int]) -> np.ndarray:
    """(samples, values per channel, channels) in float64."""
    data = np.asarray(array, np.float64)
    if data.ndim == 0:
        data = data.reshape(1, 1)
    if data.ndim == 1:
        data = data.reshape(1, -1)
    if axis is None:
        return data.reshape(data.shape[0], -1, 1)
    return np.moveaxis(data, axis, -1).reshape(data.shape[0], -1, data.shape[axis])


class _OutputStats:
    """Running sums for one output: per channel (a few floats each) and for the whole tensor."""

    def __init__(self, name: str, axis: Optional[int], channels: int, scores: bool = False) -> None:
        self.name, self.axis, self.channels, self.scores = name, axis, channels, scores
        zeros = np.zeros(channels)
        self.ref_absmax, self.sq_err, self.count = zeros.copy(), zeros.copy(), zeros.copy()
        self.capacity = max(MIN_TOP_KEPT, TOP_KEPT_PER_OUTPUT // channels)
        self.top_ref = np.empty((0, channels))
        self.top_err = np.empty((0, channels))
        self.dot = self.ref_sq = self.cand_sq = self.err_sq = self.max_abs = 0.0
        self.crossed, self.above = zeros.copy(), zeros.copy()
        self.ref_min = np.full(channels, np.inf)
        self.confident, self.lost = zeros.copy(), zeros.copy()
        self.flips = self.ranked = 0

    def rows(self, batch: np.ndarray) -> np.ndarray:
        """One batch of this output as (values, channels) in float64."""
        data = _channels_last(batch, self.axis)
        if data.shape[-1] != self.channels:
            raise DataError(f"output {self.name!r} has {data.shape[-1]} channels in one batch and {self.channels} "
                            "in another; give batches of one shape")
        return data.reshape(-1, self.channels)

    def add(self, reference: np.ndarray, candidate: np.ndarray, config: MeasureConfig) -> None:
        ref, got = self.rows(reference), self.rows(candidate)
        if ref.size == 0:      # e.g. a detector's NMS output with nothing found in this batch
            return
        err = got - ref
        self._accumulate(ref, got, err, config)
        self._count_flips(reference, candidate)
        self._keep_top(ref, err)

    def _count_flips(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        """A score output shaped [N, classes]: how many samples change their top class."""
        if self.scores and looks_like_logits(reference.shape):
            ref, got = reference.reshape(reference.shape[0], -1), candidate.reshape(candidate.shape[0], -1)
            self.flips += int(np.count_nonzero(ref.argmax(1) != got.argmax(1)))
            self.ranked += ref.shape[0]

    def _accumulate(self, ref: np.ndarray, got: np.ndarray, err: np.ndarray, config: MeasureConfig) -> None:
        """The running sums over rows (values, channels) of FP32, candidate and their difference."""
        self.ref_absmax = np.maximum(self.ref_absmax, np.abs(ref).max(axis=0))
        self.sq_err += (err * err).sum(axis=0)
        self.count += ref.shape[0]
        self.dot += float((ref * got).sum())
        self.ref_sq += float((ref * ref).sum())
        self.cand_sq += float((got * got).sum())
        self.err_sq += float((err * err).sum())
        self.max_abs = max(self.max_abs, float(np.abs(err).max(initial=0.0)))
        if config.threshold is not None:
            ref_on, got_on = ref >= config.threshold, got >= config.threshold
            self.crossed += np.count_nonzero(ref_on != got_on, axis=0)
            self.above += np.count_nonzero(ref_on | got_on, axis=0)
        if self.scores:
            self.ref_min = np.minimum(self.ref_min, ref.min(axis=0))
            confident = ref >= config.score_threshold
            self.confident += np.count_nonzero(confident, axis=0)
            self.lost += np.count_nonzero(confident & (got < config.score_threshold - SCORE_TOLERANCE), axis=0)

    def _keep_top(self, ref: np.ndarray, err: np.ndarray) -> None:
        """Keep the `capacity` largest FP32 values seen so far per channel, with their errors."""
        self.top_ref, self.top_err = keep_largest(self.top_ref, self.top_err, ref, err, self.capacity)

    def _top_count(self, config: MeasureConfig) -> int:
        count = int(np.ceil(config.top_fraction * self.count.max())) if self.count.max() else 0
        return min(max(count, 1), self.top_ref.shape[0])

    def _top_rms(self, config: MeasureConfig) -> np.ndarray:
        """Per channel: RMS error on the top_fraction largest FP32 values of all data (at most `capacity`)."""
        count = self._top_count(config)
        if count == 0:
            return np.zeros(self.channels)
        chosen = np.take_along_axis(self.top_err, _largest_first(self.top_ref, count), axis=0)
        return np.sqrt((chosen * chosen).mean(axis=0))

    def result(self, config: MeasureConfig) -> OutputError:
        scale = np.maximum(self.ref_absmax, config.scale_floor * self.ref_absmax.max())
        scale = np.maximum(scale, _TINY)
        bulk = np.sqrt(self.sq_err / np.maximum(self.count, 1)) / scale
        top = self._top_rms(config) / scale
        per_channel = np.maximum(bulk, top)
        worst = int(per_channel.argmax())
        crossed = None
        if config.threshold is not None:
            crossed = float((self.crossed / np.maximum(self.above, 1)).max())
        norm = np.sqrt(self.ref_sq * self.cand_sq)
        cosine = self.dot / norm if norm > 0 else float(self.ref_sq == self.cand_sq)
        sqnr = float("inf") if self.err_sq == 0 else 10 * np.log10(max(self.ref_sq, _TINY) / self.err_sq)
        lost, flips = self._lost_rate(), (self.flips / self.ranked if self.ranked else None)
        error = max(float(per_channel[worst]), crossed or 0.0, lost or 0.0, flips or 0.0)
        return OutputError(self.name, self.axis, self.channels, worst, float(per_channel[worst]),
                           float(per_channel.mean()), float(top.max()), crossed, lost, flips, float(cosine),
                           float(sqnr), self.max_abs, error)

    def _lost_rate(self) -> Optional[float]:
        """Over the channels whose FP32 values all lie in [0, 1] (scores, not box coordinates): lost / confident."""
        if not self.scores:
            return None
        in_unit = (self.ref_min >= 0) & (self.ref_absmax <= 1 + 1e-6)
        confident = float(self.confident[in_unit].sum())
        return float(self.lost[in_unit].sum()) / confident if confident else 0.0


def keep_largest(kept_ref: np.ndarray, kept: np.ndarray, ref: np.ndarray, other: np.ndarray, capacity: int
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Per channel (column), the `capacity` rows with the largest FP32 values of the kept ones and new ones, with the
    matching rows of `other` (errors, or row numbers)."""
    ref, other = np.concatenate([kept_ref, ref]), np.concatenate([kept, other])
    if ref.shape[0] > capacity:
        order = np.argpartition(-ref, capacity - 1, axis=0)[:capacity]
        ref, other = np.take_along_axis(ref, order, axis=0), np.take_along_axis(other, order, axis=0)
    return ref, other


def samples_in(batch: Mapping[str, np.ndarray]) -> int:
    """How many samples one batch of outputs holds (its first output's dim 0; a 0-D or 1-D output is one)."""
    if not batch:
        return 0
    first = np.asarray(next(iter(batch.values())))
    return first.shape[0] if first.ndim > 1 else 1


def _largest_first(top_ref: np.ndarray, count: int) -> np.ndarray:
    return np.argsort(-top_ref, axis=0, kind="stable")[:count]


class OutputErrorMeter:
    """Streams batches of (FP32 reference, candidate) outputs; `result()` gives the measure over everything added."""

    def __init__(self, config: MeasureConfig = MeasureConfig()) -> None:
        if not 0 < config.top_fraction <= 1:
            raise ValueError("top_fraction must be in (0, 1]")
        self.config = config
        self._stats: Dict[str, _OutputStats] = {}
        self._samples = 0

    def add(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> None:
        """One batch: the same output names in both, arrays of equal shape with the batch on axis 0."""
        missing = sorted(set(reference) - set(candidate))
        if missing:
            raise DataError(f"the compared model has no output {missing[0]!r}; compare models with the same outputs")
        for name, ref in reference.items():
            ref, got = np.asarray(ref), np.asarray(candidate[name])
            if ref.shape != got.shape:
                raise DataError(f"output {name!r} has shape {got.shape} instead of the reference's {ref.shape}; "
                                "compare models with the same output shapes")
            if name not in self._stats:
                self._stats[name] = self._start(name, ref)
            self._stats[name].add(ref, got, self.config)
        self._samples += samples_in(reference)

    def _start(self, name: str, reference: np.ndarray) -> _OutputStats:
        axis = self.config.channel_axes.get(name)
        if axis is not None:
            if not -reference.ndim <= axis < reference.ndim:
                raise DataError(f"output {name!r} has {reference.ndim} axes, so it has no channel axis {axis}; "
                                "name an axis between 1 and the last")
            axis %= reference.ndim
        else:
            axis = choose_channel_axis(reference)
        channels = 1 if axis is None else reference.shape[axis]
        return _OutputStats(name, axis, channels, name in self.config.score_outputs)

    def result(self) -> ErrorSummary:
        outputs = {name: stats.result(self.config) for name, stats in self._stats.items()}
        headline = max((o.error for o in outputs.values()), default=0.0)
        return ErrorSummary(float(headline), outputs, self._samples)


def headline_error(references: Sequence[Mapping[str, np.ndarray]], candidates: Sequence[Mapping[str, np.ndarray]],
                   config: MeasureConfig = MeasureConfig()) -> float:
    """The headline over paired batches of outputs (0 = identical, lower is better)."""
    meter = OutputErrorMeter(config)
    for reference, candidate in zip(references, candidates, strict=True):
        meter.add(reference, candidate)
    return meter.result().headline


class ReferenceMeter:
    """The measure of many candidates against one fixed list of FP32 reference batches (auto's trials): what
    OutputErrorMeter gives over the same pairs, with the reference side (channel axes, where each channel's top
    values are) worked out once instead of on every candidate. It holds the reference arrays it is given (no
    copies) and the top values' positions: a trial's memory is one batch at a time, as in the streaming meter."""

    def __init__(self, references: Sequence[Mapping[str, np.ndarray]], config: MeasureConfig = MeasureConfig()) -> None:
        self.config = config
        start = OutputErrorMeter(config)
        self._outputs: Dict[str, _ReferenceSide] = {}
        for name in (references[0] if references else {}):
            batches = [np.asarray(r[name]) for r in references]
            self._outputs[name] = _ReferenceSide(start._start(name, batches[0]), batches, config)
        self._samples = sum(samples_in(reference) for reference in references)

    def result(self, candidates: Sequence[Mapping[str, np.ndarray]]) -> ErrorSummary:
        """The measure of the candidate batches (in the references' order) against the references."""
        outputs = {name: side.result([np.asarray(c[name]) for c in candidates], self.config)
                   for name, side in self._outputs.items()}
        headline = max((o.error for o in outputs.values()), default=0.0)
        return ErrorSummary(float(headline), outputs, self._samples)


class _ReferenceSide:
    """One output's FP32 batches and, per channel, where its top values are: for each batch, which entries of the
    top rows (in `_largest_first` order) it holds and at which of its rows."""

    def __init__(self, stats: _OutputStats, batches: Sequence[np.ndarray], config: MeasureConfig) -> None:
        self.name, self.axis, self.channels, self.scores = stats.name, stats.axis, stats.channels, stats.scores
        self.batches, self.shapes = list(batches), [b.shape for b in batches]
        bounds, rows = [], 0
        for batch in self.batches:   # the streaming meter's choice of top rows, batch by batch, ties included
            if not batch.size:       # e.g. a detector's NMS output with nothing found in this batch
                bounds.append((rows, rows))
                continue
            batch_rows = stats.rows(batch)
            numbers = np.broadcast_to(np.arange(rows, rows + batch_rows.shape[0])[:, None], batch_rows.shape)
            stats.top_ref, stats.top_err = keep_largest(stats.top_ref, stats.top_err.astype(np.intp), batch_rows,
                                                        numbers, stats.capacity)
            stats.count += batch_rows.shape[0]
            bounds.append((rows, rows + batch_rows.shape[0]))
            rows += batch_rows.shape[0]
        order = _largest_first(stats.top_ref, stats._top_count(config)) if rows else np.empty((0, self.channels), int)
        top = np.take_along_axis(stats.top_err, order, axis=0).astype(np.intp)
        self.top_ref = np.take_along_axis(stats.top_ref, order, axis=0)
        self.top_at = []
        for low, high in bounds:
            inside = (top >= low) & (top < high)
            self.top_at.append((np.nonzero(inside), top[inside] - low))

    def result(self, candidates: Sequence[np.ndarray], config: MeasureConfig) -> OutputError:
        if [c.shape for c in candidates] != self.shapes:
            raise DataError(f"output {self.name!r} has other shapes than the reference's; compare models with the same "
                            "output shapes")
        stats = _OutputStats(self.name, self.axis, self.channels, self.scores)
        top_got = np.zeros(self.top_ref.shape)
        for reference, candidate, (entries, rows) in zip(self.batches, candidates, self.top_at):
            if not reference.size:
                continue
            ref, got = stats.rows(reference), stats.rows(candidate)
            stats._accumulate(ref, got, got - ref, config)
            stats._count_flips(reference, candidate)
            top_got[entries] = got[rows, entries[1]]
        stats.top_ref, stats.top_err = self.top_ref, top_got - self.top_ref
        return stats.result(config)
