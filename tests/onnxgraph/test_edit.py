"""The one ModelProto editor: fresh names, Q/DQ insertion in producer order, and the pruners."""

from __future__ import annotations

import numpy as np
import onnx
import tiny
from onnx import TensorProto, helper, numpy_helper

from qdqtool.onnxgraph.edit import (
    Names,
    copy_model,
    drop_dead_nodes,
    drop_unread_tensors,
    insert_after_producers,
    qdq_nodes,
    scale_and_zero,
)


def test_fresh_names_never_clash_and_continue_after_taken_suffixes():
    model = tiny.resnet_block()
    names = Names(model)
    taken = set(names.used)
    first = model.graph.node[0].output[0]
    picked = [names.fresh(first) for _ in range(3)] + [names.fresh("new")]
    assert picked == [f"{first}_1", f"{first}_2", f"{first}_3", "new"]
    assert not taken & set(picked) and names.fresh("new") == "new_1"


def test_qdq_pair_is_placed_right_after_the_producer_and_rewired():
    model = copy_model(tiny.resnet_block())
    graph, names = model.graph, Names(model)
    producer = graph.node[0]
    tensor = producer.output[0]
    scale, zero = scale_and_zero(graph, names, 0.1, tensor)
    nodes, dequantized = qdq_nodes(names, tensor, scale, zero)
    consumer = next(n for n in graph.node if tensor in n.input)
    consumer.input[list(consumer.input).index(tensor)] = dequantized
    insert_after_producers(graph, {tensor: nodes})
    ops = [n.op_type for n in graph.node]
    assert ops[1:3] == ["QuantizeLinear", "DequantizeLinear"] and graph.node[2].output[0] == dequantized
    assert numpy_helper.to_array(next(t for t in graph.initializer if t.name == zero)).dtype == np.int8
    onnx.checker.check_model(model)


def test_dead_qdq_chains_go_in_one_call_and_live_ones_stay():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(np.array(1.0, np.float32), "unused")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="Q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="DQ"),
             helper.make_node("Identity", ["dq"], ["dead"], name="I"),
             helper.make_node("Relu", ["x"], ["y"], name="relu"),
             helper.make_node("Relu", ["x"], ["kept_relu"], name="unread_relu")]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    drop_dead_nodes(graph, ("QuantizeLinear", "DequantizeLinear", "Identity"))
    assert [n.name for n in graph.node] == ["relu", "unread_relu"]   # only the listed op types are pruned
    drop_unread_tensors(graph, candidates=["s"])
    assert sorted(t.name for t in graph.initializer) == ["unused", "z"]
    drop_unread_tensors(graph)
    assert [t.name for t in graph.initializer] == []
