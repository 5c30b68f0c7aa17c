import numpy as np
import tiny

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.trt.fusion import conv_behind, gated_activation_input


def test_conv_found_through_batchnorm_and_relu():
    b = tiny.Builder()
    x = b.input("x", [1, 2, 4, 4])
    c = b.conv(x, 2, 2, "conv")
    ones, zeros = b.const(np.ones(2, np.float32)), b.const(np.zeros(2, np.float32))
    bn = b.op("BatchNormalization", [c, ones, zeros, zeros, ones], "bn")
    y = b.op("Relu", [bn], "relu")
    view = GraphView(b.model([b.op("Add", [y, x], "add")]))
    conv, why = conv_behind(view, "relu_out")
    assert conv is not None and conv.name == "conv" and why == "fusible"
    assert conv_behind(view, "x")[0] is None


def test_silu_is_a_gated_activation_and_fuses():
    view = GraphView(tiny.silu_bottleneck())
    mul = view.producer("m_add_out")
    assert mul.op_type == "Add"
    silu = view.producer(mul.input[1])
    assert gated_activation_input(view, silu) == "m_cv2_out"
    assert conv_behind(view, mul.input[1])[0].name == "m_cv2"


def test_shared_conv_output_does_not_fuse():
    view = GraphView(tiny.standalone_add())
    conv, why = conv_behind(view, "relu_a_out")
    assert conv is None and "other consumers" in why
