import pytest
import tiny

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.placement.plan import PlacementConfig, group_amax, plan_placement
from qdqtool.trt.kinds import Cause, Outcome, Rule


def edges(plan):
    return {(q.node, q.input_index): q.tensor for q in plan.inputs}


def only(plan, rule):
    found = plan.decisions_for(rule)
    assert len(found) == 1, found
    return found[0]


def test_weighted_ops_quantize_activation_and_weight_not_output():
    plan = plan_placement(GraphView(tiny.resnet_block()))
    quantized = edges(plan)
    for conv in ("stem", "conv1", "conv2", "conv3"):
        assert (conv, 0) in quantized
        assert any(w.node == conv and w.input_index == 1 and w.axis == 0 for w in plan.weights)
        assert (conv, 2) not in quantized  # bias stays float
    assert all(q.tensor not in ("conv3_out",) for q in plan.inputs)  # graph output never quantized


def test_residual_add_quantizes_skip_only_and_shares_the_block_input_quantizer():
    plan = plan_placement(GraphView(tiny.resnet_block()))
    quantized = edges(plan)
    assert quantized[("add", 1)] == "stem_relu_out"     # the skip (identity) input
    assert ("add", 0) not in quantized                  # nothing on the fused conv side
    assert quantized[("conv1", 0)] == "stem_relu_out"   # same tensor, same quantizer
    decision = only(plan, "residual-add")
    assert decision.outcome == Outcome.FUSED_INT8 and decision.conv == "conv2"
    assert decision.cause == Cause.SKIP_SHARES_QUANTIZER and decision.tensors == ("stem_relu_out",)


def test_residual_add_both_mode_quantizes_both_inputs_with_one_scale():
    plan = plan_placement(GraphView(tiny.resnet_block()), PlacementConfig(residual_mode="both"))
    quantized = edges(plan)
    assert ("add", 0) in quantized and ("add", 1) in quantized
    assert any({"conv2_out", "stem_relu_out"} <= set(g) for g in plan.groups)
    assert only(plan, Rule.RESIDUAL_ADD).cause == Cause.BOTH_ONE_SCALE


def test_deeper_branch_is_fused_when_both_add_inputs_are_convolutions():
    plan = plan_placement(GraphView(tiny.two_conv_add()))
    quantized = edges(plan)
    assert quantized.get(("add", 0)) == "short_out"   # the 1x1 shortcut conv is the skip branch
    assert ("add", 1) not in quantized
    assert only(plan, Rule.RESIDUAL_ADD).conv == "deep2"


def test_silu_epilogue_is_fused_and_skip_is_the_split_half():
    plan = plan_placement(GraphView(tiny.silu_bottleneck()))
    quantized = edges(plan)
    assert quantized[("m_add", 0)] == "half1"
    assert ("m_add", 1) not in quantized
    concat = only(plan, "concat")
    assert concat.outcome == "int8"
    group = next(g for g in plan.groups if "cat_out" in g)
    # concat inputs, output, and the Split input (Split commutes with Q/DQ) share one scale
    assert {"half0", "half1", "m_add_out", "cat_out"} <= set(group)


def test_standalone_add_is_float_by_default_and_int8_on_request():
    view = GraphView(tiny.standalone_add())
    decision = only(plan_placement(view), "standalone-add")
    assert decision.outcome == Outcome.FLOAT and decision.cause == Cause.NO_FUSIBLE_CONV
    plan = plan_placement(view, PlacementConfig(standalone_add="int8"))
    quantized = edges(plan)
    assert ("add", 0) in quantized and ("add", 1) in quantized and ("after", 0) in quantized
    assert only(plan, "standalone-add").outcome == "int8"


