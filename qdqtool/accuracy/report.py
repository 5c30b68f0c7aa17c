"""Human lines and gate checks for the output error measure and compare results (JSON-ready data elsewhere)."""

from __future__ import annotations

from typing import List, Optional

from qdqtool.accuracy.compare import CompareResult
from qdqtool.accuracy.measure import ErrorSummary, OutputError


def _channel(out: OutputError) -> str:
    if out.channel_axis is None:
        return "whole output"
    return f"worst channel {out.worst_channel} of {out.channels} (axis {out.channel_axis})"


def output_line(out: OutputError) -> str:
    crossed = "" if out.crossed_rate is None else f", crossed threshold {100 * out.crossed_rate:.2f}%"
    crossed += "" if out.lost_rate is None else f", confident scores lost {100 * out.lost_rate:.2f}%"
    crossed += "" if out.flip_rate is None else f", top class changed {100 * out.flip_rate:.2f}%"
    return (f"  {out.name}: error {out.error:.4f} ({_channel(out)}: {out.worst_channel_error:.4f}, mean channel "
            f"{out.mean_channel_error:.4f}, top values {out.top_error:.4f}{crossed}); cosine {out.cosine:.5f}, "
            f"SQNR {out.sqnr_db:.1f} dB, max abs {out.max_abs:.4g}")


def error_lines(summary: ErrorSummary, what: str = "outputs vs FP32") -> List[str]:
    """The headline and one line per output: what calibrate, fix-residuals, build and compare print."""
    lines = [f"{what} on {summary.samples} samples: headline error {summary.headline:.4f} "
             "(worst output channel against its FP32 scale; 0 = identical)"]
    return lines + [output_line(out) for out in summary.outputs.values()]


def result_lines(result: CompareResult, shown: int = 10) -> List[str]:
    lines = error_lines(result.errors)
    for name, top1 in result.top1.items():
        lines.append(f"  {name}: top-1 agrees with FP32 on {100 * top1.value:.1f}% of {top1.reference_count} samples")
    if result.task is not None:
        task = result.task
        threshold = "" if task.threshold is None else f" at threshold {task.threshold:g}"
        counted = {"detect": " detections; one within 0.05 of the threshold in the other model is found",
                   "segment": " pixels above the threshold", "classify": " samples"}[task.task]
        lines.append(f"{task.metric} vs FP32{threshold} on {task.output}: {task.value:.4f} "
                     f"(FP32 {task.reference_count}, quantized {task.candidate_count}{counted})")
    if result.tensors:
        lines.append(f"quantized activations, worst {min(shown, len(result.tensors))} of {len(result.tensors)} "
                     "(FP32 tensor vs its dequantized value; marginal: output error with only this quantizer):")
        for item in result.tensors[:shown]:
            marginal = "" if item.marginal_error is None else f", marginal {item.marginal_error:.4f}"
            lines.append(f"  {item.tensor.tensor} ({item.tensor.q_node} -> {item.tensor.feeds}): relative error "
                         f"{item.relative_error:.4f}, SQNR {item.sqnr_db:.1f} dB{marginal}")
    if result.unmatched_tensors:
        lines.append(f"  ({result.unmatched_tensors} quantized tensors have no tensor of that name in the FP32 model)")
    return lines


def failed_gates(result: CompareResult, max_error: Optional[float] = None, min_sqnr: Optional[float] = None,
                 min_agreement: Optional[float] = None) -> List[str]:
    """One line per failed threshold."""
    failures = []
    if max_error is not None and result.headline > max_error:
        failures.append(f"headline error {result.headline:.4f} > {max_error:g}")
    if min_sqnr is not None:
        failures += [f"{o.name}: SQNR {o.sqnr_db:.1f} dB < {min_sqnr:g}" for o in result.errors.outputs.values()
                     if o.sqnr_db < min_sqnr]
    if min_agreement is not None and result.task is not None and result.task.value < min_agreement:
        failures.append(f"{result.task.metric} {result.task.value:.4f} < {min_agreement:g}")
    return failures
