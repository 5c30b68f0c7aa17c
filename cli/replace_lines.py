"""Text output of `fix-residuals --scope all`, and the hint `--scope residuals` gives when reformats remain."""

from __future__ import annotations

from pathlib import Path

from qdqtool.check.predict import CheckReport
from qdqtool.repair.result import FixResult
from qdqtool.trt.kinds import Kind


def reformat_hint(after: CheckReport) -> list[str]:
    """When check still predicts standalone Q/DQ layers: how many, and the scope that removes them."""
    count = after.counts().get("reformat", 0)
    if not count:
        return []
    return [f"check still predicts {count} reformat layers (Q/DQ TensorRT cannot fuse, run as standalone layers); "
            "--scope all re-places every Q/DQ by calibrate's rules and removes them"]


def replace_lines(result: FixResult, output: Path | None, dry_run: bool) -> list[str]:
    plan = result.plan
    counts = ", ".join(f"{kind} {n}" for kind, n in plan.kinds().items())
    lines = [f"--scope all: {counts}" + (" (dry run: nothing written)" if dry_run else "")]
    for kind in plan.kinds():
        causes = ", ".join(f"{cause} {n}" for cause, n in plan.causes(kind).items())
        lines.append(f"{kind} ({causes}):")
        for change in (c for c in plan.changes if c.kind == kind):
            scale = f" scale {change.scale:.6g}" if change.scale is not None else ""
            lines.append(f"  {change.node}[{change.input_index}] {change.tensor}{scale}: {change.reason}")
    notes = []
    if plan.see_through:
        notes.append(f"removed {len(plan.see_through)} no-op Cast/Identity nodes (read as the tensor behind them)")
    if result.converted_opset:
        notes.append("converted to opset 13 (per-channel weight DequantizeLinear needs it)")
    return lines + outcome_lines(result, output, dry_run, notes, "re-placed", "already placed")


def outcome_lines(result: FixResult, output: Path | None, dry_run: bool, notes: list[str],
                  fixed: str, unchanged: str) -> list[str]:
    """check's counts before -> after, notes, the output difference and what was written (both scopes)."""
    before, after = result.plan.before.counts(), result.after.counts()
    two_before, two_after = (len(r.of_kind(Kind.TWO_SCALES)) for r in (result.plan.before, result.after))
    lines = ["predicted by check, before -> after: "
             + ", ".join(f"{gate} {before[gate]} -> {after[gate]}" for gate in before)
             + f"; tensors at two scales {two_before} -> {two_after}", *notes]
    if result.max_abs_diff:
        lines.append(f"largest output difference, input vs {fixed}: {max(result.max_abs_diff.values()):.6g} "
                     f"({result.compared_on})")
    if result.output_error:
        before_error, after_error = result.output_error["input"], result.output_error["fixed"]
        lines.append(f"output error vs the float model behind the Q/DQ ({result.compared_on}): headline "
                     f"{before_error.headline:.4f} input -> {after_error.headline:.4f} {fixed} (worst channel "
                     "against its FP32 scale; 0 = identical)")
    if not dry_run and output is not None:
        lines.append(f"wrote {output}" + ("" if result.model is not None else f" (unchanged copy: {unchanged})"))
    return lines
