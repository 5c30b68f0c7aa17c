"""qdqtool: calibrated, TensorRT-placed Q/DQ ONNX models and proof of which layers run INT8.

The public API (qdqtool/api.py), imported on first use so that importing qdqtool (and the CLI's help) stays fast:

    import qdqtool
    result = qdqtool.calibrate_model("model.onnx", "photos/", qdqtool.CalibrationConfig(method="percentile"))
    print(qdqtool.check_model(result.model).counts())
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = (
    "BuildConfig", "BuildResult", "CalibrationConfig", "CalibrationOutputs", "CalibrationResult", "CheckReport",
    "CompareConfig", "CompareResult", "DataConfig", "EngineComparison", "FixConfig", "FixResult", "GateComparison",
    "MeasureConfig", "PlacementConfig", "PrecisionReport",
    "build_engine", "calibrate_from_cache", "calibrate_model", "check_model", "compare_engine", "compare_models",
    "compare_report", "fix_residuals", "read_report",
)
_ERRORS = ("QdqError", "ConfigError", "DataError", "ModelError", "OutputError", "RangeError", "BackendUnavailable")
__all__ = [*_API, *_ERRORS, "Preprocess", "PRESETS", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from qdqtool import api

        return getattr(api, name)
    if name in _ERRORS:
        from qdqtool import errors

        return getattr(errors, name)
    if name in ("Preprocess", "PRESETS"):
        from qdqtool.samples import images

        return getattr(images, name)
    raise AttributeError(f"module 'qdqtool' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
