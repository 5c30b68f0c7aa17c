"""ONNX Runtime build: lower the Q/DQ model for ONNX Runtime, save the optimised graph as the engine artifact,
report each node's precision and time the INT8 session against an FP32 session in the same run."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import onnx

from qdqtool.build.config import BuildConfig, BuildResult
from qdqtool.build.feeds import check_profiles, latency_feeds, ranges_file, sample_set
from qdqtool.build.latency import measure_latency
from qdqtool.build.ort_lowering import (
    activations_to_uint8,
    add_output_quantizers,
    output_quantizer_candidates,
)
from qdqtool.build.ort_precision import map_node_precisions
from qdqtool.errors import ModelError
from qdqtool.fileio import atomic_output_folder, check_not_data_file, check_output_path
from qdqtool.onnxgraph.prepare import load_model, load_model_with_data_files, refuse_integer_kernels
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.report.gates import ONNXRUNTIME_BACKEND
from qdqtool.report.layers import LatencyComparison, PrecisionReport, make_report
from qdqtool.runner import create_session, default_providers, onnxruntime_version
from qdqtool.trt.rules import QDQ_OPS

log = logging.getLogger("qdqtool")

TRT_NOTE = "TensorRT does not need them: it fuses Conv+activation with the next consumer's quantizer"


def _output_ranges(model: onnx.ModelProto, config: BuildConfig, samples) -> tuple[dict[str, float], list[str]]:
    """amax per weighted-op output: from the ranges file first (given, or beside the model), then a quick max
    calibration on the sample data for the rest."""
    wanted = output_quantizer_candidates(model)
    amax: dict[str, float] = {}
    notes = []
    path, found_beside = ranges_file(config)
    if path is not None:
        from qdqtool.calibrate.ranges import load_ranges

        known = load_ranges(path)
        amax.update({name: known[name].amax for name in wanted if name in known})
        where = " (found beside the model; name another ranges file to use that one)" if found_beside else ""
        notes.append(f"{len(amax)} of {len(wanted)} output ranges from {path}{where}")
        if found_beside:
            log.info("using the ranges file beside the model: %s", path)
    missing = [name for name in wanted if name not in amax]
    if missing and samples is not None:
        from qdqtool.calibrate.collect import collect_ranges

        collected = collect_ranges(model, missing, iter(samples), method="max")
        amax.update({name: r.amax for name, r in collected.items()})
        notes.append(f"{len(collected)} output ranges from a max calibration on {len(samples)} samples of "
                      f"{config.data_folder}")
    return amax, notes


def lower_for_onnxruntime(model: onnx.ModelProto, amax: Mapping[str, float]) -> tuple[onnx.ModelProto, list[str]]:
    """The model ONNX Runtime builds, and notes saying what lowering changed and why."""
    lowering = add_output_quantizers(model, amax)
    lowered, converted = activations_to_uint8(lowering.model)
    notes = [(f"ONNX Runtime lowering: added {len(lowering.added)} output quantizers (Q/DQ on weighted-op outputs) "
              f"so ONNX Runtime fuses QLinearConv; {TRT_NOTE}")]
    if lowering.missing:
        notes.append(f"{len(lowering.missing)} weighted ops stay float in ONNX Runtime: no range for their outputs "
                     f"({', '.join(lowering.missing[:5])}{', ...' if len(lowering.missing) > 5 else ''}); "
                     "give sample data (quick max calibration) or a ranges file holding those tensors")
    if lowering.skipped:
        notes.append(f"{len(lowering.skipped)} weighted ops produce graph outputs and were left unquantized")
    if converted:
        notes.append(f"{converted} int8 activation Q/DQ pairs given uint8 zero point 128 (same values) for "
                     "ONNX Runtime's CPU kernels")
    return lowered, notes


def _reference_session(model: onnx.ModelProto, config: BuildConfig, providers):
    """The FP32 session to time against: the reference model, or the model without Q/DQ, whose float weights are
    made one at a time as ONNX Runtime's copy of it is written (this process never holds them all)."""
    if config.reference is not None:
        return create_session(load_model(config.reference), optimize=True, providers=providers), str(config.reference)
    qdq = read_qdq(model)
    session = create_session(qdq.float_graph, optimize=True, providers=providers, weights=qdq.float_weight)
    return session, "the model without Q/DQ (FP32)"


