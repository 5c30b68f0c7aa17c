"""Collecting activation ranges: expose the planned tensors, run the model batch by batch, feed streaming observers."""

from __future__ import annotations

import logging
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence

import numpy as np
import onnx
from onnx import helper

from qdqtool.calibrate.observers import CandidateObserver, make_observer
from qdqtool.calibrate.ranges import TensorRange
from qdqtool.errors import DataError
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.runner import create_session

log = logging.getLogger("qdqtool")

Progress = Callable[[int], None]   # called with the number of samples just processed


def expose_tensors(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """A copy of the model whose graph outputs also include the given intermediate tensors."""
    view = GraphView(model)
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    for name in tensors:
        if name not in present:
            elem = view.elem_type(name) or onnx.TensorProto.FLOAT
            exposed.graph.output.append(helper.make_tensor_value_info(name, elem, None))
            present.add(name)
    return exposed


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
    session = create_session(expose_tensors(model, names), optimize=False, providers=providers)
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
        choices = ()
        if isinstance(observer, CandidateObserver):
            choices = tuple((k, float(v)) for k, v in observer.candidates().items())
        ranges[name] = TensorRange(name, amax, methods[name], float(observer.observed_max), choices)
    log.info("collected %s ranges of %d tensors over %d batches", method, len(ranges), batches)
    return ranges
