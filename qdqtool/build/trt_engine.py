"""Parse, build and load a TensorRT engine. The tensorrt module and the logger come in as arguments (only
tensorrt_backend imports tensorrt), so the main build and the reference builds share every step."""

from __future__ import annotations

import logging
from pathlib import Path

from qdqtool.build.config import BuildConfig, BuildSettingError
from qdqtool.build.trt_plan import NetworkPlan, parser_error_line, profiles_for_inputs
from qdqtool.errors import ModelError
from qdqtool.onnxgraph.shapes import format_shape

log = logging.getLogger("qdqtool")


def _parse(trt, network, logger, model: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(model)):
        return
    lines = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        node_name = error.node_name() if hasattr(error, "node_name") else ""
        operator = error.node_operator() if hasattr(error, "node_operator") else ""
        lines.append(parser_error_line(node_name, operator, error.desc()))
    raise ModelError(f"TensorRT's ONNX parser rejected {model}: {'; '.join(lines) or 'no details'}; "
                     "fix those nodes (e.g. `qdqtool check`) and build again")


def _builder_config(trt, builder, network, plan: NetworkPlan, config: BuildConfig, logger):
    settings = builder.create_builder_config()
    for flag in plan.builder_flags:
        settings.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in plan.cleared_flags:
        settings.clear_flag(getattr(trt.BuilderFlag, flag))
    if config.workspace_mib is not None:
        settings.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mib << 20)
    settings.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    inputs = [(network.get_input(i).name, tuple(network.get_input(i).shape)) for i in range(network.num_inputs)]
    profiles = profiles_for_inputs(inputs, config.shapes)
    if profiles:
        profile = builder.create_optimization_profile()
        for entry in profiles:
            profile.set_shape(entry.name, entry.min, entry.opt, entry.max)
        if settings.add_optimization_profile(profile) < 0:  # -1: TensorRT found the profile invalid
            shown = ", ".join(f"{p.name}:{format_shape(p.min)}/{format_shape(p.opt)}/{format_shape(p.max)}"
                              for p in profiles)
            raise BuildSettingError("shapes", f"TensorRT refused the shape profile {shown} "
                                              f"({logger.last_errors() or 'no error logged'}); give min <= opt <= max "
                                              "shapes that fit the model's fixed dimensions")
    return settings


def build_serialized(trt, logger, model: Path, plan: NetworkPlan, config: BuildConfig):
    """Parse `model` and build it per `plan`; the serialized engine (IHostMemory), or ModelError quoting TensorRT."""
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed_flag else 0
    network = builder.create_network(flags)
    _parse(trt, network, logger, model)
    settings = _builder_config(trt, builder, network, plan, config, logger)
    log.info("building %s with TensorRT %s, %s", model.name, trt.__version__, plan.description)
    serialized = builder.build_serialized_network(network, settings)
    if serialized is None:
        raise ModelError(f"TensorRT could not build {model.name} ({logger.last_errors() or 'no error logged'}); "
                         "often the workspace limit is too small or a layer has no kernel for its precision")
    return serialized


def deserialize(trt, logger, serialized, what: str):
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    if engine is None:
        seen = logger.last_errors() or "no error logged"
        raise ModelError(f"TensorRT built {what} but could not load it back ({seen}); the GPU may lack memory for it")
    return engine
