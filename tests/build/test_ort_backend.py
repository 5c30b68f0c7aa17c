"""ONNX Runtime backend on tiny Q/DQ models built in code: lowering, per-node precision, engine artifact, latency."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tiny
from onnx import TensorProto, helper, numpy_helper

from qdqtool.build.config import BuildConfig, BuildSettingError
from qdqtool.build.ort_backend import build_with_onnxruntime
from qdqtool.build.ort_lowering import (
    activations_to_uint8,
    add_output_quantizers,
    output_quantizer_candidates,
)
from qdqtool.build.ort_precision import map_node_precisions
from qdqtool.build.shapes import parse_shapes
from qdqtool.calibrate.collect import collect_ranges
from qdqtool.calibrate.ranges import TensorRange, ranges_beside, save_ranges
from qdqtool.errors import ModelError, OutputError
from qdqtool.report.layers import summarize
from qdqtool.runner import create_session

SHAPE = [1, 3, 16, 16]


def _activation_qdq(nodes, inits, tensor, scale, tag):
    inits += [numpy_helper.from_array(np.array(scale, np.float32), f"{tag}_s"),
              numpy_helper.from_array(np.array(0, np.int8), f"{tag}_z")]
    nodes += [helper.make_node("QuantizeLinear", [tensor, f"{tag}_s", f"{tag}_z"], [f"{tag}_q"], name=f"{tag}_Q"),
              helper.make_node("DequantizeLinear", [f"{tag}_q", f"{tag}_s", f"{tag}_z"], [f"{tag}_dq"],
                               name=f"{tag}_DQ")]
    return f"{tag}_dq"


def _int8_weight(nodes, inits, name, shape, rng):
    value = rng.standard_normal(shape).astype(np.float32) * 0.2
    scale = (np.abs(value).reshape(shape[0], -1).max(1) / 127).astype(np.float32)
    quantized = np.clip(np.round(value / scale.reshape(-1, 1, 1, 1)), -127, 127).astype(np.int8)
    inits += [numpy_helper.from_array(quantized, f"{name}_q"), numpy_helper.from_array(scale, f"{name}_s"),
              numpy_helper.from_array(np.zeros(shape[0], np.int8), f"{name}_z")]
    nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_dq"],
                                  name=f"{name}_DQ", axis=0))
    return f"{name}_dq"


def tiny_trt_placed_model() -> onnx.ModelProto:
    """x -Q/DQ-> conv1 -> relu1 -Q/DQ-> conv2 -> add_residual(+ skip DQ) -> head_sigmoid: TensorRT placement
    (no Q on conv outputs; the residual skip input arrives through DQ)."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x = _activation_qdq(nodes, inits, "x", 1 / 127, "in")
    w1 = _int8_weight(nodes, inits, "w1", (8, 3, 3, 3), rng)
    nodes += [helper.make_node("Conv", [x, w1], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["c1"], ["r1"], name="relu1")]
    r1 = _activation_qdq(nodes, inits, "r1", 0.02, "a1")
    w2 = _int8_weight(nodes, inits, "w2", (8, 8, 3, 3), rng)
    nodes += [helper.make_node("Conv", [r1, w2], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
              helper.make_node("Add", ["c2", r1], ["sum"], name="add_residual"),
              helper.make_node("Sigmoid", ["sum"], ["y"], name="head_sigmoid")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], inits)
    model = tiny.make_model(graph)
    onnx.checker.check_model(model)
    return model


def _feeds():
    return {"x": np.random.default_rng(1).random(SHAPE).astype(np.float32)}


def _run(model):
    return create_session(model, optimize=False, providers=["CPUExecutionProvider"]).run(None, _feeds())[0]


def _conv_output_amax(model):
    ranges = collect_ranges(model, output_quantizer_candidates(model), [_feeds()], method="max")
    return {name: r.amax for name, r in ranges.items()}


