"""`qdqtool fix-residuals IN.onnx -o OUT.onnx`: thin click shell over qdqtool.repair.pipeline."""

from __future__ import annotations

from pathlib import Path

import click

from qdqtool.calibrate.observers import METHODS
from qdqtool.errors import OutputError
from qdqtool.repair.pipeline import DataConfig, FixResult, fix_file
from qdqtool.repair.plan import STANDALONE_ADD_CHOICES, FixConfig

from .common import emit_json
from .data_options import data_options, pop_data_options
from .placement_options import placement_from_options, placement_options


def result_lines(result: FixResult, output: Path | None, dry_run: bool) -> list[str]:
    plan = result.plan
    lines = [f"{len(plan.edits)} edits" + (" (dry run: nothing written)" if dry_run else "")]
    for edit in plan.edits:
        scale = f" scale {edit.scale:.6g}" if edit.scale is not None else ""
        where = f"{edit.node}[{edit.input_index}]" if edit.kind in ("insert", "remove") else edit.node
        lines.append(f"  {edit.kind:<13} {where} {edit.tensor}{scale}: {edit.reason}")
    lines += [f"  kept: {line}" for line in plan.kept]
    before, after = plan.before.counts(), result.after.counts()
    lines.append("predicted by check, before -> after: "
                 + ", ".join(f"{gate} {before[gate]} -> {after[gate]}" for gate in before))
    if result.max_abs_diff:
        lines.append(f"largest output difference, input vs fixed: {max(result.max_abs_diff.values()):.6g} "
                     f"({result.compared_on})")
    if result.output_error:
        before, after = result.output_error["input"], result.output_error["fixed"]
        lines.append(f"output error vs the float model behind the Q/DQ ({result.compared_on}): headline "
                     f"{before.headline:.4f} input -> {after.headline:.4f} fixed (worst channel against its FP32 "
                     "scale; 0 = identical)")
    if not dry_run and output is not None:
        lines.append(f"wrote {output}" + ("" if result.model is not None else " (unchanged copy: nothing to fix)"))
    return lines


@click.command("fix-residuals")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="The repaired model to write.")
@click.option("--ranges", "ranges_file", type=click.Path(path_type=Path), default=None,
              help="Ranges JSON from `qdqtool calibrate` for tensors no existing quantizer covers.")
@click.option("--standalone-add", type=click.Choice(STANDALONE_ADD_CHOICES), default="keep", show_default=True,
              help="Adds with no fusible convolution: int8 (inputs and output quantized), float (none), keep.")
@click.option("--method", type=click.Choice(METHODS), default="percentile", show_default=True,
              help="Range method of the quick calibration on --data.")
@click.option("--compare-samples", type=click.IntRange(min=1), default=3, show_default=True,
              help="Samples (from --data, else random) on which input and fixed model outputs are compared.")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@data_options
@placement_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan and result as JSON on stdout.")
def fix_command(model: Path, output: Path | None, ranges_file: Path | None, standalone_add: str, method: str,
                compare_samples: int, dry_run: bool, as_json: bool, **options) -> None:
    """Repair the Q/DQ placement of MODEL for TensorRT: quantize residual skip inputs, free the conv side of
    residual Adds, give Concats one scale (or float when ranges differ too much), merge double quantizers.

    Example: qdqtool fix-residuals model.qdq.onnx -o model.fixed.onnx --data photos/ --preset yolo
    """
    if output is None and not dry_run:
        raise OutputError("fix-residuals needs -o OUT.onnx (or --dry-run to only print the plan)")
    data = pop_data_options(options)
    config = FixConfig(placement=placement_from_options(options), standalone_add=standalone_add)
    data_config = DataConfig(ranges_file=ranges_file, data_dir=data.folder, preprocess=data.preprocess,
                             max_samples=data.max_samples, method=method, compare_samples=compare_samples)
    result = fix_file(model, output, config, data_config, dry_run=dry_run)
    if as_json:
        emit_json({"model": str(model), "output": None if dry_run else str(output), "dry_run": dry_run,
                   **result.to_json()})
    else:
        click.echo("\n".join(result_lines(result, output, dry_run)))
