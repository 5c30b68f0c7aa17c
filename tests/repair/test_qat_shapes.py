"""The shapes real QAT exports (ModelOpt-torch) take, built tiny: no-op Casts and Identities between a tensor and
its readers, tensors read at two scales, residual skips with no scale anywhere, shape chains with no value_info."""

import numpy as np
import onnx
import pytest
import tiny
from onnx import TensorProto, helper

from qdqtool.check.predict import check_model
from qdqtool.errors import ModelError, RangeError
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.repair.apply import apply_repairs
from qdqtool.repair.pipeline import DataConfig, fix_model
from qdqtool.repair.plan import FixConfig, plan_repairs, require_ranges
from qdqtool.trt.kinds import Cause, EditKind, Gate, Kind, ScaleSource

C = 4


def quantize(b: tiny.Builder, tensor: str, scale: float) -> str:
    """tensor -> QuantizeLinear -> DequantizeLinear with its own scale constants (as ModelOpt exports them)."""
    s = b.const(np.array(scale, np.float32), "scale")
    z = b.const(np.array(0, np.int8), "zero")
    return b.op("DequantizeLinear", [b.op("QuantizeLinear", [tensor, s, z]), s, z])


def qconv(b: tiny.Builder, x: str, scale: float, name: str) -> str:
    """A QAT conv: quantized activation input, quantized per-channel weight (float weight through Q/DQ)."""
    w = (b.rng.standard_normal((C, C, 3, 3)) * 0.3).astype(np.float32)
    ws = b.const((np.abs(w).reshape(C, -1).max(axis=1) / 127).astype(np.float32), "wscale")
    wz = b.const(np.zeros(C, np.int8), "wzero")
    wq = b.op("QuantizeLinear", [b.const(w), ws, wz], axis=0)
    wdq = b.op("DequantizeLinear", [wq, ws, wz], axis=0)
    return b.op("Conv", [quantize(b, x, scale), wdq, b.const(np.zeros(C, np.float32), "b")], name, pads=[1] * 4)


def no_op(b: tiny.Builder, tensor: str, kind: str) -> str:
    if kind == "Identity":
        return b.op("Identity", [tensor])
    return b.op("Cast", [tensor], to=TensorProto.FLOAT)


def residual(reader: str = "Cast", casts: int = 1):
    """stem -> Relu -> [Cast/Identity xN] -> Q/DQ -> conv1 -> Relu -> conv2 -> Add(conv2, stem through the no-op)."""
    b = tiny.Builder()
    x = b.input("x", [1, C, 8, 8])
    stem = b.op("Relu", [qconv(b, x, 0.02, "stem")], "stem_relu")
    through = stem
    for _ in range(casts):
        through = no_op(b, through, reader)
    y = b.op("Relu", [qconv(b, through, 0.03, "conv1")], "relu1")
    y = qconv(b, y, 0.04, "conv2")
    y = b.op("Relu", [b.op("Add", [y, through], "add")], "relu2")
    return b.model([qconv(b, y, 0.05, "conv3")])


def fix(model, config=None, measured=None):
    qdq = read_qdq(model)
    plan = plan_repairs(qdq, config, measured)
    return plan, apply_repairs(qdq, plan.edits)


@pytest.mark.parametrize("reader,casts", [("Cast", 1), ("Cast", 2), ("Identity", 1)])
def test_no_op_casts_and_identities_are_the_tensor_behind_them(reader, casts):
    model = residual(reader, casts)
    qdq = read_qdq(model)
    assert qdq.edges[("conv1", 0)].tensor == "stem_relu_out"       # the quantizer reads through the no-ops
    assert len(qdq.see_through) == casts
    assert not any(n.op_type in ("Cast", "Identity") for n in qdq.float_model.graph.node)
    add = next(f for f in check_model(qdq).findings if f.node == "add")
    assert add.kind == Kind.FLOAT_ADD and add.cause == Cause.FLOAT_SKIP and add.tensors == ("stem_relu_out",)
    plan, out = fix(model)
    insert = next(e for e in plan.edits if e.kind == EditKind.INSERT)
    assert (insert.node, insert.input_index, insert.tensor) == ("add", 1, "stem_relu_out")
    assert insert.source == ScaleSource.REUSED and insert.scale == pytest.approx(0.03)
    after = read_qdq(out)
    assert after.edges[("add", 1)].dq_node == after.edges[("conv1", 0)].dq_node    # the existing quantizer, shared
    assert [f.kind for f in check_model(after).findings if f.node == "add"] == [Kind.FUSED_ADD]
    assert plan_repairs(after).edits == ()                                             # nothing left to do
    onnx.checker.check_model(out)


