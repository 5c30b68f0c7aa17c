"""`qdqtool fix-residuals IN.onnx -o OUT.onnx`: thin click shell over qdqtool.fix_residuals."""

from __future__ import annotations

from pathlib import Path

import click

import qdqtool
from qdqtool.calibrate.observers import DEFAULT_METHOD, METHODS
from qdqtool.errors import OutputError
from qdqtool.placement.plan import PlacementConfig
from qdqtool.repair.plan import SCOPES, STANDALONE_ADD_CHOICES

from .common import emit_json
from .data_options import DataOptions, data_options
from .placement_options import placement_options
from .replace_lines import outcome_lines, reformat_hint, replace_lines


def result_lines(result: qdqtool.FixResult, output: Path | None, dry_run: bool) -> list[str]:
    plan = result.plan
    lines = [f"{len(plan.edits)} edits" + (" (dry run: nothing written)" if dry_run else "")]
    for edit in plan.edits:
        scale = f" scale {edit.scale:.6g}" if edit.scale is not None else ""
        where = f"{edit.node}[{edit.input_index}]" if edit.kind in ("insert", "remove") else edit.node
        lines.append(f"  {edit.kind:<13} {where} {edit.tensor}{scale}: {edit.reason}")
    lines += [f"  kept: {line}" for line in plan.kept]
    if plan.see_through:
        lines.append(f"  read through {len(plan.see_through)} no-op Cast/Identity nodes as the tensor behind them "
                     "(kept in the model)")
    return lines + outcome_lines(result, output, dry_run, reformat_hint(result.after), "fixed", "nothing to fix")


@click.command("fix-residuals")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="The repaired model to write.")
@click.option("--ranges", "ranges_file", type=click.Path(path_type=Path), default=None,
              help="Ranges JSON from `qdqtool calibrate` for tensors no existing quantizer covers.")
@click.option("--scope", type=click.Choice(SCOPES), default="residuals", show_default=True,
              help="residuals: repair residual Adds and Concats; all: re-place every Q/DQ by calibrate's rules with "
                   "the model's own scales (removes Q/DQ TensorRT cannot fuse).")
@click.option("--standalone-add", type=click.Choice(STANDALONE_ADD_CHOICES), default="keep", show_default=True,
              help="Adds with no fusible convolution: int8 (inputs and output quantized), float (none), keep.")
@click.option("--method", type=click.Choice(METHODS), default=DEFAULT_METHOD, show_default=True,
              help="Range method of the quick calibration on --data.")
@click.option("--compare-samples", type=click.IntRange(min=1), default=3, show_default=True,
              help="Samples (from --data, else random) on which input and fixed model outputs are compared.")
@click.option("--strict-scales", is_flag=True,
              help="Never infer a residual skip scale from the quantizers around the Add; a range must come from "
                   "an existing quantizer, --ranges or --data.")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@data_options
@placement_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan and result as JSON on stdout.")
def fix_command(model: Path, output: Path | None, ranges_file: Path | None, scope: str, standalone_add: str,
                method: str, compare_samples: int, strict_scales: bool, dry_run: bool, as_json: bool,
                data: DataOptions, placement: PlacementConfig) -> None:
    """Repair the Q/DQ placement of MODEL for TensorRT: quantize residual skip inputs, free the conv side of
    residual Adds, give Concats one scale (or float when ranges differ too much), merge double quantizers.

    Example: qdqtool fix-residuals model.qdq.onnx -o model.fixed.onnx --data photos/ --preset yolo
    """
    if output is None and not dry_run:
        raise OutputError("fix-residuals needs -o OUT.onnx (or --dry-run to only print the plan)")
    config = qdqtool.FixConfig(placement=placement, standalone_add=standalone_add, strict_scales=strict_scales,
                               scope=scope)
    data_config = qdqtool.DataConfig(ranges_file=ranges_file, data_dir=data.folder, preprocess=data.preprocess,
                                     max_samples=data.max_samples, method=method, compare_samples=compare_samples)
    result = qdqtool.fix_residuals(model, output, config, data_config, dry_run=dry_run)
    if as_json:
        emit_json({"model": str(model), "output": None if dry_run else str(output), "dry_run": dry_run,
                   **result.to_json()})
    else:
        lines = replace_lines(result, output, dry_run) if scope == "all" else result_lines(result, output, dry_run)
        click.echo("\n".join(lines))
