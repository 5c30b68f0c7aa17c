"""`qdqtool compare FP32.onnx INT8.onnx --data DIR`: thin click shell over qdqtool.accuracy.compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import qdqtool
from qdqtool.accuracy.compare import CompareConfig, CompareResult
from qdqtool.accuracy.measure import MeasureConfig
from qdqtool.accuracy.report import failed_gates, result_lines
from qdqtool.accuracy.tasks import TASKS
from qdqtool.fileio import check_output_path

from .common import emit_json, progress_bar, quiet_from
from .data_options import DataOptions, data_options
from .precision_gates import EXIT_EPILOG, exit_on_failed_gates


class ChannelAxisType(click.ParamType):
    """OUTPUT:AXIS, e.g. output0:1."""

    name = "OUTPUT:AXIS"

    def convert(self, value: Any, param, ctx) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        name, _, axis = str(value).rpartition(":")
        try:
            return name, int(axis)
        except ValueError:
            self.fail(f"{value!r} is not OUTPUT:AXIS; write e.g. output0:1", param, ctx)
        if not name:
            self.fail(f"{value!r} names no output; write e.g. output0:1", param, ctx)


@click.command("compare", epilog=EXIT_EPILOG)
@click.argument("fp32_model", type=click.Path(path_type=Path))
@click.argument("quantized_model", type=click.Path(path_type=Path))
@data_options
@click.option("--task", type=click.Choice(TASKS), default=None,
              help="Add a task metric against FP32: detection F1 at IoU 0.5 (YOLOv8-style head), mask IoU, top-1.")
@click.option("--threshold", type=float, default=None,
              help="Score threshold: the measure adds the rate of values crossing it; detect/segment use it "
                   "(default 0.25 / 0.5).")
@click.option("--channel-axis", "channel_axes", type=ChannelAxisType(), multiple=True,
              help="Measure OUTPUT per slice along AXIS instead of the axis picked from the data (repeatable).")
@click.option("--per-tensor", is_flag=True,
              help="Also every quantized activation: FP32 tensor vs its dequantized value, worst first, and the "
                   "output error with only that quantizer active.")
@click.option("--marginal-samples", type=click.IntRange(min=0), default=4, show_default=True,
              help="Samples for the only-this-quantizer view of --per-tensor (one model run per quantizer; 0: off).")
@click.option("--top", "shown", type=click.IntRange(min=1), default=10, show_default=True,
              help="Quantized tensors listed by --per-tensor.")
@click.option("--plot", type=click.Path(path_type=Path), default=None,
              help="Write a picture of the per-tensor error along the network depth (PNG; implies --per-tensor; "
                   "needs matplotlib: pip install 'qdqtool[plot]').")
@click.option("--max-error", type=click.FloatRange(min=0), default=None,
              help="Exit 3 when the headline error is above this.")
@click.option("--min-sqnr", type=float, default=None, help="Exit 3 when any output's SQNR (dB) is below this.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=None,
              help="Exit 3 when the --task metric (F1, mask IoU, top-1 agreement with FP32) is below this.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout (headline_error on top).")
@click.pass_context
def compare_command(ctx: click.Context, fp32_model: Path, quantized_model: Path, task: str | None,
                    threshold: float | None, channel_axes: tuple, per_tensor: bool, marginal_samples: int, shown: int,
                    plot: Path | None, max_error: float | None, min_sqnr: float | None, min_agreement: float | None,
                    as_json: bool, data: DataOptions) -> None:
    """How far QUANTIZED_MODEL is from FP32_MODEL on real data: per output, the worst channel's error against its
    FP32 scale (the headline: 0 = identical), cosine, SQNR, max abs error; task metrics with --task.

    Example: qdqtool compare yolov8n.onnx yolov8n.qdq.onnx --data photos/ --preset yolo --task detect
    """
    if data.folder is None:
        raise click.UsageError("compare needs real samples: pass --data DIR (a folder of images or .npy/.npz "
                               "tensors)")
    if min_agreement is not None and task is None:
        raise click.UsageError("--min-agreement needs --task (the metric it is a floor for)")
    measure = MeasureConfig(channel_axes=dict(channel_axes), threshold=threshold)
    config = CompareConfig(measure=measure, task=task, preprocess=data.preprocess, max_samples=data.max_samples,
                           per_tensor=per_tensor or plot is not None, marginal_samples=marginal_samples)
    if plot is not None:
        from qdqtool.accuracy.plot import require_matplotlib

        for model in (fp32_model, quantized_model):
            check_output_path(model, plot)
        require_matplotlib()
    with progress_bar("comparing", quiet_from(ctx) or as_json) as (set_total, advance):
        result: CompareResult = qdqtool.compare_models(fp32_model, quantized_model, data.folder, config,
                                                       progress=advance, on_samples=set_total)
    if plot is not None:
        from qdqtool.accuracy.plot import plot_tensor_errors

        plot_tensor_errors(result, plot, title=f"{quantized_model.name} vs {fp32_model.name}")
    if as_json:
        emit_json({"headline_error": round(result.headline, 6), "fp32_model": str(fp32_model),
                   "quantized_model": str(quantized_model), **result.as_dict()})
    else:
        click.echo("\n".join(result_lines(result, shown) + ([f"wrote {plot}"] if plot else [])))
    exit_on_failed_gates(failed_gates(result, max_error, min_sqnr, min_agreement))