def test_a_cast_to_another_type_is_not_transparent():
    b = tiny.Builder()
    x = b.input("x", [1, C, 8, 8])
    half = b.op("Cast", [b.op("Relu", [x])], "to_half", to=TensorProto.FLOAT16)
    model = b.model([b.op("Cast", [half], "back", to=TensorProto.FLOAT)])
    assert read_qdq(model).see_through == ()


def concat_hoisting():
    """t feeds a Concat whose output Q has scale 0.152, and is read through a no-op Cast by another conv's
    quantizer at scale 0.112: after TensorRT hoists the Concat's Q onto its inputs, t is needed at two scales."""
    b = tiny.Builder()
    x = b.input("x", [1, C, 8, 8])
    t = b.op("Relu", [qconv(b, x, 0.02, "stem")], "t")
    u = b.op("Relu", [qconv(b, no_op(b, t, "Cast"), 0.112, "side")], "u")
    cat = b.op("Concat", [t, u], "cat", axis=1)
    w = (b.rng.standard_normal((C, 2 * C, 1, 1)) * 0.3).astype(np.float32)
    head = b.op("Conv", [quantize(b, cat, 0.152), b.const(w)], "head")
    return b.model([head])


def test_a_tensor_read_at_two_scales_through_concat_hoisting_is_a_requantize():
    model = concat_hoisting()
    report = check_model(read_qdq(model))
    cat = next(f for f in report.findings if f.node == "cat")
    assert cat.kind == Kind.REQUANT_CONCAT and cat.cause == Cause.INPUT_TWO_SCALES and cat.tensors == ("t_out",)
    two = report.of_kind(Kind.TWO_SCALES)
    assert [f.tensors for f in two] == [("t_out",)]
    assert sorted(two[0].scales) == pytest.approx([0.112, 0.152])
    assert report.kinds()[Kind.TWO_SCALES] == 1 and report.counts()[Gate.REQUANT_CONCAT] == 1
    plan, out = fix(model)
    set_scale = [e for e in plan.edits if e.kind == EditKind.SET_SCALE]
    assert set_scale and all(e.scale == pytest.approx(0.152) for e in set_scale)   # the larger amax: nothing clips
    after = check_model(read_qdq(out))
    assert after.counts()[Gate.REQUANT_CONCAT] == 0 and not after.of_kind(Kind.TWO_SCALES)


def test_a_tensor_quantized_twice_directly_gets_the_larger_scale():
    b = tiny.Builder()
    x = b.input("x", [1, C, 8, 8])
    t = b.op("Relu", [qconv(b, x, 0.02, "stem")], "t")
    a, c = qconv(b, t, 0.01, "a"), qconv(b, t, 0.03, "c")
    model = b.model([b.op("Concat", [a, c], "out", axis=1)])
    two = check_model(read_qdq(model)).of_kind(Kind.TWO_SCALES)
    assert [f.tensors for f in two] == [("t_out",)] and len(two[0].quantizers) == 2
    plan, out = fix(model)
    assert [(e.kind, e.scale) for e in plan.edits] == [(EditKind.SET_SCALE, pytest.approx(0.03))]
    after = read_qdq(out)
    assert after.edges[("a", 0)].scale == pytest.approx(after.edges[("c", 0)].scale)


def downsample(output_quantized: bool = True):
    """Add(1x1 shortcut conv, conv2 main branch), no quantizer on either input. TensorRT fuses such an Add into the
    conv that runs last (the shortcut, as Conv_95 + Add_97 in the resnet18-qat engine), so the main branch's output
    (deep2_out) is the skip that needs the quantizer."""
    b = tiny.Builder()
    x = b.input("x", [1, C, 8, 8])
    stem = b.op("Relu", [qconv(b, x, 0.02, "stem")], "stem_relu")
    deep = qconv(b, b.op("Relu", [qconv(b, stem, 0.03, "deep1")]), 0.04, "deep2")
    short = qconv(b, stem, 0.03, "short")
    y = b.op("Relu", [b.op("Add", [short, deep], "add")], "out_relu")
    return b.model([qconv(b, y, 0.06, "head") if output_quantized else y])


def test_missing_skip_scale_is_inferred_from_the_quantizer_reading_the_add_output():
    plan, out = fix(downsample())
    insert = next(e for e in plan.edits if e.kind == EditKind.INSERT)
    assert (insert.node, insert.tensor) == ("add", "deep2_out")
    assert insert.source == ScaleSource.INFERRED_FROM_OUTPUT and insert.scale == pytest.approx(0.06)
    assert "deep2_out" in plan.observe                   # --data, when given, measures it and wins
    assert check_model(read_qdq(out)).counts()[Gate.FLOAT_ADD] == 0


