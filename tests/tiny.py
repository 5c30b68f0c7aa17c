"""Tiny models built with onnx.helper for unit tests: a small fluent builder, and the shapes the rules care about."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qdqtool.samples import sets as data

IR_VERSION = 8  # old enough for every onnxruntime this project supports (1.20 reads up to IR 10)


def make_model(graph: onnx.GraphProto, opset: int = 13, extra_opsets=()) -> onnx.ModelProto:
    """helper.make_model with a fixed IR version: onnx's default follows the newest onnx, which an older
    onnxruntime refuses ("Unsupported model IR version")."""
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in extra_opsets)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = IR_VERSION
    return model


class Builder:
    """Append nodes with named outputs; weights become initializers. Shapes are NCHW float32."""

    def __init__(self, seed: int = 0, opset: int = 17):
        self.nodes: List[onnx.NodeProto] = []
        self.inits: List[onnx.TensorProto] = []
        self.inputs: List[onnx.ValueInfoProto] = []
        self.rng = np.random.default_rng(seed)
        self.opset = opset
        self.count = 0

    def name(self, op: str) -> str:
        self.count += 1
        return f"{op}_{self.count}"

    def input(self, name: str, shape: Sequence[Optional[int]]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return name

    def const(self, value: np.ndarray, base: str = "w") -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], name: Optional[str] = None, **attrs) -> str:
        node_name = name or self.name(op_type)
        out = f"{node_name}_out"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=node_name, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, name: Optional[str] = None, k: int = 3) -> str:
        w = self.const((self.rng.standard_normal((cout, cin, k, k)) * 0.3).astype(np.float32))
        b = self.const((self.rng.standard_normal(cout) * 0.1).astype(np.float32), "b")
        return self.op("Conv", [x, w, b], name, pads=[k // 2] * 4)

    def silu(self, x: str) -> str:
        return self.op("Mul", [x, self.op("Sigmoid", [x])])

    def model(self, outputs: Sequence[str]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "tiny", self.inputs,
                                  [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                                  self.inits)
        model = make_model(graph, self.opset)
        return onnx.shape_inference.infer_shapes(model)


def resnet_block(channels: int = 4) -> onnx.ModelProto:
    """x -> Conv1 -> Relu -> Conv2 -> Add(conv2, x) -> Relu -> Conv3: the classic residual."""
    b = Builder()
    x = b.input("x", [1, channels, 8, 8])
    stem = b.op("Relu", [b.conv(x, channels, channels, "stem")], "stem_relu")
    y = b.op("Relu", [b.conv(stem, channels, channels, "conv1")], "relu1")
    y = b.conv(y, channels, channels, "conv2")
    y = b.op("Add", [y, stem], "add")
    y = b.op("Relu", [y], "relu2")
    return b.model([b.conv(y, channels, channels, "conv3")])


def silu_bottleneck(channels: int = 4) -> onnx.ModelProto:
    """YOLO-style: Split -> two convs with SiLU -> Add with the split half, then Concat -> Conv."""
    b = Builder()
    x = b.input("x", [1, channels * 2, 8, 8])
    stem = b.silu(b.conv(x, channels * 2, channels * 2, "cv1"))
    b.nodes.append(helper.make_node("Split", [stem, b.const(np.array([channels, channels], np.int64), "split")],
                                    ["half0", "half1"], name="split", axis=1))
    y = b.silu(b.conv("half1", channels, channels, "m_cv1"))
    y = b.silu(b.conv(y, channels, channels, "m_cv2"))
    y = b.op("Add", ["half1", y], "m_add")
    cat = b.op("Concat", ["half0", "half1", y], "cat", axis=1)
    return b.model([b.conv(cat, channels * 3, channels, "cv2")])


def two_conv_add(channels: int = 4) -> onnx.ModelProto:
    """Add of two conv branches of different depth. Placement (float graph) fuses the deeper one and quantizes the
    shallow one as the skip; in a Q/DQ graph with neither side quantized TensorRT fuses the later conv (short)."""
    b = Builder()
    x = b.input("x", [1, channels, 8, 8])
    stem = b.op("Relu", [b.conv(x, channels, channels, "stem")], "stem_relu")
    deep = b.conv(b.op("Relu", [b.conv(stem, channels, channels, "deep1")], "deep_relu"), channels, channels, "deep2")
    short = b.conv(stem, channels, channels, "short", k=1)
    y = b.op("Relu", [b.op("Add", [short, deep], "add")], "out_relu")
    return b.model([b.conv(y, channels, channels, "head")])


def standalone_add(channels: int = 4) -> onnx.ModelProto:
    """Add whose inputs are both shared (fan-out 2) activations: no fusible conv."""
    b = Builder()
    x = b.input("x", [1, channels, 8, 8])
    a = b.op("Relu", [b.conv(x, channels, channels, "a")], "relu_a")
    c = b.op("Relu", [b.conv(x, channels, channels, "c")], "relu_c")
    s = b.op("Add", [a, c], "add")
    out = b.conv(s, channels, channels, "after")
    return b.model([out, b.op("Mul", [a, c], "mul")])


def mixed_range_concat(ratio: float = 100.0, into_conv: bool = True) -> onnx.ModelProto:
    """Concat of a large-range tensor (x*ratio) and a 0..1 tensor (Sigmoid), optionally feeding a Conv."""
    b = Builder()
    x = b.input("x", [1, 2, 8, 8])
    big = b.op("Mul", [b.conv(x, 2, 2, "box"), b.const(np.array(ratio, np.float32), "k")], "scale_up")
    small = b.op("Sigmoid", [b.conv(x, 2, 2, "cls")], "sigmoid")
    cat = b.op("Concat", [big, small], "head_cat", axis=1)
    return b.model([b.conv(cat, 4, 2, "after") if into_conv else cat])


def sppf(channels: int = 4) -> onnx.ModelProto:
    """Conv -> MaxPool x3 -> Concat(all four) -> Conv: MaxPool commutes, one scale across the group."""
    b = Builder()
    x = b.input("x", [1, channels, 8, 8])
    c = b.op("Relu", [b.conv(x, channels, channels, "cv1")], "act")
    p1 = b.op("MaxPool", [c], "pool1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    p2 = b.op("MaxPool", [p1], "pool2", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    cat = b.op("Concat", [c, p1, p2], "cat", axis=1)
    return b.model([b.conv(cat, channels * 3, channels, "cv2")])


def dfl_decode() -> onnx.ModelProto:
    """Softmax -> Conv (YOLO's DFL): the Conv is part of the head decode and stays float."""
    b = Builder()
    x = b.input("x", [1, 4, 8, 8])
    s = b.op("Softmax", [b.conv(x, 4, 4, "logits")], "softmax", axis=1)
    return b.model([b.conv(s, 4, 1, "dfl", k=1)])


def transposed_and_gemm() -> onnx.ModelProto:
    """ConvTranspose (weight axis 1) and Gemm with transB=1 (weight axis 0)."""
    b = Builder()
    x = b.input("x", [1, 4, 4, 4])
    w = b.const((b.rng.standard_normal((4, 3, 2, 2)) * 0.3).astype(np.float32))
    up = b.op("ConvTranspose", [x, w], "deconv", strides=[2, 2])
    flat = b.op("Flatten", [up], "flatten")
    g = b.const((b.rng.standard_normal((5, 3 * 8 * 8)) * 0.1).astype(np.float32))
    return b.model([b.op("Gemm", [flat, g], "fc", transB=1)])


def random_feed(model: onnx.ModelProto, seed: int = 0, batch: int = 1) -> dict:
    return data.random_feed(model, np.random.default_rng(seed), batch=batch)
