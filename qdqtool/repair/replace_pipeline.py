"""`fix-residuals` with scope all, end to end: plan the re-placement, measure what the model gives no range for,
apply with calibrate's applier, compare outputs and `check`'s counts with the input model."""

from __future__ import annotations

import logging

import onnx

from qdqtool.check.predict import check_model
from qdqtool.errors import RangeError
from qdqtool.onnxgraph.prepare import default_opset, upgrade_opset
from qdqtool.onnxgraph.qdqview import QdqView, read_qdq
from qdqtool.placement.apply import apply_plan
from qdqtool.repair.data import DataConfig, compare_with_input, plan_with_ranges
from qdqtool.repair.kept_weights import as_weight_values
from qdqtool.repair.plan import FixConfig
from qdqtool.repair.replace_all import ReplacePlan, plan_replacement
from qdqtool.repair.result import FixResult
from qdqtool.trt.rules import MIN_QDQ_OPSET

log = logging.getLogger("qdqtool")


def require_replacement_ranges(plan: ReplacePlan) -> None:
    if plan.missing:
        shown = ", ".join(plan.missing[:10]) + (" ..." if len(plan.missing) > 10 else "")
        raise RangeError(f"{len(plan.missing)} tensors the placement quantizes have no quantizer in the model and "
                         f"no range can be inferred ({shown}); give a ranges file from `qdqtool calibrate` or "
                         "calibration data", settings=("ranges", "data"))


def replaced_model(qdq: QdqView, plan: ReplacePlan) -> onnx.ModelProto:
    """The float model with the planned Q/DQ, the model's own scales and its int8 weights."""
    return apply_plan(qdq.float_model, plan.placement, plan.tensor_amax, as_weight_values(plan.weights))


def replace_model(qdq: QdqView, config: FixConfig, data: DataConfig) -> FixResult:
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
        return FixResult(plan, None, plan.before, sources, {}, "nothing changed")
    replaced = replaced_model(qdq, plan)
    diff, compared_on, errors = compare_with_input(qdq, replaced, samples, data)
    after = check_model(read_qdq(replaced), config.placement)
    return FixResult(plan, replaced, after, sources, diff, compared_on, errors, converted)
