"""`qdqtool build MODEL.onnx -o ENGINE`: TensorRT engine (or ONNX Runtime build) and per-layer precision report."""

from __future__ import annotations

from pathlib import Path

import click

from qdqtool.accuracy.report import error_lines
from qdqtool.build.pipeline import BACKENDS, BuildConfig, build_engine
from qdqtool.build.shapes import parse_shapes
from qdqtool.fileio import write_json_atomically
from qdqtool.report.gates import parse_gates

from .common import emit_json
from .data_options import data_options, pop_data_options
from .layer_table import report_text
from .precision_gates import GATE_EXIT_STATUS, enforce_gates, report_options


@click.command("build", epilog=f"Exit status: 0 ok, 1 user error, {GATE_EXIT_STATUS} a --fail-on gate failed.")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", "engine", type=click.Path(path_type=Path), required=True,
              help="Engine file to write (TensorRT plan, or ONNX Runtime's optimised .onnx).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="auto: TensorRT when it imports and sees a GPU, else ONNX Runtime.")
@click.option("--shapes", multiple=True, metavar="NAME:MIN/OPT/MAX",
              help="Profile of a dynamic input, e.g. images:1x3x320x320/1x3x640x640/4x3x640x640 (repeatable).")
@click.option("--workspace", "workspace_mib", type=click.IntRange(min=1), help="TensorRT workspace limit in MiB.")
@click.option("--weakly-typed", is_flag=True,
              help="TensorRT 10: INT8 builder flag instead of a strongly typed network.")
@click.option("--fp16", is_flag=True, help="TensorRT 10: weakly typed with FP16 for the non-quantized rest.")
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True, help="Timed runs for latency.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Untimed warm-up runs.")
@click.option("--no-latency", is_flag=True, help="Skip the latency measurement.")
@click.option("--reference", type=click.Path(path_type=Path),
              help="FP32 model timed in the same run (default: the model with its Q/DQ removed).")
@click.option("--ranges", type=click.Path(path_type=Path),
              help="Ranges file from `qdqtool calibrate` (ONNX Runtime: scales for weighted-op outputs).")
@data_options
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="Write the layer report as JSON.")
@report_options
def build_command(model: Path, engine: Path, backend: str, shapes: tuple, workspace_mib: int | None,
                  weakly_typed: bool, fp16: bool, runs: int, warmup: int, no_latency: bool,
                  reference: Path | None, ranges: Path | None, report_path: Path | None, fail_on: str,
                  as_json: bool, summary_only: bool, **data: object) -> None:
    """Build MODEL (a Q/DQ ONNX file) into an engine and show which layers really run in INT8."""
    gates = parse_gates(fail_on)
    samples = pop_data_options(data)
    config = BuildConfig(
        model=model, engine=engine, backend=backend, shapes=parse_shapes(shapes), workspace_mib=workspace_mib,
        fp16=fp16, weakly_typed=weakly_typed, measure_latency=not no_latency, runs=runs, warmup=warmup,
        reference=reference, ranges=ranges, data_folder=samples.folder, max_samples=samples.max_samples,
        preprocess=samples.preprocess,
    )
    result = build_engine(config)
    payload = {**result.report.to_json(), "engine": str(result.engine),
               "output_error": result.output_error.as_dict() if result.output_error is not None else None}
    if report_path is not None:
        write_json_atomically(report_path, payload)
    if as_json:
        emit_json(payload)
    else:
        click.echo(report_text(result.report, not summary_only))
        click.echo(f"engine: {result.engine} (built with {result.report.backend})")
        if result.output_error is not None:
            click.echo("\n".join(error_lines(result.output_error, "outputs vs FP32 (ONNX Runtime, --data samples)")))
    enforce_gates(result.report, gates)