def test_no_quantizer_around_the_add_leaves_nothing_to_infer_then_data_wins_and_strict_refuses():
    model = downsample(output_quantized=False)
    plan = plan_repairs(read_qdq(model))
    insert = next(e for e in plan.edits if e.kind == EditKind.INSERT)
    assert insert.source is None and plan.missing == ("deep2_out",)
    with pytest.raises(RangeError, match="deep2_out"):
        require_ranges(plan)
    measured, _ = fix(model, measured={"deep2_out": 2.54})
    assert next(e for e in measured.edits if e.kind == EditKind.INSERT).source == ScaleSource.MEASURED
    inferred = plan_repairs(read_qdq(downsample()), measured={"deep2_out": 2.54})
    assert next(e for e in inferred.edits if e.kind == EditKind.INSERT).source == ScaleSource.MEASURED
    with pytest.raises(RangeError, match="deep2_out"):
        require_ranges(plan_repairs(read_qdq(downsample()), FixConfig(strict_scales=True)))


def test_a_dq_on_one_side_makes_it_the_skip_and_the_other_conv_hosts_the_add():
    """Q/DQ on the main branch's output only: that side is the skip and the shortcut conv hosts the Add, the shape of
    the resnet18-qat-residual engine (skip through a DQ, Conv_96 + Add_115). Nothing to fix at the Add."""
    b = tiny.Builder()
    x = b.input("x", [1, C, 8, 8])
    stem = b.op("Relu", [qconv(b, x, 0.02, "stem")], "stem_relu")
    deep = qconv(b, b.op("Relu", [qconv(b, stem, 0.03, "deep1")]), 0.04, "deep2")
    short = qconv(b, stem, 0.03, "short")
    model = b.model([b.op("Add", [short, quantize(b, deep, 0.07)], "add")])
    add = next(f for f in check_model(read_qdq(model)).findings if f.node == "add")
    assert add.nodes[0] == "short"
    # it writes float only because its reader is the float graph output (point 3): nothing a Q/DQ edit would change
    assert add.kind == Kind.FLOAT_ADD and add.cause == Cause.GRAPH_OUTPUT and "graph output" in add.reason
    plan, _ = fix(model)
    assert not [e for e in plan.edits if e.node == "add"]


def shape_chain(typed: bool):
    """x -> Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as exporters write view(batch, C, -1)."""
    b = tiny.Builder()
    x = b.input("x", [1, C, 8, 8])
    y = b.op("Relu", [qconv(b, x, 0.02, "stem")], "y")
    batch = b.op("Unsqueeze", [b.op("Gather", [b.op("Shape", [y]), b.const(np.array(0, np.int64), "i")], axis=0),
                               b.const(np.array([0], np.int64), "axes")])
    shape = b.op("Concat", [batch, b.const(np.array([C, -1], np.int64), "rest")], "shape_cat", axis=0)
    model = b.model([b.op("Reshape", [y, shape], "view")])
    if not typed:
        del model.graph.value_info[:]
    return model


def test_untyped_shape_chains_are_typed_by_inference_not_guessed():
    model = shape_chain(typed=False)
    assert not model.graph.value_info
    qdq = read_qdq(model)
    view = GraphView(qdq.float_model)
    assert not view.is_float("shape_cat_out") and view.is_float("y_out")
    assert view.elem_type("shape_cat_out") == TensorProto.INT64
    report = check_model(qdq)
    assert not [f for f in report.findings if f.node == "shape_cat"]    # an int64 Concat is no Q/DQ matter


def test_a_tensor_nothing_can_type_is_refused_not_guessed():
    b = tiny.Builder()
    x = b.input("x", [1, C, 8, 8])
    custom = helper.make_node("Mystery", [x], ["m_out"], name="mystery", domain="example.custom")
    b.nodes.append(custom)
    graph = helper.make_graph([*b.nodes, helper.make_node("Add", ["m_out", "m_out"], ["sum"], name="add")], "t",
                              b.inputs, [helper.make_tensor_value_info("sum", TensorProto.FLOAT, None)], b.inits)
    model = tiny.make_model(graph, 17, [("example.custom", 1)])
    with pytest.raises(ModelError, match="m_out"):
        GraphView(model).is_float("m_out")


def test_fix_with_data_observes_no_shape_tensor(tmp_path):
    model = shape_chain(typed=False)
    plan = plan_repairs(read_qdq(model))
    assert not [t for t in plan.observe if t.startswith(("Unsqueeze", "Gather", "Shape", "shape_cat"))]
    data = tmp_path / "data"
    data.mkdir()
    for seed in range(2):
        np.save(data / f"{seed}.npy", tiny.random_feed(model, seed)["x"])
    result = fix_model(read_qdq(model), FixConfig(), DataConfig(data_dir=data))
    assert result.after.counts()[Gate.FLOAT_ADD] == 0
