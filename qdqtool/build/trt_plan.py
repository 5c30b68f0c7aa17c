"""Decisions about a TensorRT build that need no TensorRT: network flags per version, optimisation profiles, parser
messages. Pure functions, so they run (and are tested) everywhere."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qdqtool.build.config import BuildSettingError
from qdqtool.build.shapes import ShapeProfile
from qdqtool.errors import BackendUnavailable
from qdqtool.onnxgraph.shapes import format_shape

MIN_MAJOR = 10
STRONGLY_TYPED_ONLY = 11                  # from TensorRT 11 on, networks are strongly typed and take no precision flags


@dataclass(frozen=True)
class NetworkPlan:
    """How the network is created and which builder flags are set, decided from the TensorRT major version."""

    major: int
    strongly_typed_flag: bool           # create_network(1 << STRONGLY_TYPED) (TensorRT 10)
    builder_flags: tuple[str, ...]      # BuilderFlag names (TensorRT 10 weakly typed only)
    description: str
    cleared_flags: tuple[str, ...] = ()  # BuilderFlag names cleared (TF32, on by default, for an FP32 reference)


def version_major(version: str) -> int:
    """'10.3.0.26' -> 10."""
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise BackendUnavailable(f"cannot read the TensorRT version {version!r}; reinstall it: "
                                 "pip install 'qdqtool[trt]'") from None


def plan_network(major: int, weakly_typed: bool = False, fp16: bool = False) -> NetworkPlan:
    """The network/flag choice per TensorRT version."""
    if major < MIN_MAJOR:
        raise BackendUnavailable(f"TensorRT {major}.x is too old: qdqtool builds with TensorRT 10 or 11; "
                                 "pip install -U 'qdqtool[trt]'")
    if major >= STRONGLY_TYPED_ONLY:
        if weakly_typed or fp16:
            raise BuildSettingError("fp16" if fp16 else "weakly_typed",
                                    "TensorRT 11 builds strongly typed networks only: weak typing and the FP16 flag "
                                    "are gone (the Q/DQ nodes decide INT8; convert the float rest to FP16 with "
                                    "ModelOpt AutoCast first)")
        return NetworkPlan(major, False, (), "strongly typed (TensorRT 11: no precision flags)")
    if weakly_typed or fp16:
        flags = ("INT8", "FP16") if fp16 else ("INT8",)
        return NetworkPlan(major, False, flags, f"weakly typed with BuilderFlag {'+'.join(flags)}")
    return NetworkPlan(major, True, (), "strongly typed (NetworkDefinitionCreationFlag.STRONGLY_TYPED)")


def profiles_for_inputs(inputs: Sequence[tuple[str, Sequence[int]]], shapes: Mapping[str, ShapeProfile],
                        every_dynamic_input: bool = True) -> list[ShapeProfile]:
    """The optimisation-profile entries: given profiles must name inputs and fit their fixed dims; every dynamic
    input (a negative dim) needs one unless every_dynamic_input is False (ONNX Runtime can take data shapes)."""
    known = {name for name, _ in inputs}
    unknown = sorted(set(shapes) - known)
    if unknown:
        raise BuildSettingError("shapes", f"shape profiles name {', '.join(unknown)}, which the model does not have "
                                          f"as inputs; its inputs are {', '.join(sorted(known))}")
    profiles = []
    for name, dims in inputs:
        profile = shapes.get(name)
        dynamic = any(d < 0 for d in dims)
        if profile is None:
            if dynamic and every_dynamic_input:
                raise BuildSettingError("shapes", f"input {name!r} has dynamic shape {format_shape(tuple(dims))}; "
                                                  f"give it a min/opt/max shape profile, e.g. "
                                                  f"{name}:1x3x320x320/1x3x640x640/4x3x640x640")
            continue
        if len(profile.opt) != len(dims):
            raise BuildSettingError("shapes", f"shape profile {name}: rank {len(profile.opt)} but the input has "
                                              f"rank {len(dims)}")
        for axis, dim in enumerate(dims):
            if dim >= 0 and not profile.min[axis] == profile.opt[axis] == profile.max[axis] == dim:
                raise BuildSettingError("shapes", f"shape profile {name}: dimension {axis} is fixed at {dim} in "
                                                  "the model")
        profiles.append(profile)
    return profiles


def parser_error_line(node_name: str, operator: str, description: str) -> str:
    where = f"node {node_name!r}" + (f" ({operator})" if operator else "") if node_name else "the model"
    return f"{where}: {description}"
