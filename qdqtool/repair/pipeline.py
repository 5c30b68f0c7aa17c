"""The fix-residuals pipeline: read, plan with the best ranges available, apply, compare outputs, write atomically."""

from __future__ import annotations

import dataclasses
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
from qdqtool.check.predict import CheckReport, check_model
from qdqtool.errors import ConfigError, ModelError
from qdqtool.fileio import (
    check_not_data_file,
    check_output_path,
    save_model_atomically,
    write_bytes_atomically,
)
from qdqtool.onnxgraph.prepare import load_model_with_data_files, upgrade_opset
from qdqtool.onnxgraph.qdqview import QdqView, read_qdq
from qdqtool.repair.apply import RepairEdit, apply_repairs
from qdqtool.repair.plan import SCOPES, FixConfig, FixPlan, plan_repairs, require_ranges
from qdqtool.runner import check_session_opens, create_session
from qdqtool.samples.images import Preprocess
from qdqtool.samples.sets import SampleSet, open_samples, random_feed
from qdqtool.trt.kinds import Cause, EditKind, ProblemKind
from qdqtool.trt.rules import MIN_QDQ_OPSET, QDQ_OPS

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


@dataclass(frozen=True)
class FixResult:
    plan: FixPlan
    model: onnx.ModelProto | None            # None when nothing needed fixing
    after: CheckReport
    range_sources: dict[str, int]            # ranges-file / data -> tensors measured
    max_abs_diff: dict[str, float]           # per graph output, input model vs fixed model
    compared_on: str
    output_error: dict[str, ErrorSummary] = field(default_factory=dict)   # "input"/"fixed" vs the float model

    def to_json(self) -> dict[str, object]:
        payload = self.plan.to_json()
        payload.update({"changed": self.model is not None, "after": self.after.to_json(),
                        "range_sources": self.range_sources, "compared_on": self.compared_on,
                        "max_abs_diff": self.max_abs_diff,
                        "largest_difference": max(self.max_abs_diff.values(), default=0.0),
                        "output_error": {k: v.as_dict() for k, v in self.output_error.items()}})
        return payload


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


def fix_model(qdq: QdqView, config: FixConfig, data: DataConfig) -> FixResult:
    """Plan (ranges file, then a quick calibration of what is still unknown), apply, check, compare.
    config.scope "all" re-places every Q/DQ instead (replace_pipeline.py; its result is a ReplaceResult)."""
    if config.scope not in SCOPES:
        raise ConfigError(f"scope {config.scope!r} is not one of {', '.join(SCOPES)}", settings=("scope",))
    if config.scope == "all":
        from qdqtool.repair.replace_pipeline import replace_model  # it builds on this module's helpers
        return replace_model(qdq, config, data)
    convert = None
    if any(p.kind == ProblemKind.OPSET for p in qdq.problems):
        qdq = read_qdq(upgrade_opset(qdq.model, MIN_QDQ_OPSET))
        convert = RepairEdit(EditKind.CONVERT_OPSET, "", 0, "", None, "per-channel weight DequantizeLinear needs "
                             f"opset {MIN_QDQ_OPSET}: converted with onnx's version converter", Cause.OPSET)
    plan, samples, sources = plan_with_ranges(qdq, data, lambda measured: plan_repairs(qdq, config, measured))
    require_ranges(plan)
    if convert is not None:
        plan = dataclasses.replace(plan, edits=(convert, *plan.edits))
    if not plan.edits:
        return FixResult(plan, None, plan.before, sources, {}, "nothing changed")
    fixed = apply_repairs(qdq, plan.edits)
    diff, compared_on, errors = compare_with_input(qdq, fixed, samples, data)
    return FixResult(plan, fixed, check_model(read_qdq(fixed), config.placement), sources, diff, compared_on, errors)


def read_model_to_fix(model: onnx.ModelProto, source: str = "the model") -> QdqView:
    """The QdqView of a model that holds Q/DQ; a model without any is refused (there is nothing to repair)."""
    if not any(node.op_type in QDQ_OPS for node in model.graph.node):
        raise ModelError(f"{source} has no QuantizeLinear/DequantizeLinear nodes, so there is no placement to "
                         "repair; quantize the FP32 model with qdqtool's calibrate first")
    return read_qdq(model)


def fix_file(model_path, output_path, config: FixConfig | None = None, data: DataConfig | None = None,
             dry_run: bool = False) -> FixResult:
    """The whole command. dry_run writes nothing; an empty plan writes the input bytes unchanged (idempotence)."""
    config, data = config or FixConfig(), data or DataConfig()
    if output_path is not None:
        check_output_path(model_path, output_path)
        if data.ranges_file is not None:
            check_output_path(data.ranges_file, output_path)
    model, data_files = load_model_with_data_files(model_path)
    if output_path is not None:
        check_not_data_file(output_path, data_files)
    result = fix_model(read_model_to_fix(model, str(model_path)), config, data)
    if dry_run or output_path is None:
        return result
    if result.model is None and not data_files:
        write_bytes_atomically(output_path, Path(model_path).read_bytes())
    else:  # a model with external data is written anew: its data file goes beside the output
        save_model_atomically(result.model or model, output_path, validate=check_session_opens,
                              external_data=bool(data_files))
    return result
