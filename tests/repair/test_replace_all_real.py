"""--scope all on real models: quantize_static output of YOLOv8n and PP-OCRv4 det, and the committed QAT exports."""

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from qdqtool.check.predict import check_model
from qdqtool.errors import RangeError
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.prepare import constants_to_initializers, upgrade_opset
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.repair.pipeline import DataConfig, fix_file, fix_model
from qdqtool.repair.plan import FixConfig
from qdqtool.repair.replace_all import ChangeCause, ChangeKind
from qdqtool.runner import create_session
from qdqtool.samples.images import PRESETS
from qdqtool.samples.sets import SampleSet, model_input_specs
from qdqtool.trt.kinds import Cause, Kind

QAT = Path(__file__).resolve().parents[1] / "data" / "qat"
CASES = {"yolov8n_320.onnx": "yolo", "ppocrv4_det.onnx": "paddle"}
CALIBRATION_IMAGES = 2
ALL = FixConfig(scope="all")


class _Reader:
    def __init__(self, samples):
        self.samples = iter(samples)

    def get_next(self):
        return next(self.samples, None)


def first_output(model, feed):
    return create_session(model, providers=["CPUExecutionProvider"]).run(None, feed)[0]


def scales(model):
    return {edge: q.scale for edge, q in read_qdq(model).edges.items()}


@pytest.fixture(scope="module", params=sorted(CASES))
def ort_case(request, models_dir, images_dir, tmp_path_factory):
    """quantize_static (QDQ, per-channel, symmetric, MinMax) of a real model on two photos."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    name = request.param
    folder = tmp_path_factory.mktemp(name)
    model = onnx.load(str(models_dir / name))
    constants_to_initializers(model.graph)
    preprocess = dataclasses.replace(PRESETS[CASES[name]], size=(320, 320))
    samples = SampleSet(images_dir, model_input_specs(model), preprocess, max_samples=CALIBRATION_IMAGES)
    source, quantized = folder / "float.onnx", folder / "ort.onnx"
    onnx.save(model, str(source))
    quantize_static(str(source), str(quantized), _Reader(samples), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return name, model, quantized, samples, folder


@pytest.mark.assets
def test_scope_all_leaves_no_float_add_requantize_or_reformat(ort_case):
    _, _, quantized, _, folder = ort_case
    out = folder / "all.onnx"
    result = fix_file(quantized, out, ALL, DataConfig(compare_samples=1))
    before, report = result.plan.before.counts(), check_model(read_qdq(onnx.load(str(out))))
    after = report.counts()
    assert before["reformat"] > 0 and before["requant-concat"] > 0
    assert after["float-add"] == after["requant-concat"] == 0
    # what Reformats remain are Qs where a float region (a float Add, an SE block's Mul, a float pool) meets an INT8
    # one: one Reformat wherever the Q stands; none is a Q/DQ a placement could fuse
    assert after["reformat"] < before["reformat"]
    assert {f.cause for f in report.of_kind(Kind.REFORMAT)} <= {Cause.FLOAT_BOUNDARY}
    assert result.plan.causes(ChangeKind.REMOVE)[ChangeCause.ACTIVATION] > 0      # Q/DQ between conv and act
    # weights: the model's own int8 values and scales
    source, replaced = GraphView(read_qdq(onnx.load(str(quantized))).model), GraphView(onnx.load(str(out)))
    conv = next(n for n in replaced.nodes if n.op_type == "Conv")
    old_dq, new_dq = source.producer(source.by_name[conv.name].input[1]), replaced.producer(conv.input[1])
    assert np.array_equal(source.constant_value(old_dq.input[0]), replaced.constant_value(new_dq.input[0]))
    assert np.array_equal(source.constant_value(old_dq.input[1]), replaced.constant_value(new_dq.input[1]))
    # a second run changes nothing, byte for byte
    again = folder / "again.onnx"
    assert fix_file(out, again, ALL, DataConfig(compare_samples=1)).model is None
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.assets
def test_scope_all_is_no_less_accurate_than_scope_residuals(ort_case):
    name, model, quantized, samples, _ = ort_case
    qdq = read_qdq(onnx.load(str(quantized)))
    data = DataConfig(compare_samples=1)
    residuals = fix_model(qdq, FixConfig(), data).model
    replaced = fix_model(qdq, ALL, data).model
    feed = next(iter(samples))
    reference = first_output(model, feed)
    errors = {label: float(np.abs(first_output(m, feed) - reference).mean())
              for label, m in (("input", upgrade_opset(qdq.model)), ("residuals", residuals), ("all", replaced))}
    assert errors["all"] <= errors["residuals"] * 1.02 + 1e-3, errors      # outputs are boxes/scores/probabilities
    if name.startswith("yolov8n"):
        scores = slice(4, None)
        assert float(first_output(replaced, feed)[0, scores].max()) > 0.2    # the head scores are not crushed


@pytest.mark.parametrize("name", ["c2f_tiny", "mbv2_tiny", "resnet_tiny"])
def test_qat_exports_keep_their_scales_and_match_scope_residuals_where_it_is_clean(name):
    model = onnx.load(str(QAT / f"{name}.onnx"))
    qdq = read_qdq(model)
    replaced = fix_model(qdq, ALL, DataConfig(compare_samples=1))
    report = check_model(read_qdq(replaced.model))
    after = report.counts()
    assert after["float-add"] == after["requant-concat"] == 0
    # mbv2_tiny: the Q after its float GlobalAveragePool (no range for the pool's input without data) is a float ->
    # INT8 boundary, the one Reformat left; resnet_tiny's pool input is quantized by the model: none
    assert {f.cause for f in report.of_kind(Kind.REFORMAT)} <= {Cause.FLOAT_BOUNDARY}
    assert after["reformat"] == {"mbv2_tiny": 1}.get(name, 0)
    new = scales(replaced.model)
    try:
        residuals = fix_model(qdq, FixConfig(), DataConfig(compare_samples=1)).model
    except RangeError:      # --scope residuals does not infer skip scales yet (issue 8)
        residuals = None
    if residuals is not None and sum(check_model(read_qdq(residuals)).counts().values()) == 0:
        old = scales(residuals)
        assert new.keys() == old.keys()
        assert all(new[e] == pytest.approx(old[e], rel=1e-6) for e in old)
    rescaled = {c.tensor for c in replaced.plan.changes if c.kind == "rescale"}
    for edge, scale in scales(model).items():       # every scale the export has survives, unless TensorRT ties
        if edge in new and read_qdq(model).edges[edge].tensor not in rescaled:      # its tensor to a larger one
            assert new[edge] == pytest.approx(scale, rel=1e-6)
