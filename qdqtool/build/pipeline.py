"""`qdqtool build`: the choice between TensorRT and ONNX Runtime, the build, and the equivalent trtexec command.

Imports go one way: pipeline -> backends -> config (the backends never import this module).
"""

from __future__ import annotations

import dataclasses
import logging

from qdqtool.accuracy.compare import measure_models
from qdqtool.accuracy.measure import ErrorSummary
from qdqtool.build import ort_backend, tensorrt_backend
from qdqtool.build.config import BuildConfig, BuildResult, default_output
from qdqtool.build.trtexec import shell_line, trtexec_commands
from qdqtool.check.predict import CheckReport, check_model
from qdqtool.errors import ModelError
from qdqtool.onnxgraph.prepare import load_model, load_model_graph
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.samples.opening import open_samples

log = logging.getLogger("qdqtool")


def measure_output_error(config: BuildConfig) -> ErrorSummary | None:
    """With samples: the output error measure of the Q/DQ model (run by ONNX Runtime) against the FP32 reference."""
    if config.data_folder is None:
        return None
    model = load_model(config.model)
    count = config.max_samples or config.calibration_samples
    samples = list(open_samples(model, config.data_folder, config.preprocess, count))
    if config.reference is not None:
        return measure_models(load_model(config.reference), model, samples)
    qdq = read_qdq(model)   # the float weights are made one at a time as ONNX Runtime's copy is written
    return measure_models(qdq.float_graph, model, samples, reference_weights=qdq.float_weight)


def choose_backend(requested: str) -> tuple[str, tensorrt_backend.TensorRTStatus | None, str]:
    """(backend, TensorRT status or None when not probed, why): 'trt' when TensorRT imports and sees a GPU."""
    if requested == "ort":
        return "ort", None, "ONNX Runtime requested"
    status = tensorrt_backend.tensorrt_status()
    if requested == "trt":
        status.require()
        return "trt", status, "TensorRT requested"
    return ("trt", status, status.reason) if status.usable else ("ort", status, f"{status.reason}; using ONNX Runtime")


def predict_tensorrt(model_path) -> tuple[CheckReport | None, str]:
    """check's prediction of TensorRT's layers, or (None, why) when TensorRT would refuse the model."""
    try:
        return check_model(read_qdq(load_model_graph(model_path))), ""
    except ModelError as exc:
        return None, str(exc)


def build_engine(config: BuildConfig) -> BuildResult:
    """Build with the chosen backend; the report says which backend ran and why, the result carries trtexec commands.
    An ONNX Runtime build also carries check's prediction of TensorRT's layers (see BuildResult)."""
    backend, status, why = choose_backend(config.backend)
    log.info("build backend: %s (%s)", backend, why)
    if config.engine is None:
        config = dataclasses.replace(config, engine=default_output(config.model, backend))
    prediction, refused = (None, "")
    if backend == "trt":
        result = tensorrt_backend.build_with_tensorrt(config)
    else:
        prediction, refused = predict_tensorrt(config.model)
        result = ort_backend.build_with_onnxruntime(config)
    detected = status.major if status is not None else None
    commands = trtexec_commands(config, detected)  # after the build: the model is known to load
    for command in commands:
        log.debug("trtexec (TensorRT %d): %s", command.tensorrt_major, shell_line(command))
    report = result.report.with_notes(f"backend {backend}: {why}")
    return dataclasses.replace(result, backend=backend, report=report, trtexec=commands,
                               output_error=measure_output_error(config), prediction=prediction,
                               prediction_refused=refused)
