"""calibrate --from-cache on tiny models: the round trip through a cache, exact scales, name matching, refusals."""

from __future__ import annotations

import json
import struct

import numpy as np
import onnx
import pytest
import tiny
from onnx import numpy_helper

import qdqtool
from qdqtool.calibrate.cache_ranges import calibrate_from_cache
from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, calibrate_file
from qdqtool.calibrate.trtcache import read_calibration_cache, write_calibration_cache
from qdqtool.errors import DataError, RangeError
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.runner import create_session

MODELS = {
    "resnet_block": tiny.resnet_block,           # residual Add, Relu groups
    "silu_bottleneck": tiny.silu_bottleneck,     # Split, SiLU, Concat group
    "sppf": tiny.sppf,                           # MaxPool chain into one Concat scale
    "mixed_range_concat": tiny.mixed_range_concat,   # a Concat kept float for its spread
    "dfl_decode": tiny.dfl_decode,               # decode head left float
    "standalone_add": tiny.standalone_add,
}


def f32(value: float) -> float:
    return struct.unpack(">f", struct.pack(">f", value))[0]


def save_with_samples(model: onnx.ModelProto, root, count: int = 4, seed: int = 0):
    path = root / "model.onnx"
    onnx.save(model, path)
    data = root / "data"
    data.mkdir()
    for index in range(count):
        feed = tiny.random_feed(model, seed=seed + index)
        np.save(data / f"s{index}.npy", next(iter(feed.values())))
    return path, data


def outputs_on(path, feeds):
    session = create_session(onnx.load(path))
    return [session.run(None, feed) for feed in feeds]


