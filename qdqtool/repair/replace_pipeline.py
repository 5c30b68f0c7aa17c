"""`fix-residuals` with scope all, end to end: plan the re-placement, measure what the model gives no range for,
apply with calibrate's applier, compare outputs and `check`'s counts with the input model."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import onnx

from qdqtool.accuracy.measure import ErrorSummary
from qdqtool.check.predict import CheckReport, check_model
from qdqtool.errors import RangeError
from qdqtool.onnxgraph.prepare import default_opset, upgrade_opset
from qdqtool.onnxgraph.qdqview import QdqView, read_qdq
from qdqtool.placement.apply import apply_plan
from qdqtool.repair.kept_weights import as_weight_values
from qdqtool.repair.pipeline import DataConfig, compare_with_input, plan_with_ranges
from qdqtool.repair.plan import FixConfig
from qdqtool.repair.replace_all import ReplacePlan, plan_replacement
from qdqtool.trt.rules import MIN_QDQ_OPSET

log = logging.getLogger("qdqtool")


@dataclass(frozen=True)
class ReplaceResult:
    plan: ReplacePlan
    model: onnx.ModelProto | None            # None when the model already is placed as the plan says
    after: CheckReport
    range_sources: dict[str, int]            # ranges-file / data -> tensors measured
    max_abs_diff: dict[str, float]           # per graph output, input model vs re-placed model
    compared_on: str
    converted_opset: bool = False
    output_error: dict[str, ErrorSummary] = field(default_factory=dict)   # "input"/"fixed" vs the float model

    def to_json(self) -> dict[str, object]:
        payload = self.plan.to_json()
        payload.update({"changed": self.model is not None, "after": self.after.to_json(),
                        "converted_opset": self.converted_opset, "measured": self.range_sources,
                        "compared_on": self.compared_on, "max_abs_diff": self.max_abs_diff,
                        "largest_difference": max(self.max_abs_diff.values(), default=0.0),
                        "output_error": {k: v.as_dict() for k, v in self.output_error.items()}})
        return payload


def require_replacement_ranges(plan: ReplacePlan) -> None:
    if plan.missing:
        shown = ", ".join(plan.missing[:10]) + (" ..." if len(plan.missing) > 10 else "")
        raise RangeError(f"{len(plan.missing)} tensors the placement quantizes have no quantizer in the model and "
                         f"no range can be inferred ({shown}); give a ranges file from `qdqtool calibrate` or "
                         "calibration data", settings=("ranges", "data"))


def replaced_model(qdq: QdqView, plan: ReplacePlan) -> onnx.ModelProto:
    """The float model with the planned Q/DQ, the model's own scales and its int8 weights."""
    return apply_plan(qdq.float_model, plan.placement, plan.tensor_amax, as_weight_values(plan.weights))


def replace_model(qdq: QdqView, config: FixConfig, data: DataConfig) -> ReplaceResult:
    """Plan (the model's scales, then a ranges file, data, inference), apply, check, compare with the input."""
    converted = default_opset(qdq.model) < MIN_QDQ_OPSET
    if converted:
        qdq = read_qdq(upgrade_opset(qdq.model, MIN_QDQ_OPSET))
    plan, samples, sources = plan_with_ranges(qdq, data, lambda measured: plan_replacement(qdq, config, measured))
    require_replacement_ranges(plan)
    for change in plan.changes:
        if change.kind not in ("keep", "keep-weight"):
            log.info("%s %s[%d] %s: %s", change.kind, change.node, change.input_index, change.tensor, change.reason)
    if not plan.changed and not converted:
        return ReplaceResult(plan, None, plan.before, sources, {}, "nothing changed")
    replaced = replaced_model(qdq, plan)
    diff, compared_on, errors = compare_with_input(qdq, replaced, samples, data)
    after = check_model(read_qdq(replaced), config.placement)
    return ReplaceResult(plan, replaced, after, sources, diff, compared_on, converted, errors)
