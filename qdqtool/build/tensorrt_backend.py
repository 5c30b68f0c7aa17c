"""TensorRT build (10 and 11): the only module that imports tensorrt, always inside a function.

TensorRT 11 networks are strongly typed and take no precision flags; TensorRT 10 builds a Q/DQ network strongly
typed by default, or weakly typed with the INT8 (+FP16) builder flags on request; older versions are refused.
The engine is built with ProfilingVerbosity.DETAILED so the engine inspector reports every layer's precision.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qdqtool.build.pipeline import BuildConfig, BuildResult
from qdqtool.build.shapes import ShapeProfile, format_shape
from qdqtool.errors import BackendUnavailable, ModelError, QdqError
from qdqtool.fileio import check_output_path, write_bytes_atomically
from qdqtool.onnxgraph.prepare import load_model, refuse_integer_kernels
from qdqtool.report.layerinfo import parse_layer_info_text
from qdqtool.report.layers import LatencyComparison, PrecisionReport

log = logging.getLogger("qdqtool")

INSTALL_HINT = "TensorRT is not installed: pip install 'qdqtool[trt]' (needs an NVIDIA GPU and driver)"
MIN_MAJOR = 10


@dataclass(frozen=True)
class NetworkPlan:
    """How the network is created and which builder flags are set, decided from the TensorRT major version."""

    major: int
    strongly_typed_flag: bool           # create_network(1 << STRONGLY_TYPED) (TensorRT 10)
    builder_flags: tuple[str, ...]      # BuilderFlag names (TensorRT 10 weakly typed only)
    description: str


def version_major(version: str) -> int:
    """'10.3.0.26' -> 10."""
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise BackendUnavailable(f"cannot read the TensorRT version {version!r}; reinstall it: "
                                 "pip install 'qdqtool[trt]'") from None


def plan_network(major: int, weakly_typed: bool = False, fp16: bool = False) -> NetworkPlan:
    """The network/flag choice per TensorRT version (pure; testable without TensorRT)."""
    if major < MIN_MAJOR:
        raise BackendUnavailable(f"TensorRT {major}.x is too old: qdqtool builds with TensorRT 10 or 11; "
                                 "pip install -U 'qdqtool[trt]'")
    if major >= 11:
        if weakly_typed or fp16:
            raise QdqError("TensorRT 11 builds strongly typed networks only: drop --weakly-typed/--fp16 (the Q/DQ "
                           "nodes decide INT8; convert the float rest to FP16 with ModelOpt AutoCast first)")
        return NetworkPlan(major, False, (), "strongly typed (TensorRT 11: no precision flags)")
    if weakly_typed or fp16:
        flags = ("INT8", "FP16") if fp16 else ("INT8",)
        return NetworkPlan(major, False, flags, f"weakly typed with BuilderFlag {'+'.join(flags)}")
    return NetworkPlan(major, True, (), "strongly typed (NetworkDefinitionCreationFlag.STRONGLY_TYPED)")


def profiles_for_inputs(inputs: Sequence[tuple[str, Sequence[int]]], shapes: Mapping[str, ShapeProfile]
                        ) -> list[ShapeProfile]:
    """The optimisation-profile entries: every dynamic input (a -1 dim) needs --shapes; named shapes must fit."""
    known = {name for name, _ in inputs}
    unknown = sorted(set(shapes) - known)
    if unknown:
        raise QdqError(f"--shapes names {', '.join(unknown)}, which the model does not have as inputs; "
                       f"its inputs are {', '.join(sorted(known))}")
    profiles = []
    for name, dims in inputs:
        profile = shapes.get(name)
        dynamic = any(d < 0 for d in dims)
        if profile is None:
            if dynamic:
                raise QdqError(f"input {name!r} has dynamic shape {format_shape(tuple(dims))}; pass --shapes "
                               f"{name}:MIN/OPT/MAX, e.g. {name}:1x3x320x320/1x3x640x640/4x3x640x640")
            continue
        if len(profile.opt) != len(dims):
            raise QdqError(f"--shapes {name}: rank {len(profile.opt)} but the input has rank {len(dims)}")
        for axis, dim in enumerate(dims):
            if dim >= 0 and not profile.min[axis] == profile.opt[axis] == profile.max[axis] == dim:
                raise QdqError(f"--shapes {name}: dimension {axis} is fixed at {dim} in the model")
        profiles.append(profile)
    return profiles


def parser_error_line(node_name: str, operator: str, description: str) -> str:
    where = f"node {node_name!r}" + (f" ({operator})" if operator else "") if node_name else "the model"
    return f"{where}: {description}"


def _import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailable(INSTALL_HINT) from None
    return tensorrt


def tensorrt_status() -> tuple[bool, str]:
    """(usable, why): TensorRT >= 10 imports and a builder can be created (which needs a GPU)."""
    try:
        trt = _import_tensorrt()
        major = version_major(trt.__version__)
        plan_network(major)
    except BackendUnavailable as exc:
        return False, str(exc).split(":")[0]
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except (RuntimeError, TypeError) as exc:
        return False, f"TensorRT {trt.__version__} sees no usable GPU ({exc.__class__.__name__})"
    if builder is None:
        return False, f"TensorRT {trt.__version__} sees no usable GPU"
    return True, f"TensorRT {trt.__version__} with a GPU"


def require_tensorrt() -> None:
    usable, why = tensorrt_status()
    if not usable:
        raise BackendUnavailable(INSTALL_HINT if "not installed" in why else f"{why}; use --backend ort or "
                                 "run on a machine with an NVIDIA GPU")


def _parse(trt, network, logger, config: BuildConfig):
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(config.model)):
        return parser
    lines = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        node_name = error.node_name() if hasattr(error, "node_name") else ""
        operator = error.node_operator() if hasattr(error, "node_operator") else ""
        lines.append(parser_error_line(node_name, operator, error.desc()))
    raise ModelError(f"TensorRT's ONNX parser rejected {config.model}: {'; '.join(lines) or 'no details'}; "
                     "fix those nodes (e.g. `qdqtool check`) and build again")


def _builder_config(trt, builder, network, plan: NetworkPlan, config: BuildConfig):
    settings = builder.create_builder_config()
    for flag in plan.builder_flags:
        settings.set_flag(getattr(trt.BuilderFlag, flag))
    if config.workspace_mib is not None:
        settings.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mib << 20)
    settings.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    inputs = [(network.get_input(i).name, tuple(network.get_input(i).shape)) for i in range(network.num_inputs)]
    profiles = profiles_for_inputs(inputs, config.shapes)
    if profiles:
        profile = builder.create_optimization_profile()
        for entry in profiles:
            profile.set_shape(entry.name, entry.min, entry.opt, entry.max)
        settings.add_optimization_profile(profile)
    return settings


def build_with_tensorrt(config: BuildConfig) -> BuildResult:
    """Parse, build (strongly or weakly typed per version), write the engine atomically, report layer precisions."""
    trt = _import_tensorrt()
    plan = plan_network(version_major(trt.__version__), config.weakly_typed, config.fp16)
    check_output_path(config.model, config.engine)
    refuse_integer_kernels(load_model(config.model), str(config.model))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed_flag else 0
    network = builder.create_network(flags)
    _parse(trt, network, logger, config)
    settings = _builder_config(trt, builder, network, plan, config)
    log.info("building with TensorRT %s, %s", trt.__version__, plan.description)
    serialized = builder.build_serialized_network(network, settings)
    if serialized is None:
        raise ModelError("TensorRT could not build the engine; run with -vv to see its log (often --workspace is "
                         "too small or a layer has no INT8 kernel)")
    write_bytes_atomically(config.engine, bytes(serialized))
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    information = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    report = parse_layer_info_text(information, str(config.model))
    report = dataclasses.replace(report, backend=f"tensorrt {trt.__version__}").with_notes(plan.description)
    if config.measure_latency:
        report = _with_latency(report, engine, config)
    return BuildResult(config.engine, "trt", report)


def _with_latency(report: PrecisionReport, engine, config: BuildConfig) -> PrecisionReport:
    """Time execute_async_v3 with torch-allocated buffers; without torch+CUDA the latency is skipped with a note."""
    try:
        import torch
    except ImportError:
        return report.with_notes("latency skipped: it needs torch with CUDA for device buffers")
    if not torch.cuda.is_available():
        return report.with_notes("latency skipped: torch sees no CUDA device")
    from qdqtool.build.latency import measure_latency

    trt = _import_tensorrt()
    context = engine.create_execution_context()
    buffers = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            shape = engine.get_tensor_shape(name)
            if any(d < 0 for d in shape):
                shape = config.shapes[name].opt
            context.set_input_shape(name, tuple(shape))
        shape = tuple(context.get_tensor_shape(name))
        dtype = torch.from_numpy(np.zeros(0, trt.nptype(engine.get_tensor_dtype(name)))).dtype
        buffer = torch.zeros(shape, dtype=dtype, device="cuda")
        context.set_tensor_address(name, buffer.data_ptr())
        buffers.append(buffer)
    stream = torch.cuda.Stream()

    def run_once() -> None:
        context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()

    return report.with_latency(LatencyComparison(measure_latency(run_once, config.runs, config.warmup)))
