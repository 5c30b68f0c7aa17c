import numpy as np
import tiny

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.trt.fusion import epilogue_chain, gated_activation_input
from qdqtool.trt.kinds import Cause


def test_conv_found_through_batchnorm_and_relu():
    b = tiny.Builder()
    x = b.input("x", [1, 2, 4, 4])
    c = b.conv(x, 2, 2, "conv")
    ones, zeros = b.const(np.ones(2, np.float32)), b.const(np.zeros(2, np.float32))
    bn = b.op("BatchNormalization", [c, ones, zeros, zeros, ones], "bn")
    y = b.op("Relu", [bn], "relu")
    view = GraphView(b.model([b.op("Add", [y, x], "add")]))
    chain = epilogue_chain(view, "relu_out")
    assert chain.conv is not None and chain.conv.name == "conv" and chain.cause == Cause.FUSIBLE
    assert chain.nodes == ("relu", "bn") and chain.edges == (("relu", 0), ("bn", 0))
    from_input = epilogue_chain(view, "x")
    assert from_input.conv is None and from_input.cause == Cause.GRAPH_INPUT


def test_silu_is_a_gated_activation_and_fuses():
    view = GraphView(tiny.silu_bottleneck())
    mul = view.producer("m_add_out")
    assert mul.op_type == "Add"
    silu = view.producer(mul.input[1])
    assert gated_activation_input(view, silu) == "m_cv2_out"
    chain = epilogue_chain(view, mul.input[1])
    assert chain.conv.name == "m_cv2" and chain.nodes == (silu.name, view.producer(silu.input[1]).name)


def test_shared_conv_output_does_not_fuse():
    view = GraphView(tiny.standalone_add())
    chain = epilogue_chain(view, "relu_a_out")
    assert chain.conv is None and chain.cause == Cause.SHARED_OUTPUT
