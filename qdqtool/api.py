"""The public Python API, for scripts that would otherwise shell out: one function per command.

Each takes a path or an onnx.ModelProto and a typed config, returns a frozen result, raises only the QdqError
family and never prints (progress goes to optional callbacks, diagnostics to the `qdqtool` logger). The CLI
(cli/) is a thin shell over exactly these functions.

The names carry a noun (calibrate_model, not calibrate) because qdqtool.calibrate, qdqtool.check, ... are the
packages of those stages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Union

import onnx

from qdqtool.accuracy.compare import CompareConfig, CompareResult, compare_files
from qdqtool.accuracy.measure import MeasureConfig
from qdqtool.build.pipeline import BuildConfig, BuildResult, build_engine  # build_engine(BuildConfig): paths
from qdqtool.calibrate.cache_ranges import calibrate_from_cache
from qdqtool.calibrate.pipeline import (
    CalibrationConfig,
    CalibrationOutputs,
    CalibrationResult,
    calibrate_file,
    calibrate_loaded,
    write_outputs,
)
from qdqtool.check.predict import CheckReport
from qdqtool.check.predict import check_model as _predict
from qdqtool.onnxgraph.prepare import load_model, load_model_graph
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.placement.plan import PlacementConfig
from qdqtool.repair.pipeline import DataConfig, FixResult, fix_file, fix_model, read_model_to_fix
from qdqtool.repair.plan import FixConfig
from qdqtool.report.layerinfo import read_layer_info
from qdqtool.report.layers import PrecisionReport
from qdqtool.report.versus_check import (
    EngineComparison,
    GateComparison,
    compare_engines,
    compare_with_prediction,
    prediction_by_gate,
)

ModelLike = Union[str, "os.PathLike[str]", onnx.ModelProto]
Progress = Optional[Callable[[int], None]]
# Samples: a folder (images or .npy/.npz), a numpy array (samples along axis 0, one-input models), a dict of arrays
# (input name -> samples along axis 0) or an iterable of feed dicts (input name -> array), as a script holds them.
Data = object

__all__ = [
    "BuildConfig", "BuildResult", "CalibrationConfig", "CalibrationOutputs", "CalibrationResult", "CheckReport",
    "CompareConfig", "CompareResult", "DataConfig", "EngineComparison", "FixConfig", "FixResult", "GateComparison",
    "MeasureConfig", "PlacementConfig", "PrecisionReport",
    "build_engine", "calibrate_from_cache", "calibrate_model", "check_model", "compare_engine", "compare_models",
    "compare_report", "fix_residuals", "read_report",
]


def _load(model: ModelLike) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else load_model(model)


def calibrate_model(model: ModelLike, data: Data, config: Optional[CalibrationConfig] = None,
                    outputs: Optional[CalibrationOutputs] = None,
                    *, progress: Progress = None, on_samples: Progress = None) -> CalibrationResult:
    """Calibrate an FP32 model on samples (a folder of images or .npy/.npz tensors, a numpy array, a dict of arrays
    or an iterable of feed dicts); Q/DQ placed by TensorRT's rules.

    result.model is the Q/DQ ModelProto. With outputs, the model (and the ranges file and TensorRT cache when
    named) are written atomically, after checking that no output would overwrite the input."""
    config = config or CalibrationConfig()
    if not isinstance(model, onnx.ModelProto):
        if outputs is not None:
            return calibrate_file(model, data, outputs, config, progress, on_samples)
        return calibrate_loaded(load_model(model), data, config, str(model), progress, on_samples)
    result = calibrate_loaded(model, data, config, "the model", progress, on_samples)
    if outputs is not None:
        write_outputs(result, outputs, model.graph.name or "model")
    return result


def fix_residuals(model: ModelLike, output: Union[str, "os.PathLike[str]", None] = None,
                  config: Optional[FixConfig] = None, data: Optional[DataConfig] = None,
                  dry_run: bool = False) -> FixResult:
    """Repair the Q/DQ placement of an existing Q/DQ model for TensorRT; every edit carries its reason.

    result.model is the repaired ModelProto (None when nothing needed fixing). With output (a model given as a
    path), the result is written atomically unless dry_run."""
    config, data = config or FixConfig(), data or DataConfig()
    if not isinstance(model, onnx.ModelProto):
        return fix_file(model, None if output is None else Path(output), config, data, dry_run=dry_run)
    result = fix_model(read_model_to_fix(model), config, data)
    if output is not None and not dry_run:
        from qdqtool.fileio import save_model_atomically
        from qdqtool.runner import check_session_opens

        save_model_atomically(result.model or model, Path(output), validate=check_session_opens)
    return result


def compare_models(fp32: ModelLike, quantized: ModelLike, data: Data, config: Optional[CompareConfig] = None,
                   *, progress: Progress = None, on_samples: Progress = None) -> CompareResult:
    """How far `quantized` is from `fp32` on samples (as calibrate_model takes them): the figures `qdqtool compare`
    prints (result.headline, per-output errors, task metrics with config.task, per-tensor with config.per_tensor)."""
    return compare_files(fp32, quantized, data, config or CompareConfig(), progress, on_samples)


def check_model(model: ModelLike, config: Optional[PlacementConfig] = None) -> CheckReport:
    """Predict from the graph alone how TensorRT fuses and types the layers of a Q/DQ model (a model given as a
    path: its large weights are never read, only the graph and its small tensors, scales and zero points)."""
    return _predict(read_qdq(model if isinstance(model, onnx.ModelProto) else load_model_graph(model)), config)


def read_report(layer_info: Union[str, "os.PathLike[str]"]) -> PrecisionReport:
    """Per-layer precision from a TensorRT layer-information JSON (trtexec or the engine inspector)."""
    return read_layer_info(layer_info)


def compare_report(report: PrecisionReport, model: ModelLike) -> list[GateComparison]:
    """One row per gate: what check_model predicts for the Q/DQ model against what the engine report observed."""
    return compare_with_prediction(report, *prediction_by_gate(check_model(model)))


def compare_engine(report: PrecisionReport, model: ModelLike,
                   config: Optional[PlacementConfig] = None) -> EngineComparison:
    """The gate rows and the per-node diff: each ONNX node's predicted layer, role and precision (check_model's
    engine) against the engine the report describes."""
    prediction = check_model(model, config)
    return compare_engines(report, prediction, prediction.engine)
