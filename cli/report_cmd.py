"""`qdqtool report LAYERS.json`: per-layer precision from TensorRT layer information (trtexec or engine inspector)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

import qdqtool
from qdqtool.fileio import check_output_path, write_json_atomically
from qdqtool.report.gates import measures_tensorrt

from .common import emit_json
from .layer_table import report_text
from .precision_gates import EXIT_EPILOG, enforce_gates, report_options


@click.command("report", epilog=EXIT_EPILOG)
@click.argument("layer_info", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Also write the report as JSON to this file.")
@report_options
@click.option("--compare", "compare_model", type=click.Path(path_type=Path), metavar="MODEL.onnx",
              help="Compare with `qdqtool check`'s prediction for the Q/DQ ONNX model that produced the engine.")
def report_command(layer_info: Path, output: Path | None, fail_on: tuple[str, ...], as_json: bool, show: str,
                   compare_model: Path | None) -> None:
    """Show which layers of a TensorRT engine run in INT8, from `trtexec --profilingVerbosity=detailed
    --exportLayerInfo=LAYERS.json` or the engine inspector's JSON (TensorRT 8.x to 11)."""
    if output is not None:
        check_output_path(layer_info, output)
    report = qdqtool.read_report(layer_info)
    payload = report.to_json()
    rows = []
    if compare_model is not None:
        rows = qdqtool.compare_report(report, compare_model)
        payload["compare"] = {"model": str(compare_model), "gates": [asdict(row) for row in rows]}
    if output is not None:
        write_json_atomically(output, payload)
    if as_json:
        emit_json(payload)
    else:
        click.echo(report_text(report, show))
        if rows:
            click.echo(comparison_text(rows, compare_model, measures_tensorrt(report)))
    enforce_gates(report, fail_on)


def comparison_text(rows: list[qdqtool.GateComparison], model: Path, tensorrt: bool = True) -> str:
    if tensorrt:
        lines = [f"compared with `qdqtool check {model}` (predicted / observed):"]
    else:
        lines = [f"`qdqtool check {model}`'s TensorRT prediction; not observed: this is an ONNX Runtime build, "
                 "whose CPU nodes are not TensorRT's layers (build with TensorRT, export its layer information, "
                 "compare that)"]
    unknown = "observed unknown (names only)" if tensorrt else "not observable (ONNX Runtime build)"
    for row in rows:
        verdict = {True: "agrees", False: "DIFFERS", None: unknown}[row.agrees]
        observed = "?" if row.observed is None else row.observed
        lines.append(f"  {row.gate:15s} {row.predicted:4d} / {observed!s:>4}  {verdict}")
        if row.predicted_only:
            lines.append(f"    predicted only: {', '.join(row.predicted_only[:8])}")
        if row.observed_only:
            lines.append(f"    observed only: {', '.join(row.observed_only[:8])}")
    return "\n".join(lines)
