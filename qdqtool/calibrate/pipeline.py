"""`qdqtool calibrate`: FP32 ONNX + real data -> Q/DQ ONNX placed by TensorRT's rules, ranges file, optional cache."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol

import onnx

from qdqtool.accuracy.compare import measure_outputs
from qdqtool.accuracy.measure import ErrorSummary
from qdqtool.calibrate.auto import AutoChoice, choose_ranges, holdout_indices
from qdqtool.calibrate.collect import collect_ranges
from qdqtool.calibrate.observers import AUTO, DEFAULT_PERCENTILE, Method, check_percentile, method_setting
from qdqtool.calibrate.ranges import TensorRange, amax_map, ranges_beside, save_ranges
from qdqtool.calibrate.search import SearchConfig
from qdqtool.calibrate.sensitivity import keep_float_nodes, measure_sensitivity, model_outputs
from qdqtool.calibrate.summary import plan_summary
from qdqtool.calibrate.target import TargetResult, meet_error_target
from qdqtool.calibrate.trtcache import DEFAULT_VERSION_TAG, write_calibration_cache
from qdqtool.check.engine import predict_engine, standalone_notes
from qdqtool.errors import ConfigError, DataError
from qdqtool.fileio import check_distinct_outputs, check_not_data_file, check_output_path, save_model_atomically
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.prepare import (
    load_model_with_data_files,
    prepare_float_model,
    refer_to_external_weights,
    refuse_existing_qdq,
    refuse_integer_kernels,
)
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.placement.apply import apply_plan
from qdqtool.placement.plan import PlacementConfig, PlacementPlan, group_amax, plan_placement
from qdqtool.runner import check_session_opens
from qdqtool.samples.images import Preprocess
from qdqtool.samples.opening import open_samples
from qdqtool.samples.sets import SampleSet
from qdqtool.trt.kinds import Outcome, Rule
from qdqtool.trt.scales import scale_from_amax

log = logging.getLogger("qdqtool")


class RangeSource(Protocol):
    """Where calibrate's ranges come from when they are not collected on samples (e.g. a TensorRT cache): the rest
    of the pipeline (placement with the ranges, groups, weights, outputs) is the same."""

    def ranges(self, model: onnx.ModelProto, view: GraphView, plan: PlacementPlan, samples: Optional[SampleSet],
               progress: Optional[Callable[[int], None]]) -> Dict[str, TensorRange]:
        """A range for every tensor the plan (planned without ranges) observes; raises QdqError when it cannot."""

    def report(self, view: GraphView, plan: PlacementPlan, ranges: Dict[str, TensorRange],
               tensor_amax: Dict[str, float]) -> Dict[str, object]:
        """JSON-ready keys merged into the result's summary: what the final plan made of the source's ranges."""


@dataclass(frozen=True)
class CalibrationConfig:
    method: Method = AUTO                # a Method or its text; validated here (ConfigError)
    percentile: float = DEFAULT_PERCENTILE
    batch_size: int = 8
    max_samples: Optional[int] = None
    preprocess: Preprocess = field(default_factory=Preprocess)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    keep_float: int = 0                  # keep the consumers of the N most harmful quantizers float
    sensitivity_samples: int = 4         # calibration samples used to rank quantizers for keep_float
    search: SearchConfig = field(default_factory=SearchConfig)   # method auto
    max_error: Optional[float] = None    # keep the fewest most harmful quantizers' consumers float to meet it

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", method_setting(self.method))
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}", settings=("batch_size",))
        if self.keep_float < 0:
            raise ConfigError(f"keep_float must be 0 or more, got {self.keep_float}", settings=("keep_float",))
        check_percentile(self.percentile)


@dataclass(frozen=True)
class CalibrationOutputs:
    """What calibration writes: the Q/DQ model; the ranges file beside it by default (MODEL.ranges.json, which
    `build` and `fix-residuals` find there; write_ranges=False for none); a TensorRT cache when named."""

    model: Path
    ranges: Optional[Path] = None             # default: ranges_beside(model), unless write_ranges is False
    cache: Optional[Path] = None
    cache_version_tag: str = DEFAULT_VERSION_TAG
    write_ranges: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", Path(self.model))
        if self.ranges is None and self.write_ranges:
            object.__setattr__(self, "ranges", ranges_beside(self.model))
        elif not self.write_ranges:
            object.__setattr__(self, "ranges", None)


@dataclass(frozen=True)
class CalibrationResult:
    model: onnx.ModelProto
    plan: PlacementPlan
    ranges: Dict[str, TensorRange]
    tensor_amax: Dict[str, float]
    samples: int
    notes: List[str]
    output_error: Optional[ErrorSummary] = None   # the output error measure vs FP32 on a few calibration samples
    auto: Optional[AutoChoice] = None
    target: Optional[TargetResult] = None
    source_summary: Dict[str, object] = field(default_factory=dict)   # a RangeSource's report

    def summary(self) -> Dict[str, object]:
        summary = plan_summary(self.plan)
        summary["samples"] = self.samples
        summary["notes"] = list(self.notes)
        summary["output_error"] = self.output_error.as_dict() if self.output_error is not None else None
        if self.auto is not None:
            summary["auto"] = self.auto.summary()
        if self.target is not None:
            summary["max_error"] = self.target.as_dict()
        summary.update(self.source_summary)
        return summary


def weighted_outputs(view: GraphView, plan: PlacementPlan) -> List[str]:
    """Outputs of the weighted ops the plan quantizes: their max ranges go to the ranges file for ONNX Runtime."""
    return [view.by_name[d.node].output[0] for d in plan.decisions_for(Rule.WEIGHTED) if d.outcome == Outcome.INT8]


def calibrate_model(model: onnx.ModelProto, samples: Optional[SampleSet],
                    config: CalibrationConfig = CalibrationConfig(), progress: Optional[Callable[[int], None]] = None,
                    notes: Optional[List[str]] = None, source: Optional[RangeSource] = None) -> CalibrationResult:
    """Plan, collect ranges on the samples (or take them from source), plan again with the ranges, apply. The input
    model is not modified. Without samples (a source only) nothing is measured: no output error, no search."""
    if samples is None and (source is None or config.method == AUTO or config.keep_float or config.max_error):
        raise DataError("calibration samples are needed (to collect ranges, search them, or keep quantizers float "
                        "by their effect on the outputs); give a data folder", settings=("data",))
    view = GraphView(model)
    first = plan_placement(view, config.placement)
    log.info("observing %d tensors for %d quantizers", len(first.observe), len(first.quantized_tensors()))
    if source is None:
        ranges = collect_ranges(model, first.observe, samples.batches(config.batch_size), config.method,
                                percentile=config.percentile, progress=progress,
                                max_only=weighted_outputs(view, first))
    else:
        ranges = source.ranges(model, view, first, samples, progress)
    ranges = unclipped_model_inputs(ranges, view.input_names)
    amax = amax_map(ranges)   # decides the placement (Concat range spreads) before and after any search
    plan = plan_placement(view, config.placement, amax)
    feeds = list(islice(iter(samples), config.sensitivity_samples)) if samples is not None else []
    references = model_outputs(model, feeds) if feeds else []   # float sessions first: auto's trials add no memory
    auto = None
    if config.method == AUTO and source is None:
        auto = choose_ranges(model, plan, ranges, samples, view.input_names, config.search)
        ranges = auto.ranges
    tensor_amax = group_amax(plan, amax_map(ranges))
    notes = list(notes or [])
    if config.keep_float > 0:
        ranked = measure_sensitivity(model, plan, tensor_amax, feeds, references)
        kept = keep_float_nodes(ranked, config.keep_float)
        notes += [f"kept float by sensitivity: {s.tensor} -> {', '.join(s.consumers)} ({100 * s.error:.1f}% output "
                  "change)" for s in ranked[:config.keep_float]]
        placement = replace(config.placement, keep_float=config.placement.keep_float + kept)
        plan = plan_placement(view, placement, amax)
        tensor_amax = group_amax(plan, amax_map(ranges))
    target = None
    if config.max_error is not None:
        plan, target = meet_error_target(
            model, view, config.placement, amax, amax_map(ranges), plan,
            lambda: measure_sensitivity(model, plan, tensor_amax, feeds, references),
            samples.samples_at(holdout_indices(samples, config.search)), config.max_error)
        notes += [f"kept float to meet the maximum output error: consumers of {tensor} (costs: {cost.describe()})"
                  for tensor, cost in zip(target.kept, target.costs)]
        tensor_amax = group_amax(plan, amax_map(ranges))
    quantized = apply_plan(model, plan, tensor_amax)
    notes += standalone_notes(predict_engine(read_qdq(quantized), config.placement))   # the Reformats it leaves
    names = [o.name for o in model.graph.output]
    error = measure_outputs(names, references, model_outputs(quantized, feeds)) if feeds else None
    report = source.report(view, plan, ranges, tensor_amax) if source is not None else {}
    return CalibrationResult(quantized, plan, ranges, tensor_amax, len(samples) if samples is not None else 0, notes,
                             error, auto, target, report)


def unclipped_model_inputs(ranges: Dict[str, TensorRange], input_names) -> Dict[str, TensorRange]:
    """Model inputs are data with a known range (pixels): clipping them only loses information, so they use max."""
    result = dict(ranges)
    for name in input_names:
        if name in result and result[name].amax < result[name].observed_max:
            result[name] = replace(result[name], amax=result[name].observed_max, method="max (model input)")
    return result


def calibrate_loaded(original: onnx.ModelProto, data_dir, config: CalibrationConfig = CalibrationConfig(),
                     source: str = "the model", progress: Optional[Callable[[int], None]] = None,
                     on_samples: Optional[Callable[[int], None]] = None) -> CalibrationResult:
    """Refuse an already quantized model, prepare it, open the samples and calibrate (writes nothing)."""
    refuse_integer_kernels(original, source)
    refuse_existing_qdq(original, source)
    prepared, notes = prepare_float_model(original, source)
    samples = open_samples(prepared, data_dir, config.preprocess, config.max_samples)
    if on_samples is not None:
        on_samples(len(samples))
    return calibrate_model(prepared, samples, config, progress, notes)


def write_outputs(result: CalibrationResult, outputs: CalibrationOutputs, source: str,
                  external_data: bool = False) -> None:
    """The Q/DQ model (validated by opening a session; weights in OUT.data when external_data), the ranges file and
    the cache, each written atomically."""
    save_model_atomically(result.model, outputs.model, validate=check_session_opens, external_data=external_data)
    if outputs.ranges is not None:
        save_ranges(outputs.ranges, result.ranges.values(), source)
    if outputs.cache is not None:
        amax = {name: result.tensor_amax.get(name, r.amax) for name, r in result.ranges.items()}
        scales = {t: scale_from_amax(a) for t, a in sorted(amax.items())}
        write_calibration_cache(outputs.cache, scales, outputs.cache_version_tag)


def calibrate_file(model_path, data_dir, outputs: CalibrationOutputs, config: CalibrationConfig = CalibrationConfig(),
                   progress: Optional[Callable[[int], None]] = None,
                   on_samples: Optional[Callable[[int], None]] = None,
                   source: Optional[RangeSource] = None) -> CalibrationResult:
    """The whole command: validate everything first, calibrate, then write every output atomically. With a source,
    data_dir may be None (the source gives every range)."""
    check_distinct_outputs(outputs.model, outputs.ranges, outputs.cache)
    for path in (outputs.model, outputs.ranges, outputs.cache):
        if path is not None:
            check_output_path(model_path, path)
    original, data_files = load_model_with_data_files(model_path, with_weights=False)
    check_not_data_file(outputs.model, data_files)
    refuse_integer_kernels(original, str(model_path))
    refuse_existing_qdq(original, str(model_path))
    prepared, notes = prepare_float_model(original, str(model_path))
    del original  # a one-file model's weights: held once from here on
    if data_files:  # its external weights stay on file: read one at a time, never held whole by this process
        refer_to_external_weights(prepared, Path(model_path))
    samples = None if data_dir is None else open_samples(prepared, data_dir, config.preprocess, config.max_samples)
    if on_samples is not None and samples is not None:
        on_samples(len(samples))
    result = calibrate_model(prepared, samples, config, progress, notes, source)
    write_outputs(result, outputs, Path(model_path).name, external_data=bool(data_files))
    return result
