"""The maximum-error target's TensorRT cost accounting: what keeping a quantizer's consumers float costs, and the
ranking that prefers gains that break no fusion."""

from __future__ import annotations

import tiny

from qdqtool.calibrate.sensitivity import Sensitivity, keep_float_nodes
from qdqtool.calibrate.target import FusionCost, by_gain_per_layer, fusion_cost
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.placement.plan import PlacementConfig, plan_placement


def plans_with(model, kept):
    view = GraphView(model)
    before = plan_placement(view, PlacementConfig())
    after = plan_placement(view, PlacementConfig(keep_float=keep_float_nodes([kept], 1)))
    return before, after


def test_keeping_the_fused_conv_float_costs_the_residual_fusion_too():
    before, after = plans_with(tiny.resnet_block(), Sensitivity("relu1_out", ("conv2",), 0.1))
    assert next(d for d in before.decisions if d.node == "add").conv == "conv2"
    cost = fusion_cost(before, after)
    assert cost.convs == ("conv2",) and cost.adds == ("add",) and cost.layers == 2
    assert "Conv+Add fusion of add lost" in cost.describe()


def test_keeping_a_conv_outside_any_fusion_costs_that_conv_only():
    before, after = plans_with(tiny.resnet_block(), Sensitivity("relu2_out", ("conv3",), 0.1))
    cost = fusion_cost(before, after)
    assert cost.convs == ("conv3",) and cost.adds == () and cost.concats == ()


def test_ranking_prefers_the_gain_that_breaks_no_fusion():
    lone, block, big = (Sensitivity("a", ("c1",), 0.10), Sensitivity("b", ("c2",), 0.12),
                        Sensitivity("c", ("c3",), 0.50))
    costs = {"a": FusionCost(("c1",), (), ()), "b": FusionCost(("c2",), ("add",), ()),
             "c": FusionCost(("c3",), ("add2",), ())}
    order = [s.tensor for s, _ in by_gain_per_layer([big, block, lone], [costs["c"], costs["b"], costs["a"]])]
    assert order == ["c", "a", "b"]   # 0.25 per layer, then 0.10 alone before 0.12 that also costs a fusion


def test_max_error_never_picks_a_plan_that_needs_a_range_calibration_did_not_observe():
    """Keeping deep2 float moves the Add's fusion onto `short`, whose plan quantizes deep2's output as the skip:
    without a range for it, that quantizer is left out of the ranking instead of failing the whole command."""
    from qdqtool.calibrate.sensitivity import model_outputs
    from qdqtool.calibrate.target import meet_error_target
    from qdqtool.placement.apply import apply_plan
    from qdqtool.placement.plan import group_amax

    model = tiny.two_conv_add()
    view = GraphView(model)
    plan = plan_placement(view, PlacementConfig())
    ranges = {t: 4.0 for t in plan.quantized_tensors()}
    assert "deep2_out" not in ranges
    ranked = [Sensitivity("deep_relu_out", ("deep2",), 0.5), Sensitivity("out_relu_out", ("head",), 0.1)]
    feeds = [tiny.random_feed(model, seed=s) for s in range(2)]
    chosen, result = meet_error_target(model, view, PlacementConfig(), ranges, ranges, plan, lambda: ranked,
                                       feeds, 1e-9)
    assert "deep_relu_out" not in result.kept and "deep2_out" not in chosen.quantized_tensors()
    quantized = apply_plan(model, chosen, group_amax(chosen, ranges))   # applies: every range is there
    assert len(model_outputs(quantized, feeds)) == 2