def test_candidates_are_weighted_outputs_without_q():
    model = tiny_trt_placed_model()
    assert output_quantizer_candidates(model) == ["c1", "c2"]
    lowered = add_output_quantizers(model, _conv_output_amax(model))
    assert lowered.added == ("c1", "c2") and lowered.missing == ()
    assert output_quantizer_candidates(lowered.model) == []  # lowering is idempotent


def test_lowering_keeps_numerics_close_to_the_qdq_model():
    model = tiny_trt_placed_model()
    lowered = add_output_quantizers(model, _conv_output_amax(model)).model
    reference, result = _run(model), _run(lowered)
    assert np.abs(reference - result).max() < 0.05  # one extra int8 rounding of each conv output
    uint8, converted = activations_to_uint8(lowered)
    assert converted == 4  # in, a1 and the two added conv-output pairs
    np.testing.assert_allclose(_run(uint8), result, atol=1e-6)  # zero point 128 in uint8 == zero point 0 in int8


def test_missing_ranges_leave_convs_float_and_say_so():
    lowered = add_output_quantizers(tiny_trt_placed_model(), {"c1": 3.0})
    assert lowered.added == ("c1",) and lowered.missing == ("c2",)


def _build(tmp_path, **options):
    model_path = tmp_path / "tiny_qdq.onnx"
    onnx.save(tiny_trt_placed_model(), model_path)
    config = BuildConfig(model=model_path, engine=tmp_path / "tiny.engine.onnx", backend="ort", runs=3, warmup=1,
                         **options)
    return build_with_onnxruntime(config)


def test_build_with_ranges_gives_int8_convs_and_names_float_nodes(tmp_path):
    model = tiny_trt_placed_model()
    amax = _conv_output_amax(model)
    save_ranges(tmp_path / "ranges.json", [TensorRange(name, value, "max") for name, value in amax.items()])
    result = _build(tmp_path, ranges=tmp_path / "ranges.json")
    assert result.engine.is_file() and onnx.load(str(result.engine)).graph.node
    layers = result.report.layers
    qlinear = [layer for layer in layers if layer.layer_type == "QLinearConv"]
    assert len(qlinear) == 2 and all(layer.precision == "int8" and layer.computes_int8 for layer in qlinear)
    by_name = {layer.name: layer for layer in layers}
    assert by_name["head_sigmoid"].precision == "fp32" and not by_name["head_sigmoid"].is_fallback
    assert "add_residual" in result.report.summary.float_adds
    assert result.report.summary.float_convs == ()
    assert any("added 2 output quantizers" in note and "TensorRT does not need them" in note
               for note in result.report.notes)
    latency = result.report.latency
    assert latency is not None and latency.engine.runs == 3 and latency.engine.median_ms > 0


def test_ranges_file_beside_the_model_is_used_by_default_and_said(tmp_path):
    """calibrate writes OUT.ranges.json beside OUT.onnx; build OUT.onnx finds it without being told (issue 12, 8)."""
    model = tiny_trt_placed_model()
    amax = _conv_output_amax(model)
    beside = ranges_beside(tmp_path / "tiny_qdq.onnx")
    assert beside == tmp_path / "tiny_qdq.ranges.json"
    save_ranges(beside, [TensorRange(name, value, "max") for name, value in amax.items()])
    result = _build(tmp_path, measure_latency=False)
    assert sum(layer.layer_type == "QLinearConv" for layer in result.report.layers) == 2
    assert result.report.summary.float_convs == ()
    assert any(note.startswith(f"2 of 2 output ranges from {beside}") and "found beside the model" in note
               for note in result.report.notes)
    other = tmp_path / "other.ranges.json"
    save_ranges(other, [TensorRange("c1", amax["c1"], "max")])
    given = _build(tmp_path, measure_latency=False, ranges=other)  # a given file wins over the one beside
    assert len(given.report.summary.float_convs) == 1
    assert any(note.startswith(f"1 of 2 output ranges from {other}") and "found beside" not in note
               for note in given.report.notes)