def _latency(int8_session, model: onnx.ModelProto, config: BuildConfig, feeds, providers) -> LatencyComparison:
    engine = measure_latency(lambda: int8_session.run(None, feeds), config.runs, config.warmup)
    reference_session, reference_name = _reference_session(model, config, providers)
    timed = measure_latency(lambda: reference_session.run(None, feeds), config.runs, config.warmup)
    return LatencyComparison(engine, timed, reference_name)


def _float_node_note(report: PrecisionReport) -> str:
    floats = Counter(layer.layer_type for layer in report.layers
                     if not layer.is_reformat and layer.precision in ("fp32", "fp16"))
    listed = ", ".join(f"{op} {count}" for op, count in floats.most_common())
    return f"float nodes: {sum(floats.values())} ({listed})" if floats else "no float compute nodes"


def build_with_onnxruntime(config: BuildConfig) -> BuildResult:
    """Lower, build (optimise) and save atomically, map node precisions, time INT8 vs FP32."""
    check_output_path(config.model, config.engine)
    if config.reference is not None:
        check_output_path(config.reference, config.engine)
    model, data_files = load_model_with_data_files(config.model)
    check_not_data_file(config.engine, data_files)
    refuse_integer_kernels(model, str(config.model))
    check_profiles(model, config)
    notes = []
    if not any(node.op_type in QDQ_OPS for node in model.graph.node):
        notes.append("the model has no Q/DQ nodes, so everything runs in float; run `qdqtool calibrate` first")
    samples = sample_set(model, config)
    feeds = latency_feeds(model, config, samples) if config.measure_latency else None  # fail before building, not after
    amax, range_notes = _output_ranges(model, config, samples)
    lowered, lowering_notes = lower_for_onnxruntime(model, amax)
    providers = default_providers()
    session, optimized = _build_and_save(lowered, config.engine, providers)
    del lowered   # ONNX Runtime holds its own copy of the weights now
    report = make_report(f"{ONNXRUNTIME_BACKEND} {onnxruntime_version()} ({', '.join(session.get_providers())})",
                         str(config.model), map_node_precisions(optimized),
                         notes + range_notes + lowering_notes,
                         [i.name for i in session.get_inputs()] + [o.name for o in session.get_outputs()])
    report = report.with_notes(_float_node_note(report),
                               "the output is ONNX Runtime's optimised graph (an ONNX model, not a TensorRT engine); "
                               "it may hold CPU-specific layouts (NCHWc) and is meant for this machine",
                               _misnamed_note(config.engine))
    if config.measure_latency:
        report = report.with_latency(_latency(session, model, config, feeds, providers))
    return BuildResult(config.engine, "ort", report)


TENSORRT_SUFFIXES = (".engine", ".plan", ".trt")


def _misnamed_note(engine: Path) -> str:
    if engine.suffix.lower() not in TENSORRT_SUFFIXES:
        return ""
    return (f"{engine.name} holds an ONNX model although its name says TensorRT engine; leave the output out to "
            f"get {engine.stem}.ort.onnx")


def _build_and_save(model: onnx.ModelProto, engine: Path, providers):
    """Create the session with ONNX Runtime writing its optimised graph to a temp file beside engine, then rename."""
    with atomic_output_folder(engine) as folder:
        tmp = folder / engine.name
        session = create_session(model, optimize=True, optimized_model_path=tmp, providers=providers)
        try:
            optimized = onnx.load(str(tmp), load_external_data=False)  # the graph is all the report needs
        except Exception as exc:  # protobuf raises DecodeError; anything else is equally fatal here
            raise ModelError(f"ONNX Runtime wrote an unreadable optimised model ({exc.__class__.__name__}); "
                             "try another onnxruntime version") from exc
    log.info("wrote %s (ONNX Runtime optimised graph)", engine)
    return session, optimized
