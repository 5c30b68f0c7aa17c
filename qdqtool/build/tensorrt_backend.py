"""TensorRT build (10 and 11): the only module that imports tensorrt, always inside a function.

TensorRT 11 networks are strongly typed and take no precision flags; TensorRT 10 builds a Q/DQ network strongly
typed by default, or weakly typed with the INT8 (+FP16) builder flags on request; older versions are refused.
The engine is built with ProfilingVerbosity.DETAILED so the engine inspector reports every layer's precision.
TensorRT's log goes to the qdqtool logger (trt_logging); timing is in trt_latency, references in trt_references.
"""

from __future__ import annotations

import dataclasses
import logging

from qdqtool.build.config import BuildConfig, BuildResult, BuildSettingError
from qdqtool.build.cuda_device import CudaError, driver_cuda_version
from qdqtool.build.feeds import latency_feeds, sample_set
from qdqtool.build.tensorrt_status import (
    INSTALL_HINT,
    TensorRTStatus,
    TensorRTUnavailable,
    TrtProblem,
    no_gpu_status,
    unavailable,
    wheel_cuda_major,
)
from qdqtool.build.trt_engine import build_serialized, deserialize
from qdqtool.build.trt_latency import ExecutionFailed, LatencySkipped, engine_latency
from qdqtool.build.trt_logging import make_logger
from qdqtool.build.trt_plan import NetworkPlan, plan_network, version_major
from qdqtool.build.trt_precision import unknown_precision_note
from qdqtool.errors import BackendUnavailable, first_line
from qdqtool.fileio import check_output_path, write_bytes_atomically
from qdqtool.onnxgraph.prepare import load_model, refuse_integer_kernels
from qdqtool.onnxgraph.shapes import format_shape
from qdqtool.report.layerinfo import parse_layer_info_text
from qdqtool.report.layers import LatencyComparison, PrecisionReport

log = logging.getLogger("qdqtool")


def _import_tensorrt_module():
    import tensorrt

    return tensorrt


def import_tensorrt():
    """The tensorrt module; TensorRTUnavailable when it is absent (ImportError) or cannot load its libraries (OSError,
    e.g. the Windows package without its DLLs)."""
    try:
        return _import_tensorrt_module()
    except ImportError:
        raise TensorRTUnavailable(TrtProblem.NOT_INSTALLED, INSTALL_HINT) from None
    except OSError as exc:
        raise TensorRTUnavailable(TrtProblem.BROKEN_INSTALL, f"TensorRT is installed but cannot load its libraries "
                                  f"({first_line(exc, 160)}); reinstall it: pip install 'qdqtool[trt]'") from None


def tensorrt_status() -> TensorRTStatus:
    """Usable when TensorRT >= 10 imports and a Builder can be created (which needs a GPU and a fitting driver).
    The probe's own TensorRT messages go to the debug log only; the reason quotes its errors."""
    try:
        trt = import_tensorrt()
    except TensorRTUnavailable as exc:
        installed = exc.problem is not TrtProblem.NOT_INSTALLED
        return unavailable(exc.problem, str(exc) if installed else "TensorRT is not installed")
    version = str(getattr(trt, "__version__", "?"))
    try:
        major = version_major(version)
    except BackendUnavailable as exc:
        return unavailable(TrtProblem.BROKEN_INSTALL, str(exc), version)
    try:
        plan_network(major)
    except BackendUnavailable as exc:
        return unavailable(TrtProblem.TOO_OLD, str(exc), version)
    logger = make_logger(trt, quiet=True)
    try:
        builder = trt.Builder(logger)
    except (RuntimeError, TypeError) as exc:  # pybind11 raises TypeError when createInferBuilder returns nullptr
        builder, seen = None, logger.last_errors() or exc.__class__.__name__
    else:
        seen = logger.last_errors()
    if builder is None:
        return no_gpu_status(version, major, seen, wheel_cuda_major(), driver_cuda_version())
    return TensorRTStatus(True, f"TensorRT {version} with a GPU", None, version, major)


def build_with_tensorrt(config: BuildConfig) -> BuildResult:
    """Parse, build (strongly or weakly typed per version), write the engine atomically, report layer precisions,
    then time it against FP32/FP16 references (a failed timing becomes a note, never a lost engine or report)."""
    trt = import_tensorrt()
    plan = plan_network(version_major(trt.__version__), config.weakly_typed, config.fp16)
    check_output_path(config.model, config.engine)
    model = load_model(config.model)
    refuse_integer_kernels(model, str(config.model))
    feeds = latency_feeds(model, config, sample_set(model, config)) if config.measure_latency else {}
    logger = make_logger(trt)
    serialized = build_serialized(trt, logger, config.model, plan, config)
    write_bytes_atomically(config.engine, bytes(serialized))
    engine = deserialize(trt, logger, serialized, f"the engine {config.engine}")
    information = _layer_information(trt, engine, config)
    report = parse_layer_info_text(information, str(config.model))
    report = dataclasses.replace(report, backend=f"tensorrt {trt.__version__}").with_notes(plan.description)
    unknown = unknown_precision_note(information, report)
    if unknown:
        log.warning("%s", unknown)
        report = report.with_notes(unknown)
    if config.measure_latency:
        report = _with_latency(trt, logger, engine, plan, model, config, feeds, report)
    return BuildResult(config.engine, "trt", report)


def _layer_information(trt, engine, config: BuildConfig) -> str:
    """The inspector's JSON; with dynamic inputs, inspected at the profiles' opt shapes (else formats read 'N/A due
    to dynamic shapes' and precisions are unknown)."""
    inspector = engine.create_engine_inspector()
    context = engine.create_execution_context() if config.shapes else None
    if context is not None:
        for profile in config.shapes.values():
            if not context.set_input_shape(profile.name, profile.opt):  # False: outside the engine's profile
                raise BuildSettingError("shapes", f"TensorRT refused the opt shape {format_shape(profile.opt)} of "
                                                  f"input {profile.name!r} when inspecting the engine; give a shape "
                                                  "profile whose opt lies within min..max")
        inspector.execution_context = context
    return inspector.get_engine_information(trt.LayerInformationFormat.JSON)


def _with_latency(trt, logger, engine, plan: NetworkPlan, model, config: BuildConfig, feeds,
                  report: PrecisionReport) -> PrecisionReport:
    try:
        timed = engine_latency(trt, engine, config.shapes, feeds, config.runs, config.warmup)
    except (LatencySkipped, CudaError) as exc:
        return report.with_notes(f"latency skipped: {exc}")
    except ExecutionFailed as exc:
        log.error("%s", exc)
        return report.with_notes(f"latency failed: {exc}")
    from qdqtool.build.trt_references import time_references

    references = time_references(trt, logger, plan, model, config, feeds)
    comparison = LatencyComparison(timed, references.fp32, references.fp32_name)
    return report.with_latency(comparison).with_notes(*references.notes(timed))
