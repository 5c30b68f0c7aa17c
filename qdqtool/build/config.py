"""`qdqtool build`'s configuration and result: the one module every backend and the pipeline import (no cycles)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qdqtool.accuracy.measure import ErrorSummary
from qdqtool.build.shapes import ShapeProfile
from qdqtool.check.predict import CheckReport
from qdqtool.errors import ConfigError
from qdqtool.report.layers import PrecisionReport
from qdqtool.samples.images import Preprocess

BACKENDS = ("auto", "trt", "ort")
TRT_MAJORS = (10, 11)                         # the TensorRT versions qdqtool builds with
# What each backend writes, named after what it is: a TensorRT plan, or ONNX Runtime's optimised ONNX graph.
OUTPUT_SUFFIXES = {"trt": ".engine", "ort": ".ort.onnx"}


def default_output(model: Path, backend: str) -> Path:
    """Beside the model, named after what the backend writes: yolov8n.qdq.onnx -> yolov8n.qdq.engine (TensorRT)
    or yolov8n.qdq.ort.onnx (ONNX Runtime)."""
    stem = model.name[:-len(".onnx")] if model.name.lower().endswith(".onnx") else model.name
    return model.with_name(stem + OUTPUT_SUFFIXES[backend])


class BuildSettingError(ConfigError):
    """A build setting cannot be used as given; `setting` names the BuildConfig field (a CLI maps it to its option)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message, settings=(setting,))
        self.setting = setting


@dataclass(frozen=True)
class BuildConfig:
    model: Path
    engine: Path | None = None                # default: default_output(model, the backend that builds)
    backend: str = "auto"                     # auto | trt | ort
    shapes: Mapping[str, ShapeProfile] = field(default_factory=dict)
    workspace_mib: int | None = None          # TensorRT workspace memory-pool limit
    fp16: bool = False                        # TensorRT 10 weakly typed: FP16 for the non-quantized rest
    weakly_typed: bool = False                # TensorRT 10: INT8 builder flags instead of STRONGLY_TYPED
    measure_latency: bool = True
    runs: int = 50
    warmup: int = 5
    reference: Path | None = None             # FP32 model timed in the same run (default: the model without Q/DQ)
    ranges: Path | None = None                # ranges file from `qdqtool calibrate` (default: the one beside the model)
    data_folder: Path | None = None           # samples: latency input, quick max calibration for the ORT lowering
    max_samples: int | None = None
    preprocess: Preprocess = field(default_factory=Preprocess)
    calibration_samples: int = 8              # samples for the quick max calibration when max_samples is not given
    trtexec_major: int | None = None          # TensorRT version of the printed trtexec command (default: detected)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise BuildSettingError("backend", f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.runs < 1:
            raise BuildSettingError("runs", f"the number of timed runs must be at least 1 (got {self.runs})")
        if self.warmup < 0:
            raise BuildSettingError("warmup", f"the number of warm-up runs must be at least 0 (got {self.warmup})")
        if self.workspace_mib is not None and self.workspace_mib < 1:
            raise BuildSettingError("workspace_mib", f"the workspace limit must be a positive number of MiB "
                                                     f"(got {self.workspace_mib})")
        if self.trtexec_major is not None and self.trtexec_major not in TRT_MAJORS:
            raise BuildSettingError("trtexec_major", f"TensorRT {self.trtexec_major} is not one of "
                                                     f"{', '.join(map(str, TRT_MAJORS))}")


@dataclass(frozen=True)
class TrtexecCommand:
    """The trtexec command that builds the same engine elsewhere (a Jetson, a server with another TensorRT)."""

    tensorrt_major: int
    argv: tuple[str, ...]
    note: str = ""                            # what differs from this build, when something does


@dataclass(frozen=True)
class BuildResult:
    """report: the layers as the backend built them (TensorRT's layers, or ONNX Runtime's nodes). prediction:
    `check`'s prediction of TensorRT's layers, made for an ONNX Runtime build, whose CPU nodes say nothing about
    TensorRT's fusions (None for a TensorRT build, or when TensorRT would refuse the model: prediction_refused)."""

    engine: Path
    backend: str          # "trt" or "ort"
    report: PrecisionReport
    trtexec: tuple[TrtexecCommand, ...] = ()
    output_error: ErrorSummary | None = None   # the Q/DQ model in ONNX Runtime vs the reference, on the samples
    prediction: CheckReport | None = None
    prediction_refused: str = ""

    @property
    def gates_judged_on(self) -> str:
        """'engine' (TensorRT's own layers) or 'prediction' (an ONNX Runtime build: check's prediction)."""
        return "engine" if self.backend == "trt" else "prediction"

    def gate_counts(self) -> dict[str, int] | None:
        """TensorRT's gate counts (qdqtool.report.gates.GATES): the engine's, or the prediction's for an ONNX Runtime
        build; None when neither can say (an ONNX Runtime build of a model TensorRT would refuse)."""
        if self.backend == "trt":
            return {str(gate): count for gate, count in self.report.summary.gate_counts().items()}
        if self.prediction is None:
            return None
        return {str(gate): count for gate, count in self.prediction.counts().items()}
