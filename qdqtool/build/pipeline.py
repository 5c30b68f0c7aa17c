"""`qdqtool build`: one configuration, one result, and the choice between TensorRT and ONNX Runtime."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qdqtool.build.shapes import ShapeProfile
from qdqtool.errors import ConfigError
from qdqtool.report.layers import PrecisionReport
from qdqtool.samples.images import Preprocess

log = logging.getLogger("qdqtool")

BACKENDS = ("auto", "trt", "ort")


@dataclass(frozen=True)
class BuildConfig:
    model: Path
    engine: Path
    backend: str = "auto"                     # auto | trt | ort
    shapes: Mapping[str, ShapeProfile] = field(default_factory=dict)
    workspace_mib: int | None = None       # TensorRT workspace memory-pool limit
    fp16: bool = False                        # TensorRT 10 weakly typed: FP16 for the non-quantized rest
    weakly_typed: bool = False                # TensorRT 10: INT8 builder flags instead of STRONGLY_TYPED
    measure_latency: bool = True
    runs: int = 50
    warmup: int = 5
    reference: Path | None = None          # FP32 model timed in the same run (default: the model without Q/DQ)
    ranges: Path | None = None             # ranges file from `qdqtool calibrate` (ONNX Runtime lowering)
    data_folder: Path | None = None        # samples: latency input, quick max calibration for the ORT lowering
    max_samples: int | None = None
    preprocess: Preprocess = field(default_factory=Preprocess)
    calibration_samples: int = 8              # samples for the quick max calibration when max_samples is not given

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}", settings=("backend",))
        if self.runs < 1 or self.warmup < 0:
            raise ConfigError(f"timed runs must be at least 1 and warm-up runs at least 0 (got {self.runs}, "
                              f"{self.warmup})", settings=("runs", "warmup"))
        if self.workspace_mib is not None and self.workspace_mib < 1:
            raise ConfigError(f"the workspace must be a positive number of MiB (got {self.workspace_mib})",
                              settings=("workspace",))


@dataclass(frozen=True)
class BuildResult:
    engine: Path
    backend: str          # "trt" or "ort"
    report: PrecisionReport


def choose_backend(requested: str) -> tuple[str, str]:
    """(backend, why): 'trt' when TensorRT imports and sees a GPU (required for backend 'trt'), else 'ort'."""
    from qdqtool.build import tensorrt_backend

    if requested == "ort":
        return "ort", "ONNX Runtime requested"
    if requested == "trt":
        tensorrt_backend.require_tensorrt()
        return "trt", "TensorRT requested"
    usable, why = tensorrt_backend.tensorrt_status()
    return ("trt", why) if usable else ("ort", f"{why}; using ONNX Runtime")


def build_engine(config: BuildConfig) -> BuildResult:
    """Build with the chosen backend; the report says which backend ran and why."""
    backend, why = choose_backend(config.backend)
    log.info("build backend: %s (%s)", backend, why)
    if backend == "trt":
        from qdqtool.build.tensorrt_backend import build_with_tensorrt

        result = build_with_tensorrt(config)
    else:
        from qdqtool.build.ort_backend import build_with_onnxruntime

        result = build_with_onnxruntime(config)
    return BuildResult(result.engine, backend, result.report.with_notes(f"backend {backend}: {why}"))
