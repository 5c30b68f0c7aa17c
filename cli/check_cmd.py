"""`qdqtool check MODEL.onnx`: thin click shell over qdqtool.check_model."""

from __future__ import annotations

from pathlib import Path

import click

import qdqtool
from qdqtool.check.predict import report_lines
from qdqtool.fileio import check_output_path
from qdqtool.placement.plan import RESIDUAL_MODES
from qdqtool.report.engine_page import check_views, write_engine_page
from qdqtool.report.gates import describe_violations

from .common import emit_json, html_option, wrote_page
from .precision_gates import EXIT_EPILOG, exit_on_failed_gates, fail_on_option, show_option

SUMMARY_PREFIXES = ("counts: ", "kinds: ", "problem: ")


def check_text(report: qdqtool.CheckReport, show: str) -> str:
    """show: all (INT8 findings too), problems (what falls back or costs), summary (counts and problems only)."""
    lines = report_lines(report, only_problems=show != "all")
    if show == "summary":
        lines = [line for line in lines if line.startswith(SUMMARY_PREFIXES)]
    return "\n".join(lines)


@click.command("check", epilog=EXIT_EPILOG)
@click.argument("model", type=click.Path(path_type=Path))
@fail_on_option("is predicted")
@click.option("--residual-mode", type=click.Choice(RESIDUAL_MODES), default="skip", show_default=True,
              help="Accept Q/DQ on both residual Add inputs at one scale as fused (both) or only the skip (skip).")
@show_option("problems")
@click.option("--json", "as_json", is_flag=True, help="Print the prediction as JSON on stdout.")
@html_option
def check_command(model: Path, fail_on: tuple[str, ...], residual_mode: str, show: str, as_json: bool,
                  html_path: Path | None) -> None:
    """Predict from the graph alone how TensorRT will fuse and type the layers of a Q/DQ MODEL: fused
    Conv(+act)(+Add) groups, Adds/Concats in INT8 or float, requantize and Reformat layers, each with its reason."""
    if html_path is not None:
        check_output_path(model, html_path, "html")
    report = qdqtool.check_model(model, qdqtool.PlacementConfig(residual_mode=residual_mode))
    if html_path is not None:
        wrote_page(write_engine_page(html_path, f"qdqtool check {model.name}", check_views(report)))
    if as_json:
        emit_json({"model": str(model), **report.to_json()})
    else:
        click.echo(check_text(report, show))
    exit_on_failed_gates(describe_violations(report.counts(), fail_on))
