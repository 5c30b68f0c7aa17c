import numpy as np
import onnx
import pytest
import tiny
import tiny_qdq
from onnx import TensorProto, helper, numpy_helper

from qdqtool.errors import ModelError
from qdqtool.onnxgraph.qdqview import GRAPH_OUTPUT, read_qdq, strip_qdq
from qdqtool.runner import create_session
from qdqtool.trt.rules import QDQ_OPS


def run(model, feed):
    return create_session(model, optimize=False, providers=["CPUExecutionProvider"]).run(None, feed)


def test_qat_model_edges_weights_and_float_model():
    float_model = tiny.resnet_block()
    view = read_qdq(tiny_qdq.qat(float_model))
    assert set(view.edges) == {("stem", 0), ("conv1", 0), ("conv2", 0), ("conv3", 0)}
    assert view.edges[("conv1", 0)].tensor == "stem_relu_out"
    assert all(w.per_channel and w.axis == 0 for w in view.weights.values())
    assert not view.problems
    assert not any(n.op_type in QDQ_OPS for n in view.float_model.graph.node)
    onnx.checker.check_model(view.float_model)
    # same ops as the float model; outputs differ only by int8 weight rounding
    assert [n.op_type for n in view.float_model.graph.node] == [n.op_type for n in float_model.graph.node]
    feed = tiny.random_feed(float_model)
    expected, got = run(float_model, feed)[0], run(view.float_model, feed)[0]
    assert np.abs(expected - got).max() < 0.05 * np.abs(expected).max()


def test_ort_model_quantized_graph_output_keeps_its_name():
    quantized = tiny_qdq.ort_static(tiny.resnet_block())
    view = read_qdq(quantized)
    assert (GRAPH_OUTPUT, 0) in view.edges
    assert [o.name for o in view.float_model.graph.output] == [o.name for o in quantized.graph.output]
    assert ("add", 0) in view.edges and ("add", 1) in view.edges
    feed = tiny.random_feed(quantized)
    assert run(view.float_model, feed)[0].shape == run(quantized, feed)[0].shape


def _qdq_graph(zero_point: int, activation_scale: np.ndarray):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(activation_scale.astype(np.float32), "s"),
             numpy_helper.from_array(np.full(activation_scale.shape, zero_point, np.int8), "z"),
             numpy_helper.from_array(np.ones((2, 2, 1, 1), np.int8), "w_q"),
             numpy_helper.from_array(np.full(2, 0.5, np.float32), "w_s"),
             numpy_helper.from_array(np.zeros(2, np.int8), "w_z")]
    attrs = {"axis": 1} if activation_scale.size > 1 else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], **attrs),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], **attrs),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=0),
             helper.make_node("Conv", ["xd", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return tiny.make_model(graph)


def test_int8_weights_become_float_and_unnamed_nodes_get_names():
    view = read_qdq(_qdq_graph(0, np.array(0.1)))
    conv = next(n for n in view.float_model.graph.node if n.op_type == "Conv")
    assert conv.name and conv.input[0] == "x"
    weight = next(t for t in view.float_model.graph.initializer if t.name == conv.input[1])
    assert np.allclose(numpy_helper.to_array(weight), 0.5)
    assert view.edges[(conv.name, 0)].scale == pytest.approx(0.1)


@pytest.mark.parametrize("zero_point,scale,kind", [(3, np.array(0.1), "zero-point"),
                                                    (0, np.array([0.1, 0.2]), "per-channel-activation")])
def test_problems_tensorrt_cannot_take_are_reported(zero_point, scale, kind):
    view = read_qdq(_qdq_graph(zero_point, scale))
    assert [p.kind for p in view.problems] == [kind]
    assert "TensorRT" in view.problems[0].message


def test_integer_kernel_models_are_refused():
    model = _qdq_graph(0, np.array(0.1))
    model.graph.node[3].op_type = "ConvInteger"
    with pytest.raises(ModelError, match="ConvInteger"):
        read_qdq(model)


def test_strip_qdq_does_not_modify_its_argument():
    quantized = tiny_qdq.ort_static(tiny.silu_bottleneck())
    before = quantized.SerializeToString()
    stripped = strip_qdq(quantized)
    assert quantized.SerializeToString() == before
    assert not any(n.op_type in QDQ_OPS for n in stripped.graph.node)
