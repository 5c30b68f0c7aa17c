"""Collecting activation ranges: expose the planned tensors, run the model batch by batch, feed streaming observers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence

import numpy as np
import onnx
from onnx import helper

from qdqtool.calibrate.observers import make_observer
from qdqtool.calibrate.ranges import TensorRange
from qdqtool.errors import DataError
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.runner import create_session

log = logging.getLogger("qdqtool")

Progress = Callable[[int], None]   # called with the number of samples just processed


@contextmanager
def tensors_exposed(model: onnx.ModelProto, tensors: Sequence[str]) -> Iterator[onnx.ModelProto]:
    """The model itself with the given tensors added as graph outputs for the block (no copy: models near 2 GB)."""
    view = GraphView(model)
    kept = len(model.graph.output)
    present = {o.name for o in model.graph.output}
    try:
        for name in dict.fromkeys(tensors):
            if name not in present:
                model.graph.output.append(helper.make_tensor_value_info(name, view.elem_type(name)
                                                                        or onnx.TensorProto.FLOAT, None))
        yield model
    finally:
        del model.graph.output[kept:]


def collect_ranges(
    model: onnx.ModelProto,
    tensors: Sequence[str],
    samples: Iterable[Mapping[str, np.ndarray]],
    method: str = "entropy",
    *,
    percentile: float = 99.99,
    progress: Optional[Progress] = None,
    providers: Optional[Sequence[str]] = None,
    max_only: Sequence[str] = (),
) -> Dict[str, TensorRange]:
    """Run every sample (or batch) once and return a calibrated range per tensor. Memory is one batch at a time.

    Tensors in max_only (and not in tensors) get the cheap max observer: ranges kept for reports and backends."""
    methods = {name: "max" for name in max_only}
    methods.update({name: method for name in tensors})
    names = sorted(methods)
    if not names:
        return {}
    with tensors_exposed(model, names) as exposed:
        session = create_session(exposed, optimize=False, providers=providers)
    observers = {name: make_observer(methods[name], percentile=percentile) for name in names}
    batches = 0
    for feeds in samples:
        values = session.run(names, dict(feeds))
        for name, value in zip(names, values):
            observers[name].update(np.asarray(value))
        del values  # one batch of activations alive at a time, not two
        batches += 1
        if progress is not None:
            progress(int(next(iter(feeds.values())).shape[0]) if feeds else 1)
    if batches == 0:
        raise DataError("no calibration samples were read; check the --data folder")
    ranges = {}
    for name, observer in observers.items():
        amax = float(observer.amax())
        if not np.isfinite(amax):
            raise DataError(f"tensor {name} took non-finite values during calibration; check the data and "
                            "preprocessing (scale/mean/std)")
        ranges[name] = TensorRange(name, amax, methods[name], float(observer.observed_max))
    log.info("collected %s ranges of %d tensors over %d batches", method, len(ranges), batches)
    return ranges
