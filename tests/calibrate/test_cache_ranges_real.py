"""The --from-cache round trip on a real model (the ImageNet-style orientation classifier, the smallest): calibrate
--method M --cache C, then --from-cache C, gives the same Q/DQ model and the same outputs on the demo photos.
The other real models (YOLOv8n, PP-OCRv4 det) are measured outside make test; the figures are in docs/from-cache.md."""

import numpy as np
import onnx
import pytest

from qdqtool.calibrate.cache_ranges import calibrate_from_cache
from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, calibrate_file
from qdqtool.onnxgraph.prepare import load_model
from qdqtool.runner import create_session
from qdqtool.samples.images import PRESETS
from qdqtool.samples.sets import SampleSet, model_input_specs

pytestmark = pytest.mark.assets
MODEL = "orientation_cls"


@pytest.mark.parametrize("method", ["max", "entropy"])
def test_round_trip_on_a_real_model(models_dir, images_dir, tmp_path, method):
    model, preprocess = models_dir / f"{MODEL}.onnx", PRESETS["imagenet"]
    first, cache, again = tmp_path / "first.onnx", tmp_path / "c.cache", tmp_path / "again.onnx"
    calibrate_file(model, images_dir, CalibrationOutputs(model=first, cache=cache),
                   CalibrationConfig(method=method, preprocess=preprocess))
    result = calibrate_from_cache(model, cache, None, CalibrationOutputs(model=again))
    a, b = onnx.load(first), onnx.load(again)
    assert [n.SerializeToString() for n in a.graph.node] == [n.SerializeToString() for n in b.graph.node]
    assert {t.name: t.SerializeToString() for t in a.graph.initializer} == \
        {t.name: t.SerializeToString() for t in b.graph.initializer}
    assert sum(n.op_type == "QuantizeLinear" for n in b.graph.node) > 20
    left, right = create_session(first), create_session(again)
    samples = SampleSet(images_dir, model_input_specs(load_model(model)), preprocess)
    for feed in samples:
        assert all(np.array_equal(x, y) for x, y in zip(left.run(None, feed), right.run(None, feed)))
    report = result.summary()["from_cache"]
    assert report["used"] == report["used_as"]["quantizer scale"] + report["used_as"]["shared-scale group member"]
