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


def test_initializers_listed_as_graph_inputs_stay_when_weights_are_folded():
    """Old exporters (IR < 4) list initializers as graph inputs, used or not (BatchNorm's num_batches_tracked):
    dropping one would turn it into a required input of the trial session."""
    from onnx import TensorProto, helper, numpy_helper

    model = tiny.resnet_block()
    unused = numpy_helper.from_array(np.array(7, np.int64), "num_batches_tracked")
    model.graph.initializer.append(unused)
    model.graph.input.append(helper.make_tensor_value_info("num_batches_tracked", TensorProto.INT64, []))
    plan = plan_placement(GraphView(model), PlacementConfig())
    folded = dequantized_weights(apply_plan(model, plan, {t: 2.0 for t in plan.quantized_tensors()}))
    assert "num_batches_tracked" in {t.name for t in folded.graph.initializer}
    session = create_session(folded, optimize=False)
    assert [i.name for i in session.get_inputs()] == ["x"]
    session.run(None, tiny.random_feed(model, seed=1))

