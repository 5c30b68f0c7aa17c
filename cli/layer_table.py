"""Plain-text rendering of a PrecisionReport: the per-layer table and the summary (shared by `build` and `report`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from qdqtool.report.gates import measures_tensorrt
from qdqtool.report.layers import LayerPrecision, PrecisionReport

NAME_WIDTH = 72
TACTIC_WIDTH = 36
LISTED_NAMES = 12


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _precisions(values: Sequence[str]) -> str:
    return ",".join(values) if values else "-"


def _flags(layer, reformat: str) -> str:
    return ",".join(flag for flag, on in (
        ("residual", layer.fused_residual_add), ("fallback", layer.is_fallback), (reformat, layer.is_reformat)) if on)


def costs(layer: LayerPrecision) -> bool:
    """A layer worth showing under --show problems: not INT8 out, a fallback, a Reformat or a requantize."""
    return not layer.outputs_int8 or layer.is_fallback or layer.is_reformat or layer.requantizes


def layer_table(report: PrecisionReport, only_problems: bool = False) -> str:
    tensorrt = measures_tensorrt(report)
    reformat = "reformat" if tensorrt else "q/dq"
    rows = [("#", "output", "inputs", "type", "flags", "layer (ONNX nodes fused)" if tensorrt else "node",
             "tactic" if tensorrt else "domain")]
    for index, layer in enumerate(report.layers):
        if only_problems and not costs(layer):
            continue
        rows.append((str(index), layer.precision, _precisions(layer.input_precisions), layer.layer_type or "-",
                     _flags(layer, reformat) or "-", _cut(layer.name, NAME_WIDTH), _cut(layer.tactic, TACTIC_WIDTH)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _listed(label: str, names: Iterable[str]) -> str:
    names = list(names)
    more = f", ... (+{len(names) - LISTED_NAMES})" if len(names) > LISTED_NAMES else ""
    shown = ", ".join(names[:LISTED_NAMES]) + more
    return f"{label} ({len(names)})" + (f": {shown}" if names else "")


def _counts(counts: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "none"


def summary_text(report: PrecisionReport) -> str:
    """TensorRT's layers in TensorRT's words; an ONNX Runtime build's nodes in ONNX Runtime's own (never as
    TensorRT's Reformats or float Adds: its CPU kernels fuse differently)."""
    body = _tensorrt_lines(report) if measures_tensorrt(report) else _onnxruntime_lines(report)
    return "\n".join([f"backend: {report.backend}    source: {report.source}", *body, *_latency_lines(report),
                      *(f"note: {note}" for note in report.notes)])


def _tensorrt_lines(report: PrecisionReport) -> list[str]:
    s = report.summary
    lines = [
        f"layers: {s.layer_count}    by output precision: {_counts(s.precision_counts)}",
        f"reformat layers: {s.reformat_count} standalone Q/DQ (the reformat gate)"
        + (f"; all Reformats by kind: {_counts(s.reformat_kinds)}" if s.reformat_kinds else "")
        + (f" ({_counts(s.reformat_conversions)})" if s.reformat_conversions else ""),
        f"fused residual convolutions: {len(s.fused_residual_convs)}" + (
            f", with INT8 output: {len(s.fused_int8_residuals)}" if report.precision_known else " (judged from names)"),
    ]
    if not report.precision_known:
        return [*lines, "precision: unknown (names only)"]
    lines += [
        _listed("Adds left in float", s.float_adds),
        _listed("Concats left in float", s.float_concats),
        _listed("Concats needing requantize", s.requant_concats),
        _listed("convolutions/Gemm/MatMul not computing in INT8", s.float_convs),
    ]
    if s.fallbacks:
        lines.append(_listed("float fallbacks between INT8 nodes", s.fallbacks))
    return lines


def _onnxruntime_lines(report: PrecisionReport) -> list[str]:
    s = report.summary
    return [
        f"ONNX Runtime nodes: {s.layer_count}    by output precision: {_counts(s.precision_counts)}",
        f"standalone QuantizeLinear/DequantizeLinear nodes: {s.reformat_count}",
        _listed("float nodes between INT8 nodes", s.fallbacks),
        _listed("Concats requantizing an input", s.requant_concats),
    ]


def _latency_lines(report: PrecisionReport) -> list[str]:
    latency = report.latency
    if latency is None:
        return []
    e = latency.engine
    lines = [f"latency: median {e.median_ms:.2f} ms, p90 {e.p90_ms:.2f}, p99 {e.p99_ms:.2f} over {e.runs} runs"]
    if latency.reference is not None:
        r = latency.reference
        lines.append(f"reference ({latency.reference_name}): median {r.median_ms:.2f} ms, p90 {r.p90_ms:.2f}, "
                     f"p99 {r.p99_ms:.2f};  INT8/FP32 latency ratio {latency.ratio:.2f}")
    return lines


def report_text(report: PrecisionReport, show: str = "all") -> str:
    """show: all (every layer), problems (layers that cost), summary (no table)."""
    table = "" if show == "summary" else layer_table(report, only_problems=show == "problems") + "\n\n"
    return table + summary_text(report)
