"""Real models: ONNX Runtime quantize_static (QDQ, per-channel, symmetric) then fix-residuals, then check."""

import dataclasses

import numpy as np
import onnx
import pytest

from qdqtool.check.predict import check_model
from qdqtool.onnxgraph.prepare import constants_to_initializers, upgrade_opset
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.repair.pipeline import DataConfig, fix_model
from qdqtool.repair.plan import FixConfig
from qdqtool.runner import create_session
from qdqtool.samples.images import PRESETS
from qdqtool.samples.sets import SampleSet, model_input_specs
from qdqtool.trt.kinds import Cause, EditKind

pytestmark = pytest.mark.assets
CASES = {"yolov8n_320.onnx": "yolo", "ppocrv4_det.onnx": "paddle"}


class _Reader:
    def __init__(self, samples):
        self.samples = iter(samples)

    def get_next(self):
        return next(self.samples, None)


def ort_quantize(model, samples, tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    src, dst = tmp_path / "float.onnx", tmp_path / "ort.onnx"
    onnx.save(model, str(src))
    quantize_static(str(src), str(dst), _Reader(samples), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return onnx.load(str(dst))


def first_output(model, feed):
    return create_session(model, providers=["CPUExecutionProvider"]).run(None, feed)[0]


@pytest.fixture(scope="module", params=sorted(CASES))
def fixed_case(request, models_dir, images_dir, tmp_path_factory):
    name = request.param
    model = onnx.load(str(models_dir / name))
    constants_to_initializers(model.graph)      # PaddlePaddle keeps weights as Constant nodes
    preprocess = dataclasses.replace(PRESETS[CASES[name]], size=(320, 320))
    samples = SampleSet(images_dir, model_input_specs(model), preprocess, max_samples=4)
    quantized = ort_quantize(model, samples, tmp_path_factory.mktemp(name))
    qdq = read_qdq(quantized)
    result = fix_model(qdq, FixConfig(), DataConfig(data_dir=images_dir, preprocess=preprocess, max_samples=4))
    return name, model, upgrade_opset(quantized), qdq, result, samples


def test_after_fix_residuals_fuse_and_no_concat_needs_requantize(fixed_case):
    name, _, _, qdq, result, _ = fixed_case
    assert result.model is not None and result.plan.edits
    after = check_model(read_qdq(result.model))
    assert after.counts()["float-add"] == 0
    assert after.counts()["requant-concat"] == 0
    assert check_model(qdq).counts()["requant-concat"] > 0     # ONNX Runtime's placement needed requantizes
    if name.startswith("yolov8n"):
        assert len(after.of_kind("fused-add")) == 6            # the C2f bottlenecks of the backbone
        head = [f for f in after.of_kind("float-concat", "float-region") if f.op_type == "Concat"]
        assert head and all(f.cause in (Cause.NO_OUTPUT_Q, Cause.NO_QDQ) for f in head)
        assert after.counts()["float-concat"] == 0
        assert any(e.kind == EditKind.REMOVE and e.cause == Cause.RANGE_SPREAD for e in result.plan.edits)


def test_fixed_model_is_valid_runs_and_is_no_less_accurate(fixed_case):
    name, model, quantized, _, result, samples = fixed_case
    onnx.checker.check_model(result.model)
    feed = next(iter(samples))
    reference, before, after = (first_output(m, feed) for m in (model, quantized, result.model))
    assert after.shape == reference.shape
    error_before = float(np.abs(before - reference).mean())
    error_after = float(np.abs(after - reference).mean())
    assert error_after <= error_before * 1.02 + 1e-6
    if name.startswith("yolov8n"):
        scores = slice(4, None)                                 # rows 0..3 are boxes, the rest class scores
        assert float(before[0, scores].max()) < 0.05            # one shared scale rounded every score to 0
        assert float(after[0, scores].max()) > 0.2
        assert np.abs(after[0, scores] - reference[0, scores]).mean() < np.abs(
            before[0, scores] - reference[0, scores]).mean()
