import numpy as np
import onnx
import pytest
import tiny
from onnx import TensorProto, helper, numpy_helper

from qdqtool.errors import ModelError
from qdqtool.onnxgraph.prepare import (
    constants_to_initializers,
    default_opset,
    load_model,
    name_nodes,
    prepare_float_model,
    refuse_existing_qdq,
)
from qdqtool.runner import create_session


def paddle_style_model(opset: int = 10) -> onnx.ModelProto:
    """Weights as Constant nodes, unnamed nodes, an old opset: what paddle2onnx exports."""
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)),
             helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c"], ["y"], min=0.0, max=6.0)]
    graph = helper.make_graph(nodes, "p", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return tiny.make_model(graph, opset)


def test_prepare_converts_opset_moves_constant_weights_and_names_nodes():
    model = paddle_style_model()
    prepared, notes = prepare_float_model(model)
    assert default_opset(prepared) == 13 and default_opset(model) == 10  # a copy; the input is unchanged
    assert "w" in [i.name for i in prepared.graph.initializer]
    assert all(n.name for n in prepared.graph.node) and "Constant" not in {n.op_type for n in prepared.graph.node}
    assert any("opset 10 converted to 13" in n for n in notes) and any("Constant" in n for n in notes)
    feed = {"x": np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    before = create_session(model, optimize=False).run(None, feed)[0]
    after = create_session(prepared, optimize=False).run(None, feed)[0]
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)  # preparation keeps the numerics


def test_name_nodes_makes_duplicates_unique():
    graph = tiny.resnet_block().graph
    graph.node[1].name = graph.node[0].name
    graph.node[2].name = ""
    assert name_nodes(graph) == 2
    names = [n.name for n in graph.node]
    assert len(set(names)) == len(names) and all(names)


def test_constant_feeding_a_graph_output_stays_a_node():
    node = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.ones(2, np.float32)))
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("k", TensorProto.FLOAT, [2])])
    assert constants_to_initializers(graph) == 0 and len(graph.node) == 1


def test_load_model_refusals(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07not a model at all \xff\xfe")
    with pytest.raises(ModelError, match="not an ONNX model"):
        load_model(junk)


def test_refuse_existing_qdq_points_to_fix_residuals():
    model = tiny.resnet_block()
    refuse_existing_qdq(model)  # float: fine
    model.graph.node.append(helper.make_node("QuantizeLinear", ["x", "s"], ["q"]))
    with pytest.raises(ModelError, match="fix-residuals"):
        refuse_existing_qdq(model)


def test_a_weight_behind_an_identity_is_the_weight_and_its_conv_is_quantized():
    """`W2 = Identity(W1)` (the PyTorch exporter, for a shared weight) and a no-op Cast: both convs are quantized."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from qdqtool.onnxgraph.graph import GraphView
    from qdqtool.onnxgraph.prepare import prepare_float_model
    from qdqtool.placement.plan import plan_placement
    from qdqtool.trt.kinds import Outcome

    w = numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Identity", ["w"], ["w_alias"], name="alias"),
             helper.make_node("Cast", ["w"], ["w_cast"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Conv", ["x", "w"], ["a"], name="a", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w_alias"], ["b"], name="b", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["b", "w_cast"], ["y"], name="c", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    unprepared = plan_placement(GraphView(model))
    assert {d.node: d.outcome for d in unprepared.decisions}["b"] == Outcome.FLOAT   # what the issue saw
    prepared, notes = prepare_float_model(model)
    assert [n.op_type for n in prepared.graph.node] == ["Conv", "Conv", "Conv"]
    assert any("Identity/no-op Cast" in note for note in notes)
    plan = plan_placement(GraphView(prepared))
    assert {d.node: d.outcome for d in plan.decisions} == dict.fromkeys("abc", Outcome.INT8)
    assert len(model.graph.node) == 5     # the input is never modified