@pytest.mark.parametrize("method", ["max", "entropy"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_gives_the_same_model(tmp_path, name, method):
    """calibrate --cache C, then --from-cache C: the same nodes and the same initializers (every scale bit-exact),
    so the same outputs."""
    model = MODELS[name]()
    path, data = save_with_samples(model, tmp_path)
    first, cache = tmp_path / "first.onnx", tmp_path / "c.cache"
    calibrate_file(path, data, CalibrationOutputs(model=first, cache=cache), CalibrationConfig(method=method))
    again = tmp_path / "again.onnx"
    result = calibrate_from_cache(path, cache, None, CalibrationOutputs(model=again, ranges=tmp_path / "r.json"))
    a, b = onnx.load(first), onnx.load(again)
    assert [n.SerializeToString() for n in a.graph.node] == [n.SerializeToString() for n in b.graph.node]
    assert {t.name: t.SerializeToString() for t in a.graph.initializer} == \
        {t.name: t.SerializeToString() for t in b.graph.initializer}
    assert read_qdq(a).edges, "the tiny model should have quantizers"
    feeds = [tiny.random_feed(model, seed=50 + i) for i in range(2)]
    for left, right in zip(outputs_on(first, feeds), outputs_on(again, feeds)):
        assert all(np.array_equal(x, y) for x, y in zip(left, right))
    assert result.samples == 0 and result.output_error is None
    report = result.summary()["from_cache"]
    assert report["matched"] == report["entries"] and report["calibrated_on_data"] == []


def test_scales_are_the_caches_and_a_group_takes_its_largest(tmp_path):
    """sppf: act, pool1 and pool2 share one scale (Concat + MaxPool); each gets the group's largest cache scale."""
    model = tiny.sppf()
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    names = {"x": 0.02, "cv1_out": 0.3, "act": 0.1, "pool1": 0.2, "pool2": 0.05, "cat_out": 0.15}
    names = {("x" if k == "x" else k if k.endswith("_out") else f"{k}_out"): v for k, v in names.items()}
    cache = write_calibration_cache(tmp_path / "c.cache", names)
    out = tmp_path / "out.onnx"
    result = calibrate_from_cache(path, cache, None, CalibrationOutputs(model=out))
    qdq = read_qdq(onnx.load(out))
    scales = {edge.tensor: edge.scale for edge in qdq.edges.values()}
    assert scales["x"] == f32(0.02)
    assert scales["cat_out"] == f32(0.3)   # cv1_out commutes into the group through the Relu: the largest, 0.3
    assert result.summary()["from_cache"]["raised_to_group_scale"] == ["cat_out"]


def test_ranges_file_names_the_cache_as_source(tmp_path):
    model = tiny.resnet_block()
    path, data = save_with_samples(model, tmp_path)
    cache = tmp_path / "c.cache"
    calibrate_file(path, data, CalibrationOutputs(model=tmp_path / "a.onnx", cache=cache),
                   CalibrationConfig(method="max"))
    ranges = tmp_path / "b.ranges.json"
    calibrate_from_cache(path, cache, None, CalibrationOutputs(model=tmp_path / "b.onnx", ranges=ranges))
    entries = json.loads(ranges.read_text())["ranges"]
    header, scales = read_calibration_cache(cache)
    assert {e["tensor"] for e in entries} == set(scales)
    assert {e["method"] for e in entries} == {f"cache c.cache ({header})"}
    assert all(e["amax"] == scales[e["tensor"]] * 127 for e in entries)


def cache_of(tmp_path, model, extra=None, drop=()):
    """A cache with every activation of the model at 0.01 (minus drop, plus extra)."""
    names = [i.name for i in model.graph.input] + [o for n in model.graph.node for o in n.output]
    scales = {n: 0.01 for n in names if n not in drop}
    scales.update(extra or {})
    return write_calibration_cache(tmp_path / "c.cache", scales)


def test_internal_and_unknown_names_are_counted_and_ignored(tmp_path):
    model = tiny.resnet_block()
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    extra = {"ONNXTRT_Broadcast_12_output": 0.5, "ONNXTRT_flattenTensor_3_output": 0.5, "532": 0.5,
             "(Unnamed Layer* 7) [Shuffle]_output": 0.5, "/other/Conv_output_0": 0.5,
             "add_output": 0.5, "relu1_out_output": 0.5,        # a node's and a tensor's name + "_output"
             "/other/Softmax_output": 0.5}                      # ... but not of this model's
    cache = cache_of(tmp_path, model, extra)
    report = calibrate_from_cache(path, cache, None, CalibrationOutputs(model=tmp_path / "o.onnx")
                                  ).summary()["from_cache"]
    assert report["internal_ignored"] == {"ONNXTRT_*": 2, "bare numbers": 1, "(Unnamed Layer* N)": 1,
                                          "<ONNX name>_output": 2}
    assert report["unknown"] == ["/other/Conv_output_0", "/other/Softmax_output"]
    assert report["entries"] == report["matched"] + 8


def test_a_bare_number_that_is_a_model_tensor_is_matched(tmp_path):
    model = tiny.resnet_block()
    for node in model.graph.node:   # old PyTorch exports name tensors "532"
        for i, name in enumerate(node.input):
            if name == "relu1_out":
                node.input[i] = "532"
        for i, name in enumerate(node.output):
            if name == "relu1_out":
                node.output[i] = "532"
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    report = calibrate_from_cache(path, cache_of(tmp_path, model), None,
                                  CalibrationOutputs(model=tmp_path / "o.onnx")).summary()["from_cache"]
    assert report["internal_ignored"] == {} and report["matched"] == report["entries"]


def test_another_models_cache_is_refused_with_the_count(tmp_path):
    model = tiny.resnet_block()
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    other = {f"/model.{i}/conv/Conv_output_0": 0.1 for i in range(20)}
    other["x"] = 0.01
    cache = write_calibration_cache(tmp_path / "c.cache", other)
    with pytest.raises(RangeError, match="only 1 of its 21 tensor names are tensors of this model"):
        calibrate_from_cache(path, cache, None, CalibrationOutputs(model=tmp_path / "o.onnx"))
    assert not (tmp_path / "o.onnx").exists()


def test_missing_tensors_are_refused_without_data_and_calibrated_with_it(tmp_path):
    model = tiny.resnet_block()
    path, data = save_with_samples(model, tmp_path)
    cache = cache_of(tmp_path, model, drop=("stem_relu_out", "relu1_out"))
    out = tmp_path / "o.onnx"
    with pytest.raises(RangeError, match=r"no scale for 2 tensors the placement needs \(relu1_out, stem_relu_out\)"):
        calibrate_from_cache(path, cache, None, CalibrationOutputs(model=out))
    assert not out.exists()
    result = calibrate_from_cache(path, cache, data, CalibrationOutputs(model=out, ranges=tmp_path / "r.json"),
                                  CalibrationConfig(method="max"))
    assert result.summary()["from_cache"]["calibrated_on_data"] == ["relu1_out", "stem_relu_out"]
    methods = {e["tensor"]: e["method"] for e in json.loads((tmp_path / "r.json").read_text())["ranges"]}
    assert methods["relu1_out"] == "max" and methods["x"].startswith("cache c.cache")
    scales = {e.tensor: e.scale for e in read_qdq(onnx.load(out)).edges.values()}
    assert scales["x"] == f32(0.01) and scales["relu1_out"] != f32(0.01)


def test_missing_tensors_take_the_calibrators_method_by_default(tmp_path):
    """Method auto (the default) with a cache: the cache calibrator's method (EntropyCalibration2 -> entropy)."""
    model = tiny.resnet_block()
    path, data = save_with_samples(model, tmp_path)
    cache = cache_of(tmp_path, model, drop=("relu1_out",))
    calibrate_from_cache(path, cache, data, CalibrationOutputs(model=tmp_path / "o.onnx", ranges=tmp_path / "r.json"))
    methods = {e["tensor"]: e["method"] for e in json.loads((tmp_path / "r.json").read_text())["ranges"]}
    assert methods["relu1_out"] == "entropy"


def test_measuring_options_need_data(tmp_path):
    model = tiny.resnet_block()
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    with pytest.raises(DataError, match="calibration samples are needed"):
        calibrate_from_cache(path, cache_of(tmp_path, model), None, CalibrationOutputs(model=tmp_path / "o.onnx"),
                             CalibrationConfig(keep_float=1))


def test_unused_entries_say_why(tmp_path):
    """dfl_decode: the Softmax side is the decode head; the graph output stays float; conv outputs are epilogues."""
    model = tiny.dfl_decode()
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    report = calibrate_from_cache(path, cache_of(tmp_path, model), None,
                                  CalibrationOutputs(model=tmp_path / "o.onnx")).summary()["from_cache"]
    unused = report["unused_entries"]
    assert unused["softmax_out"].startswith("decode head")
    assert unused["logits_out"].startswith("decode head")    # read by the Softmax
    assert unused["dfl_out"].startswith("graph output")
    assert report["used_as"] == {"quantizer scale": 1}        # only x, for the logits Conv
    assert report["used"] + report["unused"] == report["matched"]


def test_float_concat_inputs_are_unused_entries(tmp_path):
    model = tiny.mixed_range_concat(ratio=100.0)
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    cache = cache_of(tmp_path, model, extra={"scale_up_out": 1.0})   # 100x the Sigmoid's 0.01
    result = calibrate_from_cache(path, cache, None, CalibrationOutputs(model=tmp_path / "o.onnx"))
    unused = result.summary()["from_cache"]["unused_entries"]
    assert unused["scale_up_out"].startswith("read by a Concat kept float")
    assert unused["sigmoid_out"].startswith("read by a Concat kept float")
    assert result.summary()["counts"]["concat"] == {"float": 1}


def test_weights_are_quantized_per_channel_from_the_model(tmp_path):
    model = tiny.resnet_block()
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    out = tmp_path / "o.onnx"
    calibrate_from_cache(path, cache_of(tmp_path, model), None, CalibrationOutputs(model=out))
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(out).graph.initializer}
    weight = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name.startswith("w_"))
    scales = [v for k, v in inits.items() if v.shape == (weight.shape[0],) and v.dtype == np.float32
              and k.endswith("scale")]
    assert scales and any(np.allclose(s, np.abs(weight).max(axis=(1, 2, 3)) / 127) for s in scales)


def test_with_data_the_measuring_options_work_on_the_caches_scales(tmp_path):
    """--keep-float with a cache and data: the sensitivity ranking runs on the cache's scales (public API)."""
    model = tiny.resnet_block()
    path, data = save_with_samples(model, tmp_path)
    cache, outputs = cache_of(tmp_path, model), CalibrationOutputs(model=tmp_path / "o.onnx")
    result = qdqtool.calibrate_from_cache(path, cache, data, outputs, CalibrationConfig(keep_float=1))
    assert any(note.startswith("kept float by sensitivity") for note in result.notes)
    assert result.summary()["counts"]["weighted"].get("float") == 1
    assert result.summary()["from_cache"]["calibrated_on_data"] == []
    assert result.samples == 4 and result.output_error is not None


def test_a_cache_of_internal_names_only_is_refused(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(tiny.resnet_block(), path)
    cache = write_calibration_cache(tmp_path / "c.cache", {"ONNXTRT_Broadcast_output": 0.1, "17": 0.2})
    with pytest.raises(RangeError, match="holds only TensorRT-internal names"):
        calibrate_from_cache(path, cache, None, CalibrationOutputs(model=tmp_path / "o.onnx"))
