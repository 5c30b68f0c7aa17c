"""The fix-residuals pipeline: read, plan with the best ranges available, apply, compare outputs, write atomically.
scope residuals repairs the model's own placement edit by edit; scope all re-places every Q/DQ by calibrate's
rules (replace_pipeline.py); both give one FixResult."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import onnx

from qdqtool.check.predict import check_model
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
from qdqtool.repair.data import DataConfig, compare_with_input, plan_with_ranges
from qdqtool.repair.plan import SCOPES, FixConfig, plan_repairs, require_ranges
from qdqtool.repair.replace_pipeline import replace_model
from qdqtool.repair.result import FixResult
from qdqtool.runner import check_session_opens
from qdqtool.trt.kinds import Cause, EditKind, ProblemKind
from qdqtool.trt.rules import MIN_QDQ_OPSET, QDQ_OPS

log = logging.getLogger("qdqtool")

__all__ = ["DataConfig", "FixResult", "fix_file", "fix_model", "read_model_to_fix"]


def fix_model(qdq: QdqView, config: FixConfig, data: DataConfig) -> FixResult:
    """Plan (ranges file, then a quick calibration of what is still unknown), apply, check, compare.
    config.scope "all" re-places every Q/DQ instead (replace_pipeline.py), with the same result type."""
    if config.scope not in SCOPES:
        raise ConfigError(f"scope {config.scope!r} is not one of {', '.join(SCOPES)}", settings=("scope",))
    if config.scope == "all":
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
    return FixResult(plan, fixed, check_model(read_qdq(fixed), config.placement), sources, diff, compared_on, errors,
                     convert is not None)


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
