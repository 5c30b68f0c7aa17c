import numpy as np
import onnx
import pytest
import tiny
from onnx import numpy_helper

from qdqtool.calibrate.collect import collect_ranges
from qdqtool.calibrate.ranges import amax_map
from qdqtool.errors import RangeError
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.placement.apply import apply_plan
from qdqtool.placement.plan import group_amax, plan_placement
from qdqtool.runner import create_session, run
from qdqtool.trt.scales import quantize_weight, scale_from_amax


def calibrated(model, samples=8, method="max"):
    view = GraphView(model)
    plan = plan_placement(view)
    feeds = [tiny.random_feed(model, seed=i) for i in range(samples)]
    ranges = amax_map(collect_ranges(model, plan.observe, feeds, method))
    plan = plan_placement(view, ranges=ranges)
    return plan, apply_plan(model, plan, group_amax(plan, ranges)), feeds


def test_quantize_weight_per_channel_roundtrip():
    w = np.random.default_rng(0).standard_normal((3, 2, 3, 3)).astype(np.float32)
    w[1] = 0.0
    q, scale = quantize_weight(w, 0)
    assert q.dtype == np.int8 and scale.shape == (3,) and np.all(scale > 0)
    assert np.abs(q).max() <= 127 and q[1].max() == 0
    restored = q.astype(np.float32) * scale[:, None, None, None]
    assert np.all(np.abs(restored - w) <= scale[:, None, None, None] / 2 + 1e-7)
    assert np.isclose(np.abs(w[0]).max() / scale[0], 127)


def test_scale_from_amax_is_positive_for_zero():
    assert scale_from_amax(0.0) > 0
    assert scale_from_amax(12.7) == pytest.approx(0.1)


@pytest.mark.parametrize("build", [tiny.resnet_block, tiny.silu_bottleneck, tiny.sppf, tiny.transposed_and_gemm])
def test_applied_model_is_valid_and_close_to_float(build):
    model = build()
    before = model.SerializeToString()
    _plan, quantized, feeds = calibrated(model)
    assert model.SerializeToString() == before  # the input model is never modified
    onnx.checker.check_model(quantized, full_check=True)
    float_session, q_session = create_session(model, optimize=False), create_session(quantized, optimize=False)
    for feed in feeds[:3]:
        ref = next(iter(run(float_session, feed).values()))
        got = next(iter(run(q_session, feed).values()))
        rel = np.abs(got - ref).max() / (np.abs(ref).max() + 1e-6)
        assert rel < 0.1, rel


def test_one_quantizer_per_tensor_feeds_skip_and_conv():
    plan, quantized, _ = calibrated(tiny.resnet_block())
    nodes = {n.name: n for n in quantized.graph.node}
    assert nodes["add"].input[1] == nodes["conv1"].input[0]
    assert nodes["add"].input[1].endswith("_dequantized")
    assert not nodes["add"].input[0].endswith("_dequantized")
    q_nodes = [n for n in quantized.graph.node if n.op_type == "QuantizeLinear"]
    assert len(q_nodes) == len(plan.quantized_tensors())


def test_weights_are_int8_with_axis_and_zero_points():
    _, quantized, _ = calibrated(tiny.transposed_and_gemm())
    inits = {t.name: numpy_helper.to_array(t) for t in quantized.graph.initializer}
    dq = [n for n in quantized.graph.node if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
          and inits[n.input[0]].ndim > 0]
    axes = sorted(next(a.i for a in n.attribute if a.name == "axis") for n in dq)
    assert axes == [0, 1]
    for n in dq:
        assert inits[n.input[0]].dtype == np.int8 and not inits[n.input[2]].any()
    for n in quantized.graph.node:
        if n.op_type == "QuantizeLinear":
            assert inits[n.input[1]].shape == () and inits[n.input[2]] == 0


def test_missing_range_fails_before_changing_anything():
    model = tiny.resnet_block()
    plan = plan_placement(GraphView(model))
    with pytest.raises(RangeError, match="no range"):
        apply_plan(model, plan, {})
