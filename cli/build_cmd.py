"""`qdqtool build MODEL.onnx -o ENGINE`: TensorRT engine (or ONNX Runtime build) and per-layer precision report."""

from __future__ import annotations

from pathlib import Path

import click

from qdqtool.build.config import BACKENDS, TRT_MAJORS, BuildConfig, BuildSettingError
from qdqtool.build.pipeline import build_engine
from qdqtool.build.shapes import ShapeSpecError, parse_shapes
from qdqtool.build.trtexec import shell_line
from qdqtool.fileio import write_json_atomically
from qdqtool.report.gates import parse_gates

from .common import emit_json
from .data_options import data_options, pop_data_options
from .layer_table import report_text
from .precision_gates import GATE_EXIT_STATUS, enforce_gates, report_options

# BuildConfig field -> the option that sets it: the library names settings, only the CLI names flags.
OPTION_OF_SETTING = {
    "backend": "--backend", "shapes": "--shapes", "workspace_mib": "--workspace", "fp16": "--fp16",
    "weakly_typed": "--weakly-typed", "runs": "--runs", "warmup": "--warmup", "trtexec_major": "--trt-version",
}


def _shapes(ctx: click.Context, param: click.Parameter, value: tuple) -> dict:
    try:
        return parse_shapes(value)
    except ShapeSpecError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _trtexec_lines(result) -> list[str]:
    lines = []
    for command in result.trtexec:
        note = f"  # {command.note}" if command.note else ""
        lines.append(f"trtexec (TensorRT {command.tensorrt_major}): {shell_line(command)}{note}")
    return lines


@click.command("build", epilog=f"Exit status: 0 ok, 1 user error, 2 bad option, {GATE_EXIT_STATUS} a --fail-on gate "
                               "failed.")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", "engine", type=click.Path(path_type=Path), required=True,
              help="Engine file to write (TensorRT plan, or ONNX Runtime's optimised .onnx).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="auto: TensorRT when it imports and sees a GPU, else ONNX Runtime.")
@click.option("--shapes", multiple=True, metavar="NAME:MIN/OPT/MAX", callback=_shapes,
              help="Profile of a dynamic input, e.g. images:1x3x320x320/1x3x640x640/4x3x640x640 (repeatable).")
@click.option("--workspace", "workspace_mib", type=click.IntRange(min=1), help="TensorRT workspace limit in MiB.")
@click.option("--weakly-typed", is_flag=True,
              help="TensorRT 10: INT8 builder flag instead of a strongly typed network.")
@click.option("--fp16", is_flag=True, help="TensorRT 10: weakly typed with FP16 for the non-quantized rest.")
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True, help="Timed runs for latency.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Untimed warm-up runs.")
@click.option("--no-latency", is_flag=True, help="Skip the latency measurement.")
@click.option("--reference", type=click.Path(path_type=Path),
              help="FP32 model timed in the same run (default: the model with its Q/DQ removed); TensorRT also "
                   "times an FP16 engine of it.")
@click.option("--ranges", type=click.Path(path_type=Path),
              help="Ranges file from `qdqtool calibrate` (ONNX Runtime: scales for weighted-op outputs; default: "
                   "MODEL.ranges.json beside the model when it exists).")
@click.option("--trt-version", "trtexec_major", type=click.Choice([str(m) for m in TRT_MAJORS]),
              help="TensorRT version of the printed trtexec command (default: the installed one, else one per "
                   "version).")
@data_options
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="Write the layer report as JSON.")
@report_options
def build_command(model: Path, engine: Path, backend: str, shapes: dict, workspace_mib: int | None,
                  weakly_typed: bool, fp16: bool, runs: int, warmup: int, no_latency: bool,
                  reference: Path | None, ranges: Path | None, trtexec_major: str | None, report_path: Path | None,
                  fail_on: str, as_json: bool, summary_only: bool, **data: object) -> None:
    """Build MODEL (a Q/DQ ONNX file) into an engine and show which layers really run in INT8.

    Also prints the equivalent trtexec command, for building the engine on another machine."""
    gates = parse_gates(fail_on)
    samples = pop_data_options(data)
    try:
        config = BuildConfig(
            model=model, engine=engine, backend=backend, shapes=shapes, workspace_mib=workspace_mib,
            fp16=fp16, weakly_typed=weakly_typed, measure_latency=not no_latency, runs=runs, warmup=warmup,
            reference=reference, ranges=ranges, data_folder=samples.folder, max_samples=samples.max_samples,
            preprocess=samples.preprocess, trtexec_major=int(trtexec_major) if trtexec_major else None,
        )
        result = build_engine(config)
    except BuildSettingError as exc:
        raise click.BadParameter(str(exc), param_hint=OPTION_OF_SETTING.get(exc.setting, exc.setting)) from None
    payload = {**result.report.to_json(), "engine": str(result.engine),
               "trtexec": [{"tensorrt": c.tensorrt_major, "command": shell_line(c), "note": c.note}
                           for c in result.trtexec]}
    if report_path is not None:
        write_json_atomically(report_path, payload)
    if as_json:
        emit_json(payload)
    else:
        click.echo(report_text(result.report, not summary_only))
        click.echo(f"engine: {result.engine} (built with {result.report.backend})")
        for line in _trtexec_lines(result):
            click.echo(line)
    enforce_gates(result.report, gates)
