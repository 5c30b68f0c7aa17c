"""The `trtexec` command equivalent to a build, for users who build elsewhere (a Jetson, a server with another
TensorRT). Pure: it needs the model's inputs and the target TensorRT version, never TensorRT itself."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from qdqtool.build.config import OUTPUT_SUFFIXES, TRT_MAJORS, BuildConfig, TrtexecCommand
from qdqtool.build.shapes import ShapeProfile
from qdqtool.build.trt_plan import STRONGLY_TYPED_ONLY
from qdqtool.onnxgraph.shapes import format_shape

Input = tuple[str, Sequence[int | None]]   # name, dims (None or a negative number for a dynamic dim)


def plan_path(engine: Path) -> Path:
    """The TensorRT engine file: the build's engine, or beside it when that is an ONNX Runtime .onnx: NAME.ort.onnx
    (the default name) -> NAME.engine, any other NAME.onnx -> NAME.plan."""
    ort, trt = OUTPUT_SUFFIXES["ort"], OUTPUT_SUFFIXES["trt"]
    if engine.name.lower().endswith(ort):
        return engine.with_name(engine.name[:-len(ort)] + trt)
    return engine.with_suffix(".plan") if engine.suffix.lower() == ".onnx" else engine


def layer_info_path(engine: Path) -> Path:
    """Where trtexec writes the layer information that `qdqtool report` reads: ENGINE's stem + .layerinfo.json."""
    return engine.with_name(engine.stem + ".layerinfo.json")


def _precision_flags(major: int, weakly_typed: bool, fp16: bool) -> tuple[list[str], str]:
    if major >= STRONGLY_TYPED_ONLY:
        dropped = "weak typing/FP16 were asked for but " if weakly_typed or fp16 else ""
        return [], f"{dropped}TensorRT {major} takes no precision flags (the Q/DQ nodes decide INT8)"
    if weakly_typed or fp16:
        return (["--int8", "--fp16"] if fp16 else ["--int8"]), "weakly typed (TensorRT 10)"
    return ["--stronglyTyped"], ""


def _dynamic(dims: Sequence[int | None]) -> bool:
    return any(d is None or d < 0 for d in dims)


def known_shape(config: BuildConfig, inputs: Sequence[Input], dims: Sequence[int | None]) -> ShapeProfile | None:
    """The shape the run itself feeds a dynamic image input without a profile: the preprocessing's size
    on the model's one NCHW/NHWC input, batch 1; None when the run does not fix it (channels dynamic too)."""
    size, layout = config.preprocess.size, config.preprocess.layout
    if size is None or len(inputs) != 1 or len(dims) != 4:
        return None
    height, width = size
    batch, *rest = dims
    known = [height, width, rest[2]] if layout == "NHWC" else [rest[0], height, width]
    if any(d is None or d < 0 for d in known):
        return None
    shape = (1 if batch is None or batch < 0 else batch, *known)
    return ShapeProfile(inputs[0][0], shape, shape, shape)


def _shape_flags(config: BuildConfig, inputs: Sequence[Input]) -> tuple[list[str], str]:
    """Flags for the dynamic inputs only (trtexec refuses shapes for a static model: "Static model does not take
    explicit shapes"): --shapes for fixed profiles (given, or the size the run used), --minShapes/--optShapes/
    --maxShapes when a profile spans sizes."""
    fixed, ranged, missing = [], [], []
    for name, dims in inputs:
        if not _dynamic(dims):
            continue
        profile = config.shapes.get(name) or known_shape(config, inputs, dims)
        if profile is None:
            missing.append(name)
            continue
        (fixed if profile.min == profile.max else ranged).append(profile)
    flags = []
    if ranged:
        for flag, pick in (("--minShapes", "min"), ("--optShapes", "opt"), ("--maxShapes", "max")):
            flags.append(f"{flag}=" + ",".join(f"{p.name}:{format_shape(getattr(p, pick))}" for p in ranged))
    if fixed:
        flags.append("--shapes=" + ",".join(f"{p.name}:{format_shape(p.opt)}" for p in fixed))
    note = (f"dynamic input(s) {', '.join(missing)} need --minShapes/--optShapes/--maxShapes" if missing else "")
    return flags, note


def trtexec_command(config: BuildConfig, inputs: Sequence[Input], major: int) -> TrtexecCommand:
    """trtexec building config.model into config.engine with TensorRT `major`, exporting detailed layer info."""
    precision, precision_note = _precision_flags(major, config.weakly_typed, config.fp16)
    shape_flags, shape_note = _shape_flags(config, inputs)
    plan = plan_path(config.engine)
    argv = ["trtexec", f"--onnx={config.model}", f"--saveEngine={plan}", *precision, *shape_flags]
    if config.workspace_mib is not None:
        argv.append(f"--memPoolSize=workspace:{config.workspace_mib}M")
    argv += ["--profilingVerbosity=detailed", f"--exportLayerInfo={layer_info_path(plan)}"]
    note = "; ".join(n for n in (precision_note, shape_note) if n)
    return TrtexecCommand(major, tuple(argv), note)


def trtexec_commands(config: BuildConfig, detected_major: int | None,
                     inputs: Sequence[Input] | None = None) -> tuple[TrtexecCommand, ...]:
    """One command for the given or detected TensorRT version, else one per supported version."""
    if inputs is None:
        inputs = model_inputs(config.model)
    if config.trtexec_major is not None:
        majors: Sequence[int] = (config.trtexec_major,)
    elif detected_major is not None:
        majors = (detected_major,)
    else:
        majors = TRT_MAJORS
    return tuple(trtexec_command(config, inputs, major) for major in majors)


def model_inputs(model: Path) -> list[Input]:
    """The model's graph inputs (initializers excluded) with their dims, read without the weights' external data."""
    import onnx

    from qdqtool.samples.sets import model_input_specs

    return [(spec.name, spec.shape) for spec in model_input_specs(onnx.load(str(model), load_external_data=False))]


def shell_line(command: TrtexecCommand) -> str:
    return shlex.join(command.argv)
