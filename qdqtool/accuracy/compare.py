"""`qdqtool compare`: an FP32 model and its quantized model on the same samples, streamed one sample at a time."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import onnx

from qdqtool.accuracy.measure import DEFAULT_MEASURE, ErrorSummary, MeasureConfig, OutputErrorMeter
from qdqtool.accuracy.per_tensor import TensorError, TensorErrorMeter, marginal_errors, quantized_tensors
from qdqtool.accuracy.scores import scored_measure
from qdqtool.accuracy.tasks import TaskMeter, TaskResult, top1_meters
from qdqtool.errors import DataError, ModelError
from qdqtool.onnxgraph.edit import expose_tensors
from qdqtool.onnxgraph.prepare import load_model
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.runner import create_session
from qdqtool.samples.images import Preprocess
from qdqtool.samples.opening import open_samples
from qdqtool.samples.sets import SampleSet, model_input_specs
from qdqtool.weightstore import WeightSource

log = logging.getLogger("qdqtool")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class CompareConfig:
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    task: Optional[str] = None              # detect | segment | classify
    preprocess: Preprocess = field(default_factory=Preprocess)
    max_samples: Optional[int] = None
    per_tensor: bool = False
    marginal_samples: int = 4               # samples for the one-quantizer-at-a-time view (0: skip it)


@dataclass(frozen=True)
class CompareResult:
    errors: ErrorSummary
    task: Optional[TaskResult]
    top1: Dict[str, TaskResult]
    tensors: List[TensorError]              # worst first; empty without per_tensor
    samples: int
    unmatched_tensors: int = 0              # quantized tensors the FP32 model has no tensor of that name for

    @property
    def headline(self) -> float:
        return self.errors.headline

    def as_dict(self) -> Dict[str, object]:
        payload = self.errors.as_dict()
        payload["task"] = self.task.as_dict() if self.task else None
        payload["top1"] = {name: r.as_dict() for name, r in self.top1.items()}
        payload["tensors"] = [t.as_dict() for t in self.tensors]
        payload["unmatched_tensors"] = self.unmatched_tensors
        return payload


def named_outputs(session, feed: Mapping[str, np.ndarray], names: Sequence[str]) -> Dict[str, np.ndarray]:
    return dict(zip(names, session.run(list(names), dict(feed))))


def measure_outputs(names: Sequence[str], references: Sequence[Sequence[np.ndarray]],
                    candidates: Sequence[Sequence[np.ndarray]], config: MeasureConfig = DEFAULT_MEASURE
                    ) -> ErrorSummary:
    """The measure over lists of outputs in graph order (one list per sample or batch)."""
    meter = OutputErrorMeter(config)
    for ref, got in zip(references, candidates, strict=True):
        meter.add(dict(zip(names, ref)), dict(zip(names, got)))
    return meter.result()


def measure_models(reference: onnx.ModelProto, candidate: onnx.ModelProto, feeds: Sequence[Mapping[str, np.ndarray]],
                   config: MeasureConfig = DEFAULT_MEASURE, reference_weights: Optional[WeightSource] = None,
                   ) -> ErrorSummary:
    """The measure of candidate against reference on a few feeds (for the summaries of fix-residuals and build).
    reference_weights: reference is a skeleton (e.g. a QdqView's float_graph) whose weights come from it."""
    first, second = create_session(reference, weights=reference_weights), create_session(candidate)
    names = [o.name for o in first.get_outputs()]
    meter = OutputErrorMeter(config)
    for feed in feeds:
        meter.add(named_outputs(first, feed, names), named_outputs(second, feed, names))
    return meter.result()


def _check_pair(fp32: onnx.ModelProto, quantized: onnx.ModelProto) -> List[str]:
    fp32_outputs = [o.name for o in fp32.graph.output]
    missing = sorted(set(fp32_outputs) - {o.name for o in quantized.graph.output})
    if missing:
        raise ModelError(f"the quantized model has no output {missing[0]!r}; compare a model with the quantized "
                         "model made from it (same output names)")
    fp32_inputs = {s.name for s in model_input_specs(fp32)}
    other_inputs = {s.name for s in model_input_specs(quantized)}
    if fp32_inputs != other_inputs:
        raise ModelError(f"the models have different inputs ({sorted(fp32_inputs)} vs {sorted(other_inputs)}); "
                         "compare a model with the quantized model made from it")
    return fp32_outputs


def compare_models(fp32: onnx.ModelProto, quantized: onnx.ModelProto, samples: SampleSet,
                   config: CompareConfig = CompareConfig(), progress: Optional[Progress] = None) -> CompareResult:
    """Run both models on every sample (one at a time) and measure the quantized one against FP32."""
    names = _check_pair(fp32, quantized)
    tensors, unmatched, qdq = [], 0, None
    if config.per_tensor:
        qdq = read_qdq(quantized)
        fp32_names = {t for node in fp32.graph.node for t in node.output} | {i.name for i in fp32.graph.input}
        tensors = quantized_tensors(qdq, fp32_names)
        unmatched = len({q.q_node for q in qdq.edges.values()}) - len(tensors)
        if unmatched:
            log.info("%d quantized tensors have no tensor of the same name in the FP32 model", unmatched)
    # per tensor: no graph optimisation, so every tensor keeps its name (and Q/DQ runs as written)
    optimize = not config.per_tensor
    inputs = {s.name for s in model_input_specs(fp32)}
    fp32_names = names + [t.tensor for t in tensors if t.tensor not in names and t.tensor not in inputs]
    fp32_session = create_session(expose_tensors(fp32, fp32_names), optimize=optimize)
    int8_session = create_session(expose_tensors(quantized, [t.dequantized for t in tensors]), optimize=optimize)
    int8_names = names + [t.dequantized for t in tensors if t.dequantized not in names]
    meter = OutputErrorMeter(scored_measure(fp32, config.measure, config.task))
    tensor_meter = TensorErrorMeter(tensors)
    task = TaskMeter(config.task, config.measure.threshold) if config.task else None
    top1: Optional[Dict[str, TaskMeter]] = None
    kept_feeds = []
    count = 0
    for feed in samples:
        reference = {**feed, **named_outputs(fp32_session, feed, fp32_names)}
        candidate = named_outputs(int8_session, feed, int8_names)
        outputs_ref = {n: reference[n] for n in names}
        outputs_got = {n: candidate[n] for n in names}
        meter.add(outputs_ref, outputs_got)
        if top1 is None:
            top1 = top1_meters(outputs_ref)
        for one in [*top1.values(), *([task] if task else [])]:
            one.add(outputs_ref, outputs_got)
        tensor_meter.add(reference, candidate)
        del reference, candidate
        if len(kept_feeds) < config.marginal_samples:
            kept_feeds.append(feed)
        count += 1
        if progress is not None:
            progress(1)
    if count == 0:
        raise DataError("no samples were read; check the data folder")
    marginal = None
    if qdq is not None and config.marginal_samples > 0:
        marginal = marginal_errors(qdq, tensors, kept_feeds, config.measure)
    return CompareResult(meter.result(), task.result() if task else None,
                         {name: m.result() for name, m in (top1 or {}).items()},
                         tensor_meter.result(marginal) if tensors else [], count, unmatched)


def compare_files(fp32_path, quantized_path, data_dir, config: CompareConfig = CompareConfig(),
                  progress: Optional[Progress] = None, on_samples: Optional[Progress] = None) -> CompareResult:
    """The whole command: load and check both models (paths or ModelProtos) and the samples (a folder, or arrays as
    open_samples takes them) first, then compare."""
    fp32, quantized = (m if isinstance(m, onnx.ModelProto) else load_model(m) for m in (fp32_path, quantized_path))
    samples = open_samples(fp32, data_dir, config.preprocess, config.max_samples)
    if on_samples is not None:
        on_samples(len(samples))
    return compare_models(fp32, quantized, samples, config, progress)
