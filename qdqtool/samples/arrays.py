"""Samples given in code rather than as a folder: a numpy array, a dict of arrays, or an iterable of feed dicts (what
onnxruntime's CalibrationDataReader yields). Each is validated against the model's inputs as a folder's files are."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from qdqtool.errors import DataError
from qdqtool.samples.sets import InputSpec, Sample, Samples, conform, logger

HOW = ("give a numpy array (samples along axis 0) for a one-input model, a dict of arrays keyed by input name, "
       "or an iterable of feed dicts (input name -> array)")


def _split(arrays: Mapping[str, np.ndarray], specs: Sequence[InputSpec]) -> list[Sample]:
    """Arrays holding samples along axis 0 -> one feed per sample (per fixed batch when the model's batch is N > 1)."""
    counts = {name: len(array) for name, array in arrays.items()}
    if len(set(counts.values())) > 1:
        raise DataError(f"the arrays hold different numbers of samples ({counts}); give each input the same number")
    total = next(iter(counts.values()), 0)
    fixed = {s.shape[0] for s in specs if s.shape and s.shape[0] not in (None, 1)}
    step = fixed.pop() if len(fixed) == 1 else 1
    if total % step:
        raise DataError(f"{total} samples do not fill batches of {step}, the model's fixed batch size")
    return [{name: array[i:i + step] for name, array in arrays.items()} for i in range(0, total, step)]


def _feeds(data, specs: Sequence[InputSpec]) -> list[Mapping[str, np.ndarray]]:
    names = [s.name for s in specs]
    if isinstance(data, np.ndarray):
        if len(specs) != 1:
            raise DataError(f"one array feeds a one-input model, this one has {len(specs)} inputs "
                            f"({', '.join(names)}); give a dict of arrays keyed by input name")
        return _split({names[0]: data}, specs)
    if isinstance(data, Mapping):
        return _split({name: np.asarray(value) for name, value in data.items()}, specs)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        feeds = list(data)
        if not all(isinstance(feed, Mapping) for feed in feeds):
            raise DataError(f"an iterable of samples must yield dicts (input name -> array); {HOW}")
        return feeds
    raise DataError(f"cannot read samples from a {type(data).__name__}; {HOW}, or the path of a folder")


class ArraySamples(Samples):
    """Samples held in memory, each conformed to the model's inputs (a batch dimension of 1 added when missing)."""

    kind = "array"

    def __init__(self, data, specs: Sequence[InputSpec], max_samples: int | None = None):
        self.specs = list(specs)
        if max_samples is not None and max_samples < 1:
            raise DataError(f"max samples must be at least 1, got {max_samples}")
        names = {s.name for s in self.specs}
        self.feeds: list[Sample] = []
        for index, feed in enumerate(_feeds(data, self.specs)[:max_samples]):
            label = f"array sample {index}"
            if set(feed) != names:
                raise DataError(f"{label} has inputs {sorted(feed)}, the model {sorted(names)}; give one array per "
                                "model input, keyed by its name")
            self.feeds.append({s.name: conform(np.asarray(feed[s.name]), s, label) for s in self.specs})
        if not self.feeds:
            raise DataError(f"no samples were given; {HOW}")
        logger.info("%d sample(s) from arrays", len(self.feeds))

    def __len__(self) -> int:
        return len(self.feeds)

    def label(self, index: int) -> str:
        return f"array sample {index}"

    def load(self, index: int) -> Sample:
        return self.feeds[index]
