"""The reference engines a TensorRT INT8 build is timed against, in the same run and on the same input: FP32 (the
given reference model, else the model with its Q/DQ removed) and FP16 (TensorRT 10: the FP16 builder flag on that
model; TensorRT 11, which has no precision flags: that model converted to FP16 with float I/O kept)."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from qdqtool.build.config import BuildConfig
from qdqtool.build.trt_engine import build_serialized, deserialize
from qdqtool.build.trt_latency import ExecutionFailed, LatencySkipped, engine_latency
from qdqtool.build.trt_plan import STRONGLY_TYPED_ONLY, NetworkPlan
from qdqtool.errors import QdqError
from qdqtool.onnxgraph.prepare import load_model
from qdqtool.onnxgraph.qdqview import strip_qdq
from qdqtool.report.layers import Latency

log = logging.getLogger("qdqtool")

FP16_CONVERTER_HINT = "pip install onnxconverter-common (installed by qdqtool[trt])"


@dataclass(frozen=True)
class ReferenceTimings:
    fp32: Latency | None
    fp32_name: str
    fp16: Latency | None
    skipped: tuple[str, ...] = ()

    def notes(self, engine: Latency) -> list[str]:
        notes = list(self.skipped)
        if self.fp16 is not None and self.fp16.median_ms > 0:
            notes.append(f"INT8/FP16 latency ratio {engine.median_ms / self.fp16.median_ms:.2f} (FP16 engine median "
                         f"{self.fp16.median_ms:.3f} ms; below 1 the INT8 engine is faster)")
        return notes


def fp16_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float model with FP16 weights and compute, float32 inputs/outputs (TensorRT 11's FP16 reference)."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise LatencySkipped(f"the TensorRT 11 FP16 reference needs onnxconverter-common: {FP16_CONVERTER_HINT}"
                             ) from None
    return float16.convert_float_to_float16(model, keep_io_types=True)


def reference_plans(major: int) -> tuple[NetworkPlan, NetworkPlan]:
    """(FP32, FP16) plans: no precision flags (TensorRT 10 weakly typed = FP32; 11 = as typed) and TF32 cleared, as
    TensorRT enables it by default (FP32 inner products on 10-bit mantissas); FP16 by flag before 11."""
    fp32 = NetworkPlan(major, False, (), "FP32 reference", cleared_flags=("TF32",))
    if major >= STRONGLY_TYPED_ONLY:
        return fp32, NetworkPlan(major, False, (), "FP16 reference (model converted to FP16)")
    return fp32, NetworkPlan(major, False, ("FP16",), "FP16 reference (BuilderFlag FP16)")


def _time(trt, logger, model: onnx.ModelProto, plan: NetworkPlan, config: BuildConfig, feeds, folder: Path) -> Latency:
    path = folder / f"{plan.description.split()[0].lower()}.onnx"
    onnx.save(model, str(path))
    engine = deserialize(trt, logger, build_serialized(trt, logger, path, plan, config), plan.description)
    return engine_latency(trt, engine, config.shapes, feeds, config.runs, config.warmup)


def time_references(trt, logger, plan: NetworkPlan, model: onnx.ModelProto, config: BuildConfig,
                    feeds) -> ReferenceTimings:
    """Build and time FP32 and FP16 references; each one that cannot be built or timed becomes a note."""
    if config.reference is not None:
        fp32_model, name = load_model(config.reference), str(config.reference)
    else:
        fp32_model, name = strip_qdq(model), "the model without Q/DQ (FP32)"
    fp32_plan, fp16_plan = reference_plans(plan.major)
    timings: dict[str, Latency | None] = {"FP32": None, "FP16": None}
    skipped = []
    with tempfile.TemporaryDirectory(prefix="qdqtool-reference-") as folder:
        for label, reference_plan in (("FP32", fp32_plan), ("FP16", fp16_plan)):
            try:
                reference = fp32_model
                if label == "FP16" and plan.major >= STRONGLY_TYPED_ONLY:
                    reference = fp16_model(fp32_model)
                timings[label] = _time(trt, logger, reference, reference_plan, config, feeds, Path(folder))
            except (QdqError, ValueError) as exc:  # CudaError is a QdqError; ValueError: onnx.save over 2 GB
                if isinstance(exc, ExecutionFailed):
                    log.error("%s reference: %s", label, exc)
                skipped.append(f"{label} reference {'failed' if isinstance(exc, ExecutionFailed) else 'skipped'}: "
                               f"{exc}")
    return ReferenceTimings(timings["FP32"], name, timings["FP16"], tuple(skipped))