def test_build_without_ranges_or_data_keeps_convs_float(tmp_path):
    result = _build(tmp_path, measure_latency=False)
    summary = result.report.summary
    assert len(summary.float_convs) == 2
    assert not any(layer.layer_type == "QLinearConv" for layer in result.report.layers)
    assert any("give sample data" in note for note in result.report.notes)
    assert result.report.latency is None


def test_fallback_between_int8_nodes(tmp_path):
    """A float op sandwiched between QLinearConvs is a fallback; one after the last int8 node is not."""
    model = tiny_trt_placed_model()
    for node in model.graph.node:
        if node.op_type == "Relu":
            node.op_type = "Softsign"  # no QLinear kernel: ONNX Runtime must run it in float
    lowered, _ = activations_to_uint8(add_output_quantizers(model, _conv_output_amax(model)).model)
    create_session(lowered, optimize=True, optimized_model_path=tmp_path / "opt.onnx",
                   providers=["CPUExecutionProvider"])
    layers = {layer.name: layer for layer in map_node_precisions(onnx.load(str(tmp_path / "opt.onnx")))}
    assert sum(layer.layer_type == "QLinearConv" for layer in layers.values()) == 2
    assert layers["relu1"].layer_type == "Softsign" and layers["relu1"].precision == "fp32"
    assert layers["relu1"].is_fallback
    assert layers["head_sigmoid"].precision == "fp32" and not layers["head_sigmoid"].is_fallback


def test_refusals(tmp_path):
    model_path = tmp_path / "m.onnx"
    onnx.save(tiny_trt_placed_model(), model_path)
    with pytest.raises(OutputError):
        build_with_onnxruntime(BuildConfig(model=model_path, engine=model_path, backend="ort"))
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"], name="dq")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("q", TensorProto.UINT8, [1])])
    onnx.save(tiny.make_model(graph), tmp_path / "int.onnx")
    with pytest.raises(ModelError, match="FP32 model"):
        build_with_onnxruntime(BuildConfig(model=tmp_path / "int.onnx", engine=tmp_path / "e.onnx", backend="ort"))


def test_qlinear_concat_with_other_input_scales_requantizes():
    consts = {"ys": 0.1, "as": 0.1, "bs": 0.05}
    inits = [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in consts.items()]
    inits += [numpy_helper.from_array(np.array(128, np.uint8), z) for z in ("yz", "az", "bz")]
    node = helper.make_node("QLinearConcat", ["ys", "yz", "a", "as", "az", "b", "bs", "bz"], ["y"], name="cat",
                            domain="com.microsoft", axis=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.UINT8, [1, 2]) for n in "ab"],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 4])], inits)
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    (layer,) = map_node_precisions(model)
    assert layer.precision == "int8" and layer.input_precisions == ("int8", "int8") and layer.requantizes
    assert summarize([layer]).requant_concats == ("cat",)
    model.graph.initializer[2].CopyFrom(numpy_helper.from_array(np.array(0.1, np.float32), "bs"))  # equal scales
    assert not map_node_precisions(model)[0].requantizes


def test_dynamic_input_without_shapes_fails_before_writing(tmp_path):
    model = tiny_trt_placed_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    onnx.save(model, tmp_path / "dyn.onnx")
    engine = tmp_path / "dyn.engine.onnx"
    with pytest.raises(BuildSettingError, match="input 'x' has dynamic dimensions") as info:
        build_with_onnxruntime(BuildConfig(model=tmp_path / "dyn.onnx", engine=engine, backend="ort"))
    assert info.value.setting == "shapes"
    assert not engine.exists() and list(tmp_path.iterdir()) == [tmp_path / "dyn.onnx"]
    with_shapes = BuildConfig(model=tmp_path / "dyn.onnx", engine=engine, backend="ort", runs=2, warmup=0,
                              shapes=parse_shapes("x:1x3x16x16"))
    assert build_with_onnxruntime(with_shapes).report.latency.engine.runs == 2
