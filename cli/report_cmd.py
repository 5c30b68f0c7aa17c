"""`qdqtool report LAYERS.json`: per-layer precision from TensorRT layer information (trtexec or engine inspector)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from qdqtool.fileio import write_json_atomically
from qdqtool.gates import GATES, parse_gates
from qdqtool.layerinfo import read_layer_info

from .common import emit_json
from .layer_table import report_text
from .precision_gates import GATE_EXIT_STATUS, enforce_gates


@dataclass(frozen=True)
class ReportConfig:
    layer_info: Path
    output: Path | None
    gates: tuple[str, ...]
    as_json: bool
    with_layers: bool


@click.command("report", epilog=f"Exit status: 0 ok, 1 user error, {GATE_EXIT_STATUS} a --fail-on gate failed.")
@click.argument("layer_info", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Also write the report as JSON to this file.")
@click.option("--fail-on", "fail_on", default="", metavar="GATES",
              help="Comma list; exit 3 when any is found: " + ", ".join(GATES))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--summary-only", is_flag=True, help="Print the summary without the per-layer table.")
def report_command(layer_info: Path, output: Path | None, fail_on: str, as_json: bool, summary_only: bool) -> None:
    """Show which layers of a TensorRT engine run in INT8, from `trtexec --profilingVerbosity=detailed
    --exportLayerInfo=LAYERS.json` or the engine inspector's JSON (TensorRT 8.x to 11)."""
    config = ReportConfig(layer_info, output, parse_gates(fail_on), as_json, not summary_only)
    report = read_layer_info(config.layer_info)
    if config.output is not None:
        write_json_atomically(config.output, report.to_json())
    if config.as_json:
        emit_json(report.to_json())
    else:
        click.echo(report_text(report, config.with_layers))
    enforce_gates(report, config.gates)
