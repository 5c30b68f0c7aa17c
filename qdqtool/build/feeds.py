"""The latency input both backends use: the first sample of the data folder, else random data of the model's static
shape or of the shape profile's opt shape; and the ranges file `qdqtool calibrate` leaves beside its model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx

from qdqtool.build.config import BuildConfig, BuildSettingError
from qdqtool.build.trt_plan import profiles_for_inputs
from qdqtool.calibrate.ranges import ranges_beside


def sample_set(model: onnx.ModelProto, config: BuildConfig):
    """The SampleSet of the data folder (None without one); an NCHW image size comes from the profile's opt shape
    when the preprocessing gives none."""
    if config.data_folder is None:
        return None
    from qdqtool.samples.opening import open_samples
    from qdqtool.samples.sets import model_input_specs

    specs = model_input_specs(model)
    preprocess = config.preprocess
    if preprocess.size is None and len(specs) == 1 and specs[0].name in config.shapes:
        opt = config.shapes[specs[0].name].opt
        if len(opt) == 4 and preprocess.layout == "NCHW":
            preprocess = dataclasses.replace(preprocess, size=(opt[2], opt[3]))
    return open_samples(model, config.data_folder, preprocess, config.max_samples or config.calibration_samples)


def latency_feeds(model: onnx.ModelProto, config: BuildConfig, samples) -> dict[str, np.ndarray]:
    """The first sample, else random floats (zeros for other types) of the static or profile-opt shape."""
    if samples is not None:
        return dict(next(iter(samples)))
    from qdqtool.samples.sets import model_input_specs

    rng = np.random.default_rng(0)
    feeds = {}
    for spec in model_input_specs(model):
        profile = config.shapes.get(spec.name)
        shape = profile.opt if profile is not None else spec.shape
        if any(d is None for d in shape):
            raise BuildSettingError("shapes", f"input {spec.name!r} has dynamic dimensions; give it a shape profile "
                                              "(e.g. 1x3x320x320) or sample data for the latency input")
        is_float = spec.dtype.kind == "f"
        feeds[spec.name] = rng.random(shape).astype(spec.dtype) if is_float else np.zeros(shape, spec.dtype)
    return feeds


def check_profiles(model: onnx.ModelProto, config: BuildConfig) -> None:
    """Shape profiles must name inputs of the model and fit their fixed dims (TensorRT checks this against its own
    network; ONNX Runtime needs it here). A dynamic input may go without one when sample data gives its shape."""
    from qdqtool.samples.sets import model_input_specs

    inputs = [(spec.name, [-1 if d is None else d for d in spec.shape]) for spec in model_input_specs(model)]
    profiles_for_inputs(inputs, config.shapes, every_dynamic_input=False)


def ranges_file(config: BuildConfig) -> tuple[Path | None, bool]:
    """(ranges file to use, True when it was found beside the model rather than given)."""
    if config.ranges is not None:
        return config.ranges, False
    beside = ranges_beside(config.model)
    return (beside, True) if beside.is_file() else (None, False)
