"""`qdqtool check MODEL.onnx`: thin click shell over qdqtool.check.predict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from qdqtool.check.predict import check_model, report_lines
from qdqtool.onnxgraph.prepare import load_model
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.placement.plan import RESIDUAL_MODES, PlacementConfig
from qdqtool.report.gates import GATES, describe_violations, parse_gates

from .common import emit_json
from .precision_gates import GATE_EXIT_STATUS, exit_on_failed_gates


@dataclass(frozen=True)
class CheckConfig:
    model: Path
    gates: tuple[str, ...]
    as_json: bool
    all_rows: bool
    residual_mode: str


@click.command("check", epilog=f"Exit status: 0 ok, 1 user error, {GATE_EXIT_STATUS} a --fail-on gate failed.")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--fail-on", "fail_on", default="", metavar="GATES",
              help="Comma list; exit 3 when any is predicted: " + ", ".join(GATES))
@click.option("--residual-mode", type=click.Choice(RESIDUAL_MODES), default="skip", show_default=True,
              help="Accept Q/DQ on both residual Add inputs at one scale as fused (both) or only the skip (skip).")
@click.option("--all", "all_rows", is_flag=True, help="List INT8 layers too, not only what falls back or costs.")
@click.option("--json", "as_json", is_flag=True, help="Print the prediction as JSON on stdout.")
def check_command(model: Path, fail_on: str, residual_mode: str, all_rows: bool, as_json: bool) -> None:
    """Predict from the graph alone how TensorRT will fuse and type the layers of a Q/DQ MODEL: fused
    Conv(+act)(+Add) groups, Adds/Concats in INT8 or float, requantize and Reformat layers, each with its reason."""
    config = CheckConfig(model, parse_gates(fail_on), as_json, all_rows, residual_mode)
    report = check_model(read_qdq(load_model(config.model)), PlacementConfig(residual_mode=config.residual_mode))
    if config.as_json:
        emit_json({"model": str(config.model), **report.to_json()})
    else:
        click.echo("\n".join(report_lines(report, only_problems=not config.all_rows)))
    exit_on_failed_gates(describe_violations(report.counts(), config.gates))
