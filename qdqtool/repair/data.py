"""What fix-residuals reads besides the model (a ranges file, calibration data) and how it compares its output with
the input: shared by both scopes (repair/pipeline.py), so neither pipeline imports the other."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx

from qdqtool.accuracy.compare import measure_models
from qdqtool.accuracy.measure import ErrorSummary
from qdqtool.calibrate.collect import collect_ranges
from qdqtool.calibrate.observers import DEFAULT_METHOD
from qdqtool.calibrate.ranges import amax_map, load_ranges
from qdqtool.onnxgraph.qdqview import QdqView
from qdqtool.runner import create_session
from qdqtool.samples.images import Preprocess
from qdqtool.samples.opening import open_samples
from qdqtool.samples.sets import SampleSet, random_feed

log = logging.getLogger("qdqtool")
P = TypeVar("P")

DYNAMIC_DIM = 224   # random comparison inputs: size used for a dynamic spatial dimension


@dataclass(frozen=True)
class DataConfig:
    """Where scales may come from besides existing quantizers, and what to compare on."""

    ranges_file: Path | None = None
    data_dir: Path | None = None
    preprocess: Preprocess = field(default_factory=Preprocess)
    max_samples: int | None = None
    method: str = DEFAULT_METHOD
    batch_size: int = 8
    compare_samples: int = 3


def random_feeds(model: onnx.ModelProto, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [random_feed(model, rng, dynamic_dim=DYNAMIC_DIM) for _ in range(count)]


def compare_outputs(reference: onnx.ModelProto, candidate: onnx.ModelProto,
                    feeds: Iterable[Mapping[str, np.ndarray]]) -> dict[str, float]:
    """Largest absolute difference per graph output over the feeds."""
    providers = ["CPUExecutionProvider"]
    first, second = create_session(reference, providers=providers), create_session(candidate, providers=providers)
    names = [o.name for o in first.get_outputs()]
    worst = dict.fromkeys(names, 0.0)
    for feed in feeds:
        for name, a, b in zip(names, first.run(names, dict(feed)), second.run(names, dict(feed))):
            worst[name] = max(worst[name], float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
    return worst


def _samples(qdq: QdqView, data: DataConfig) -> SampleSet | None:
    if data.data_dir is None:
        return None
    return open_samples(qdq.float_graph, data.data_dir, data.preprocess, data.max_samples)


def plan_with_ranges(qdq: QdqView, data: DataConfig, planner: Callable[[dict[str, float]], P]
                     ) -> tuple[P, SampleSet | None, dict[str, int]]:
    """planner(ranges file), then again after a quick calibration on data of what that plan still observes.
    Returns (plan, the data samples or None, {"ranges-file"/"data": tensors measured})."""
    measured: dict[str, float] = {}
    sources: dict[str, int] = {}
    if data.ranges_file is not None:
        measured.update(amax_map(load_ranges(data.ranges_file)))
        sources["ranges-file"] = len(measured)
    samples = _samples(qdq, data)
    plan = planner(measured)
    wanted = [t for t in plan.observe if t not in measured]
    if samples is not None and wanted:
        log.info("quick calibration of %d tensors on %d samples", len(wanted), len(samples))
        collected = collect_ranges(qdq.float_model, wanted, samples.batches(data.batch_size), data.method)
        measured.update(amax_map(collected))
        sources["data"] = len(collected)
        plan = planner(measured)
    return plan, samples, sources


def compare_with_input(qdq: QdqView, fixed: onnx.ModelProto, samples: SampleSet | None,
                       data: DataConfig) -> tuple[dict[str, float], str, dict[str, ErrorSummary]]:
    """Largest output difference per graph output, input vs fixed model, on data samples (else random inputs); with
    data samples also the output error measure of both models against the float model behind the Q/DQ."""
    if samples is not None:
        feeds = [s for _, s in zip(range(data.compare_samples), samples)]
        compared_on = f"{len(feeds)} samples from {data.data_dir}"
    else:
        feeds = random_feeds(qdq.float_graph, data.compare_samples)
        compared_on = f"{len(feeds)} random inputs"
    diff = compare_outputs(qdq.model, fixed, feeds)
    errors = {}
    if samples is not None:   # real data: the measure of both models against the float model behind the Q/DQ
        errors = {"input": measure_models(qdq.float_graph, qdq.model, feeds, reference_weights=qdq.float_weight),
                  "fixed": measure_models(qdq.float_graph, fixed, feeds, reference_weights=qdq.float_weight)}
    log.info("largest output difference, input vs fixed model: %.6g (%s)", max(diff.values(), default=0.0),
             compared_on)
    return diff, compared_on, errors
