"""`qdqtool report LAYERS.json`: per-layer precision from TensorRT layer information (trtexec or engine inspector)."""

from __future__ import annotations

import functools
from pathlib import Path

import click

import qdqtool
from qdqtool.fileio import check_distinct_outputs, check_output_path, write_json_atomically
from qdqtool.report.engine_page import report_views, write_engine_page
from qdqtool.report.gates import COMPARISON_GATES, GATES, measures_tensorrt

from .common import emit_json, html_option, wrote_page
from .layer_table import report_text
from .precision_gates import EXIT_EPILOG, enforce_gates, report_options

MAX_DIFFERENCES_SHOWN = 30


@click.command("report", epilog=EXIT_EPILOG)
@click.argument("layer_info", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Also write the report as JSON to this file.")
@functools.partial(report_options, allowed={**GATES, **COMPARISON_GATES})
@click.option("--compare", "compare_model", type=click.Path(path_type=Path), metavar="MODEL.onnx",
              help="Compare with `qdqtool check`'s prediction for the Q/DQ ONNX model that produced the engine: per "
                   "gate, and per ONNX node (its layer, role and INT8/float precision).")
@html_option
def report_command(layer_info: Path, output: Path | None, fail_on: tuple[str, ...], as_json: bool, show: str,
                   compare_model: Path | None, html_path: Path | None) -> None:
    """Show which layers of a TensorRT engine run in INT8, from `trtexec --profilingVerbosity=detailed
    --exportLayerInfo=LAYERS.json` or the engine inspector's JSON (TensorRT 8.x to 11)."""
    if output is not None:
        check_output_path(layer_info, output)
    if html_path is not None:
        for source in (layer_info, compare_model):
            if source is not None:
                check_output_path(source, html_path, "html")
        check_distinct_outputs(output, html_path)
    report = qdqtool.read_report(layer_info)
    payload = report.to_json()
    comparison = None
    if compare_model is not None:
        comparison = qdqtool.compare_engine(report, compare_model)
        payload["compare"] = {"model": str(compare_model), **comparison.to_json()}
    if output is not None:
        write_json_atomically(output, payload)
    if html_path is not None:
        prediction = qdqtool.check_model(compare_model) if compare_model is not None else None
        views, differences = report_views(report, prediction)
        wrote_page(write_engine_page(html_path, f"qdqtool report {layer_info.name}", views, differences))
    if as_json:
        emit_json(payload)
    else:
        click.echo(report_text(report, show))
        if comparison is not None:
            click.echo(comparison_text(comparison, compare_model, measures_tensorrt(report)))
    enforce_gates(report, fail_on, comparison.counts() if comparison is not None else None)


def comparison_text(comparison: qdqtool.EngineComparison, model: Path, tensorrt: bool = True) -> str:
    if tensorrt:
        lines = [f"compared with `qdqtool check {model}` (predicted / observed):"]
    else:
        lines = [f"`qdqtool check {model}`'s TensorRT prediction; not observed: this is an ONNX Runtime build, "
                 "whose CPU nodes are not TensorRT's layers (build with TensorRT, export its layer information, "
                 "compare that)"]
    unknown = "observed unknown (names only)" if tensorrt else "not observable (ONNX Runtime build)"
    for row in comparison.gates:
        verdict = {True: "agrees", False: "DIFFERS", None: unknown}[row.agrees]
        observed = "?" if row.observed is None else row.observed
        lines.append(f"  {row.gate:15s} {row.predicted:4d} / {observed!s:>4}  {verdict}")
        if row.predicted_only:
            lines.append(f"    predicted only: {', '.join(row.predicted_only[:8])}")
        if row.observed_only:
            lines.append(f"    observed only: {', '.join(row.observed_only[:8])}")
    if not tensorrt:   # ONNX Runtime's nodes are no TensorRT layers: a per-node diff against them means nothing
        return "\n".join(lines)
    judged = "layer, role and precision" if comparison.precision_known else "layer and role (names only)"
    lines.append(f"per node ({judged}): {comparison.compared} ONNX nodes compared, "
                 f"{len(comparison.differences)} differ")
    for d in comparison.differences[:MAX_DIFFERENCES_SHOWN]:
        lines.append(f"  {d.node}: {d.what} differs: engine {d.expected}; predicted {d.predicted}")
    if len(comparison.differences) > MAX_DIFFERENCES_SHOWN:
        lines.append(f"  ... and {len(comparison.differences) - MAX_DIFFERENCES_SHOWN} more (--json lists all)")
    return "\n".join(lines)
