"""`qdqtool report LAYERS.json`: per-layer precision from TensorRT layer information (trtexec or engine inspector)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import click

from qdqtool.fileio import check_output_path, write_json_atomically
from qdqtool.report.gates import parse_gates
from qdqtool.report.layerinfo import read_layer_info
from qdqtool.report.versus_check import GateComparison, compare_with_prediction, predict_for_model

from .common import emit_json
from .layer_table import report_text
from .precision_gates import GATE_EXIT_STATUS, enforce_gates, report_options


@dataclass(frozen=True)
class ReportConfig:
    layer_info: Path
    output: Path | None
    gates: tuple[str, ...]
    as_json: bool
    with_layers: bool
    compare_model: Path | None


@click.command("report", epilog=f"Exit status: 0 ok, 1 user error, {GATE_EXIT_STATUS} a --fail-on gate failed.")
@click.argument("layer_info", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Also write the report as JSON to this file.")
@report_options
@click.option("--compare", "compare_model", type=click.Path(path_type=Path), metavar="MODEL.onnx",
              help="Compare with `qdqtool check`'s prediction for the Q/DQ ONNX model that produced the engine.")
def report_command(layer_info: Path, output: Path | None, fail_on: str, as_json: bool, summary_only: bool,
                   compare_model: Path | None) -> None:
    """Show which layers of a TensorRT engine run in INT8, from `trtexec --profilingVerbosity=detailed
    --exportLayerInfo=LAYERS.json` or the engine inspector's JSON (TensorRT 8.x to 11)."""
    config = ReportConfig(layer_info, output, parse_gates(fail_on), as_json, not summary_only, compare_model)
    if config.output is not None:
        check_output_path(config.layer_info, config.output)
    report = read_layer_info(config.layer_info)
    payload = report.to_json()
    rows = []
    if config.compare_model is not None:
        rows = compare_with_prediction(report, *predict_for_model(config.compare_model))
        payload["compare"] = {"model": str(config.compare_model), "gates": [asdict(row) for row in rows]}
    if config.output is not None:
        write_json_atomically(config.output, payload)
    if config.as_json:
        emit_json(payload)
    else:
        click.echo(report_text(report, config.with_layers))
        if rows:
            click.echo(comparison_text(rows, config.compare_model))
    enforce_gates(report, config.gates)


def comparison_text(rows: list[GateComparison], model: Path) -> str:
    lines = [f"compared with `qdqtool check {model}` (predicted / observed):"]
    for row in rows:
        verdict = {True: "agrees", False: "DIFFERS", None: "observed unknown (names only)"}[row.agrees]
        observed = "?" if row.observed is None else row.observed
        lines.append(f"  {row.gate:15s} {row.predicted:4d} / {observed!s:>4}  {verdict}")
        if row.predicted_only:
            lines.append(f"    predicted only: {', '.join(row.predicted_only[:8])}")
        if row.observed_only:
            lines.append(f"    observed only: {', '.join(row.observed_only[:8])}")
    return "\n".join(lines)
