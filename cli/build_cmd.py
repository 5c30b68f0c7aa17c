"""`qdqtool build MODEL.onnx -o ENGINE`: TensorRT engine (or ONNX Runtime build) and per-layer precision report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import qdqtool
from qdqtool.accuracy.report import error_lines
from qdqtool.build.config import BACKENDS, OUTPUT_SUFFIXES, TRT_MAJORS, default_output
from qdqtool.build.shapes import ShapeProfile, parse_shape_profile, parse_shapes
from qdqtool.build.trtexec import shell_line
from qdqtool.errors import ConfigError, QdqError
from qdqtool.fileio import check_distinct_outputs, check_output_path, write_json_atomically
from qdqtool.report.engine_page import check_views, report_views, write_engine_page
from qdqtool.report.gates import describe_violations

from .common import emit_json, html_option, wrote_page
from .data_options import DataOptions, data_options
from .layer_table import report_text
from .precision_gates import EXIT_EPILOG, enforce_gates, exit_on_failed_gates, report_options


def _trtexec_lines(result) -> list[str]:
    lines = []
    for command in result.trtexec:
        note = f"  # {command.note}" if command.note else ""
        lines.append(f"trtexec (TensorRT {command.tensorrt_major}): {shell_line(command)}{note}")
    return lines


class ShapeProfileType(click.ParamType):
    """NAME:MIN/OPT/MAX (or NAME:SHAPE), e.g. images:1x3x320x320/1x3x640x640/4x3x640x640."""

    name = "NAME:MIN/OPT/MAX"

    def convert(self, value: Any, param, ctx) -> str:
        try:
            for item in (part for part in str(value).split(",") if part.strip()):
                parse_shape_profile(item)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


def shape_profiles(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, ShapeProfile]:
    """All --shapes values as one profile per input (an input named twice is a usage error)."""
    try:
        return parse_shapes(values)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


@click.command("build", epilog=EXIT_EPILOG)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", "engine", type=click.Path(path_type=Path),
              help="File to write (default: beside MODEL, named after what is built: NAME.engine, a TensorRT plan, "
                   "or NAME.ort.onnx, ONNX Runtime's optimised graph).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="auto: TensorRT when it imports and sees a GPU, else ONNX Runtime.")
@click.option("--shapes", multiple=True, type=ShapeProfileType(), callback=shape_profiles,
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
@html_option
def build_command(model: Path, engine: Path | None, backend: str, shapes: dict[str, ShapeProfile],
                  workspace_mib: int | None, weakly_typed: bool, fp16: bool, runs: int, warmup: int, no_latency: bool,
                  reference: Path | None, ranges: Path | None, trtexec_major: str | None, report_path: Path | None,
                  fail_on: tuple[str, ...], as_json: bool, show: str, data: DataOptions,
                  html_path: Path | None) -> None:
    """Build MODEL (a Q/DQ ONNX file) into an engine and show which layers really run in INT8.

    Also prints the equivalent trtexec command, for building the engine on another machine."""
    config = qdqtool.BuildConfig(
        model=model, engine=engine, backend=backend, shapes=shapes, workspace_mib=workspace_mib,
        fp16=fp16, weakly_typed=weakly_typed, measure_latency=not no_latency, runs=runs, warmup=warmup,
        reference=reference, ranges=ranges, data_folder=data.folder, max_samples=data.max_samples,
        preprocess=data.preprocess, trtexec_major=int(trtexec_major) if trtexec_major else None,
    )
    if report_path is not None:  # before the build: a bad report path must not cost a build
        check_distinct_outputs(*(default_output(model, b) for b in OUTPUT_SUFFIXES) if engine is None else (engine,),
                               report_path)
        check_output_path(model, report_path)
    if html_path is not None:
        check_distinct_outputs(engine, report_path, html_path)
        check_output_path(model, html_path, "html")
    result = qdqtool.build_engine(config)
    if html_path is not None:
        # an ONNX Runtime build's nodes are not TensorRT's layers: its page is the predicted engine, named so
        views = check_views(result.prediction) if result.prediction is not None else report_views(result.report)[0]
        wrote_page(write_engine_page(html_path, f"qdqtool build {model.name}", views))
    counts = result.gate_counts()
    payload = {"figures": FIGURES[result.gates_judged_on], **result.report.to_json(), "engine": str(result.engine),
               "gates": {"judged_on": result.gates_judged_on, "counts": counts,
                         "refused": result.prediction_refused or None},
               "trtexec": [{"tensorrt": c.tensorrt_major, "command": shell_line(c), "note": c.note}
                           for c in result.trtexec],
               "output_error": result.output_error.as_dict() if result.output_error is not None else None}
    if report_path is not None:
        write_json_atomically(report_path, payload)
    if as_json:
        emit_json(payload)
    else:
        if result.gates_judged_on == "prediction":
            click.echo(FIGURES["prediction"])
            click.echo(_prediction_line(result))
        click.echo(report_text(result.report, show))
        click.echo(f"output: {result.engine} (built with {result.report.backend})")
        if result.output_error is not None:
            click.echo("\n".join(error_lines(result.output_error, "outputs vs FP32 (ONNX Runtime, --data samples)")))
        for line in _trtexec_lines(result):
            click.echo(line)
    _enforce_build_gates(result, counts, fail_on)


FIGURES = {"engine": "TensorRT figures measured: the engine's own layers",
           "prediction": "TensorRT figures predicted (`qdqtool check`: no TensorRT here); ONNX Runtime figures "
                         "measured (its CPU nodes, not TensorRT's layers)"}


def _prediction_line(result) -> str:
    counts = result.gate_counts()
    if counts is None:
        return f"TensorRT (predicted): none, TensorRT would refuse the model: {result.prediction_refused}"
    return ("TensorRT (predicted; --fail-on judges these): "
            + ", ".join(f"{gate} {count}" for gate, count in counts.items()))


def _enforce_build_gates(result, counts: dict[str, int] | None, fail_on: tuple[str, ...]) -> None:
    """TensorRT's gates on TensorRT's layers; for an ONNX Runtime build on check's prediction of them."""
    if result.gates_judged_on == "engine":
        enforce_gates(result.report, fail_on)
        return
    if fail_on and counts is None:
        raise QdqError(f"--fail-on cannot be judged: TensorRT would refuse this model ({result.prediction_refused})")
    exit_on_failed_gates([f"{line} [predicted]" for line in describe_violations(counts or {}, fail_on)])
