"""`qdqtool build`: one configuration, one result, and the choice between TensorRT and ONNX Runtime."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qdqtool.accuracy.compare import measure_models
from qdqtool.accuracy.measure import ErrorSummary
from qdqtool.build.shapes import ShapeProfile
from qdqtool.errors import QdqError
from qdqtool.onnxgraph.prepare import load_model
from qdqtool.onnxgraph.qdqview import strip_qdq
from qdqtool.report.layers import PrecisionReport
from qdqtool.samples.images import Preprocess
from qdqtool.samples.sets import SampleSet, model_input_specs

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
    calibration_samples: int = 8              # samples for the quick max calibration when --max-samples is not given

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise QdqError(f"--backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.runs < 1 or self.warmup < 0:
            raise QdqError(f"--runs must be at least 1 and --warmup at least 0 (got {self.runs}, {self.warmup})")
        if self.workspace_mib is not None and self.workspace_mib < 1:
            raise QdqError(f"--workspace must be a positive number of MiB (got {self.workspace_mib})")


@dataclass(frozen=True)
class BuildResult:
    engine: Path
    backend: str          # "trt" or "ort"
    report: PrecisionReport
    output_error: ErrorSummary | None = None   # the Q/DQ model in ONNX Runtime vs the reference, on the samples


def measure_output_error(config: BuildConfig) -> ErrorSummary | None:
    """With samples: the output error measure of the Q/DQ model (run by ONNX Runtime) against the FP32 reference."""
    if config.data_folder is None:
        return None
    model = load_model(config.model)
    reference = load_model(config.reference) if config.reference is not None else strip_qdq(model)
    count = config.max_samples or config.calibration_samples
    samples = SampleSet(config.data_folder, model_input_specs(model), config.preprocess, count)
    return measure_models(reference, model, list(samples))


def choose_backend(requested: str) -> tuple[str, str]:
    """(backend, why): 'trt' when TensorRT imports and sees a GPU (required for --backend trt), else 'ort'."""
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
    return BuildResult(result.engine, backend, result.report.with_notes(f"backend {backend}: {why}"),
                       measure_output_error(config))
