"""`qdqtool calibrate`: thin click shell over qdqtool.calibrate_model."""

from __future__ import annotations

from pathlib import Path

import click

import qdqtool
from qdqtool.accuracy.report import error_lines
from qdqtool.calibrate.auto import auto_lines
from qdqtool.calibrate.cache_usage import cache_lines
from qdqtool.calibrate.observers import CALIBRATION_METHODS, DEFAULT_PERCENTILE
from qdqtool.calibrate.ranges import ranges_beside
from qdqtool.calibrate.summary import summary_lines
from qdqtool.calibrate.trtcache import DEFAULT_VERSION_TAG
from qdqtool.placement.plan import PlacementConfig

from .common import emit_json, progress_bar, quiet_from
from .data_options import DataOptions, data_options
from .placement_options import placement_options
from .precision_gates import EXIT_EPILOG


@click.command("calibrate", epilog=EXIT_EPILOG)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The Q/DQ ONNX model to write.")
@click.option("--method", type=click.Choice(CALIBRATION_METHODS), default=str(qdqtool.CalibrationConfig.method),
              show_default=True,
              help="How a tensor's range is chosen from its observed values; auto tries max, percentiles, entropy "
                   "and mse per scale and keeps the one that changes the model's outputs least.")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), default=DEFAULT_PERCENTILE,
              show_default=True, help="The percentile of |x| used by --method percentile.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Samples per ONNX Runtime run (models with a dynamic batch dimension).")
@click.option("--ranges", "ranges_path", type=click.Path(path_type=Path), default=None,
              help="Where to write the ranges JSON (default: OUTPUT with .ranges.json); fix-residuals can reuse it.")
@click.option("--cache", "cache_path", type=click.Path(path_type=Path), default=None,
              help="Also write a TensorRT (<= 10) calibration cache for the implicit INT8 path.")
@click.option("--from-cache", "from_cache", type=click.Path(path_type=Path), default=None,
              help="Take the activation scales from a TensorRT (<= 10) calibration cache instead of calibrating; "
                   "--data then calibrates only the tensors the cache lacks.")
@click.option("--cache-header", default=DEFAULT_VERSION_TAG, show_default=True,
              help="The cache's first line (TensorRT checks version and calibrator).")
@click.option("--keep-float", type=click.IntRange(min=0), default=0, show_default=True,
              help="Rank quantizers by how much each alone changes the outputs and keep the consumers of the N "
                   "worst float (costs one extra run per quantizer on a few samples).")
@click.option("--max-error", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Mixed precision: keep the consumers of the most harmful quantizers float, fewest first, until "
                   "the output error measure on held-out calibration samples is at most this (e.g. 0.05).")
@data_options
@placement_options
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.pass_context
def calibrate_command(ctx: click.Context, model: Path, output: Path, method: str, percentile: float, batch_size: int,
                      ranges_path, cache_path, from_cache, cache_header: str, keep_float: int, max_error, as_json: bool,
                      data: DataOptions, placement: PlacementConfig) -> None:
    """Calibrate an FP32 ONNX MODEL on real data and write a Q/DQ model placed by TensorRT's rules.

    Example: qdqtool calibrate yolov8n.onnx --data photos/ --preset yolo --size 320 -o yolov8n.qdq.onnx
    """
    if data.folder is None and from_cache is None:
        raise click.UsageError("calibrate needs real samples: pass --data DIR (a folder of images or .npy/.npz "
                               "tensors), or --from-cache CACHE to reuse a TensorRT calibration cache")
    config = qdqtool.CalibrationConfig(method=method, percentile=percentile, batch_size=batch_size,
                                       max_samples=data.max_samples, preprocess=data.preprocess,
                                       placement=placement, keep_float=keep_float, max_error=max_error)
    outputs = qdqtool.CalibrationOutputs(model=output, ranges=ranges_path or ranges_beside(output),
                                         cache=cache_path, cache_version_tag=cache_header)
    with progress_bar("calibrating", quiet_from(ctx) or as_json) as (set_total, advance):
        if from_cache is not None:
            result = qdqtool.calibrate_from_cache(model, from_cache, data.folder, outputs, config, progress=advance,
                                                  on_samples=set_total)
        else:
            result = qdqtool.calibrate_model(model, data.folder, config, outputs, progress=advance,
                                             on_samples=set_total)
    summary = result.summary()
    summary.update({"model": str(model), "output": str(output), "ranges": str(outputs.ranges),
                    "cache": str(cache_path) if cache_path else None, "method": method})
    if as_json:
        emit_json(summary)
        return
    source = f"scales from {from_cache};" if from_cache else f"{summary['samples']} samples, {method}"
    click.echo(f"wrote {output} ({source} ranges in {outputs.ranges}"
               + (f", TensorRT cache {cache_path}" if cache_path else "") + ")")
    for note in summary["notes"]:
        click.echo(f"note: {note}")
    for line in summary_lines(summary) + (cache_lines(summary["from_cache"]) if "from_cache" in summary else []):
        click.echo(line)
    if "auto" in summary:
        for line in auto_lines(summary["auto"]):
            click.echo(line)
    if "max_error" in summary:
        target = summary["max_error"]
        before, after = target["int8_convs_before"], target["int8_convs_after"]
        click.echo(f"max-error {target['target']:g}: output error {target['error_before']:.4f} -> "
                   f"{target['error_after']:.4f} on held-out calibration samples"
                   f"{'' if target['met'] else ' (target NOT met)'}; INT8 convs {before[0]}/{before[1]} -> "
                   f"{after[0]}/{after[1]}; {len(target['kept_float_quantizers'])} quantizers' consumers kept float")
    if result.output_error is not None:
        for line in error_lines(result.output_error, "outputs vs FP32 (calibration samples)"):
            click.echo(line)
        click.echo("(`qdqtool compare` measures it on held-out data; --keep-float N keeps the N most harmful "
                   "quantizers' consumers float)")
