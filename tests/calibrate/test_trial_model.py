"""auto's trial model: weight DequantizeLinear folded to float constants gives the same outputs, with no weight DQ."""

from __future__ import annotations

import copy

import numpy as np
import tiny

from qdqtool.calibrate.search import dequantized_weights
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.placement.apply import apply_plan
from qdqtool.placement.plan import PlacementConfig, plan_placement
from qdqtool.runner import create_session


def test_folded_weights_give_the_applied_models_outputs_exactly():
    model = tiny.resnet_block()
    plan = plan_placement(GraphView(model), PlacementConfig())
    quantized = apply_plan(model, plan, {t: 2.0 for t in plan.quantized_tensors()})
    folded = dequantized_weights(copy.deepcopy(quantized))
    dq = [n for n in quantized.graph.node if n.op_type == "DequantizeLinear"]
    left = [n for n in folded.graph.node if n.op_type == "DequantizeLinear"]
    assert len(plan.weights) == 4 and len(left) == len(dq) - len(plan.weights)
    assert {n.output[0] for n in dq} - {n.output[0] for n in left} <= {t.name for t in folded.graph.initializer}
    feed = tiny.random_feed(model, seed=5)
    want = create_session(quantized, optimize=False).run(None, feed)
    got = create_session(folded, optimize=False).run(None, feed)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)
