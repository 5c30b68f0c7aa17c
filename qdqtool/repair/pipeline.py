"""The fix-residuals pipeline: read, plan with the best ranges available, apply, compare outputs, write atomically."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from qdqtool.accuracy.compare import measure_models
from qdqtool.accuracy.measure import ErrorSummary
from qdqtool.calibrate.collect import collect_ranges
from qdqtool.calibrate.ranges import amax_map, load_ranges
from qdqtool.check.predict import CheckReport, check_model
from qdqtool.errors import ModelError
from qdqtool.fileio import (
    check_output_path,
    save_model_atomically,
    write_bytes_atomically,
)
from qdqtool.onnxgraph.prepare import load_model, upgrade_opset
from qdqtool.onnxgraph.qdqview import QdqView, read_qdq
from qdqtool.repair.apply import RepairEdit, apply_repairs
from qdqtool.repair.plan import FixConfig, FixPlan, plan_repairs, require_ranges
from qdqtool.runner import check_session_opens, create_session
from qdqtool.samples.sets import Preprocess, SampleSet, model_input_specs, random_feed
from qdqtool.trt.rules import MIN_QDQ_OPSET, QDQ_OPS

log = logging.getLogger("qdqtool")

DYNAMIC_DIM = 224   # random comparison inputs: size used for a dynamic spatial dimension


@dataclass(frozen=True)
class DataConfig:
    """Where scales may come from besides existing quantizers, and what to compare on."""

    ranges_file: Path | None = None
    data_dir: Path | None = None
    preprocess: Preprocess = field(default_factory=Preprocess)
    max_samples: int | None = None
    method: str = "percentile"
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
    return SampleSet(data.data_dir, model_input_specs(qdq.float_model), data.preprocess, data.max_samples)


def fix_model(qdq: QdqView, config: FixConfig, data: DataConfig) -> FixResult:
    """Plan (ranges file, then a quick calibration of what is still unknown), apply, check, compare."""
    convert = None
    if any(p.kind == "opset" for p in qdq.problems):
        qdq = read_qdq(upgrade_opset(qdq.model, MIN_QDQ_OPSET))
        convert = RepairEdit("convert-opset", "", 0, "", None, f"per-channel weight DequantizeLinear needs opset "
                             f"{MIN_QDQ_OPSET}: converted with onnx's version converter")
    measured: dict[str, float] = {}
    sources: dict[str, int] = {}
    if data.ranges_file is not None:
        measured.update(amax_map(load_ranges(data.ranges_file)))
        sources["ranges-file"] = len(measured)
    samples = _samples(qdq, data)
    plan = plan_repairs(qdq, config, measured)
    if samples is not None:
        wanted = [t for t in plan.observe if t not in measured]
        if wanted:
            log.info("quick calibration of %d tensors on %d samples", len(wanted), len(samples))
            collected = collect_ranges(qdq.float_model, wanted, samples.batches(data.batch_size), data.method)
            measured.update(amax_map(collected))
            sources["data"] = len(collected)
            plan = plan_repairs(qdq, config, measured)
    require_ranges(plan)
    if convert is not None:
        plan = dataclasses.replace(plan, edits=(convert, *plan.edits))
    if not plan.edits:
        return FixResult(plan, None, plan.before, sources, {}, "nothing changed")
    fixed = apply_repairs(qdq, plan.edits)
    if samples is not None:
        feeds = [s for _, s in zip(range(data.compare_samples), samples)]
        compared_on = f"{len(feeds)} samples from {data.data_dir}"
    else:
        feeds = random_feeds(qdq.float_model, data.compare_samples)
        compared_on = f"{len(feeds)} random inputs"
    diff = compare_outputs(qdq.model, fixed, feeds)
    errors = {}
    if samples is not None:   # real data: the measure of both models against the float model behind the Q/DQ
        errors = {"input": measure_models(qdq.float_model, qdq.model, feeds),
                  "fixed": measure_models(qdq.float_model, fixed, feeds)}
    log.info("largest output difference, input vs fixed model: %.6g (%s)", max(diff.values(), default=0.0),
             compared_on)
    return FixResult(plan, fixed, check_model(read_qdq(fixed), config.placement), sources, diff, compared_on, errors)


def fix_file(model_path, output_path, config: FixConfig | None = None, data: DataConfig | None = None,
             dry_run: bool = False) -> FixResult:
    """The whole command. dry_run writes nothing; an empty plan writes the input bytes unchanged (idempotence)."""
    config, data = config or FixConfig(), data or DataConfig()
    if output_path is not None:
        check_output_path(model_path, output_path)
    model = load_model(model_path)
    if not any(node.op_type in QDQ_OPS for node in model.graph.node):
        raise ModelError(f"{model_path} has no QuantizeLinear/DequantizeLinear nodes, so there is no placement to "
                         "repair; quantize an FP32 model with `qdqtool calibrate`")
    qdq = read_qdq(model)
    result = fix_model(qdq, config, data)
    if dry_run or output_path is None:
        return result
    if result.model is None:
        write_bytes_atomically(output_path, Path(model_path).read_bytes())
    else:
        save_model_atomically(result.model, output_path, validate=check_session_opens)
    return result