@pytest.mark.parametrize("ratio,expected", [(100.0, "float"), (2.0, "int8")])
def test_concat_ratio_decides_shared_scale_or_float(ratio, expected):
    view = GraphView(tiny.mixed_range_concat(ratio))
    ranges = {"scale_up_out": ratio, "sigmoid_out": 1.0, "head_cat_out": ratio}
    plan = plan_placement(view, ranges=ranges)
    decision = only(plan, "concat")
    assert decision.outcome == expected
    grouped = any("head_cat_out" in g for g in plan.groups)
    assert grouped == (expected == "int8")
    if expected == "float":
        assert decision.cause == Cause.RANGE_SPREAD and decision.spread == pytest.approx(ratio)
        # a Q on the Conv's input would be hoisted in front of the Concat's inputs (rule 4): the Conv runs float
        assert ("after", 0) not in edges(plan) and not any(w.node == "after" for w in plan.weights)
        conv = next(d for d in plan.decisions if d.node == "after")
        assert conv.outcome == Outcome.FLOAT and conv.cause == Cause.HOISTED_ONTO_FLOAT_CONCAT
        assert "head_cat" in conv.reason and f"{ratio:.1f}x" in conv.reason and "after" in decision.reason
    else:
        assert edges(plan)[("after", 0)] == "head_cat_out"


def test_concat_feeding_graph_output_stays_float_and_reports_ratio():
    plan = plan_placement(GraphView(tiny.mixed_range_concat(320.0, into_conv=False)),
                          ranges={"scale_up_out": 320.0, "sigmoid_out": 1.0})
    decision = only(plan, "concat")
    assert decision.outcome == Outcome.FLOAT and decision.cause == Cause.RANGE_SPREAD
    assert decision.spread == pytest.approx(320.0)
    assert {"scale_up_out", "sigmoid_out"} <= set(plan.observe)


def test_maxpool_commutes_so_its_input_joins_the_concat_scale_group():
    plan = plan_placement(GraphView(tiny.sppf()))
    group = next(g for g in plan.groups if "cat_out" in g)
    assert {"act_out", "pool1_out", "pool2_out"} <= set(group)
    amax = group_amax(plan, {"act_out": 3.0, "pool1_out": 2.0, "pool2_out": 2.5, "cat_out": 3.0, "x": 1.0})
    assert amax["cat_out"] == 3.0


def test_decode_conv_after_softmax_stays_float():
    plan = plan_placement(GraphView(tiny.dfl_decode()))
    dfl = [d for d in plan.decisions if d.node == "dfl"]
    assert dfl and dfl[0].outcome == Outcome.FLOAT and dfl[0].cause == Cause.DECODE
    assert ("dfl", 0) not in edges(plan)


def test_weight_axes_for_conv_transpose_and_gemm():
    plan = plan_placement(GraphView(tiny.transposed_and_gemm()))
    axes = {w.node: w.axis for w in plan.weights}
    assert axes == {"deconv": 1, "fc": 0}


def test_exclude_and_op_types_narrow_the_plan():
    view = GraphView(tiny.resnet_block())
    plan = plan_placement(view, PlacementConfig(exclude=("conv3",)))
    assert ("conv3", 0) not in edges(plan)
    assert any(d.node == "conv3" and d.cause == Cause.EXCLUDED for d in plan.decisions)
    gemm_only = plan_placement(GraphView(tiny.transposed_and_gemm()), PlacementConfig(op_types=frozenset({"Gemm"})))
    assert {w.node for w in gemm_only.weights} == {"fc"}


def test_invalid_modes_are_rejected():
    with pytest.raises(ValueError):
        plan_placement(GraphView(tiny.resnet_block()), PlacementConfig(residual_mode="all"))


def test_range_spread_is_a_machine_readable_cause():
    plan = plan_placement(GraphView(tiny.mixed_range_concat(100.0)),
                          ranges={"scale_up_out": 100.0, "sigmoid_out": 1.0, "head_cat_out": 100.0})
    assert only(plan, "concat").cause == "range-spread"
    calm = plan_placement(GraphView(tiny.mixed_range_concat(2.0, into_conv=False)),
                          ranges={"scale_up_out": 2.0, "sigmoid_out": 1.0})
    assert only(calm, "concat").cause == Cause.NO_INT8_CONSUMER
