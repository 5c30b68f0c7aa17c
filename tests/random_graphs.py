"""Random convolutional DAGs for property-based tests: Conv, BatchNormalization, Relu, Add (residual and standalone),
Concat (equal and very different ranges), MaxPool, Resize, Reshape, Split and a Gemm head, with random shapes.

`draw_model(draw)` takes hypothesis's `draw` (from st.data() or @st.composite) so failing graphs shrink.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import tiny
from hypothesis import strategies as st
from onnx import TensorProto, helper


@dataclass(frozen=True)
class Tensor:
    name: str
    channels: int
    height: int
    width: int


class _Graph:
    def __init__(self, seed: int):
        self.b = tiny.Builder(seed=seed)
        self.tensors: list[Tensor] = []

    def add(self, name: str, channels: int, height: int, width: int) -> Tensor:
        tensor = Tensor(name, channels, height, width)
        self.tensors.append(tensor)
        return tensor

    def conv(self, x: Tensor, cout: int, k: int, gain: float = 1.0) -> Tensor:
        out = self.b.conv(x.name, x.channels, cout, k=k)
        if gain != 1.0:
            weight = next(t for t in self.b.inits if t.name == self.b.nodes[-1].input[1])
            scaled = onnx.numpy_helper.to_array(weight) * np.float32(gain)
            weight.CopyFrom(onnx.numpy_helper.from_array(scaled.astype(np.float32), weight.name))
        return self.add(out, cout, x.height, x.width)


OPS = ("conv", "conv_bn_relu", "relu", "residual_add", "standalone_add", "concat", "concat_spread", "maxpool",
       "resize", "reshape", "split")


def _step(g: _Graph, draw, op: str) -> None:
    b = g.b
    x = draw(st.sampled_from(g.tensors), label="input")
    if op == "conv":
        g.conv(x, draw(st.integers(1, 6), label="cout"), draw(st.sampled_from([1, 3]), label="k"))
    elif op == "conv_bn_relu":
        c = g.conv(x, draw(st.integers(1, 6), label="cout"), 3)
        rng = b.rng
        params = [b.const((rng.random(c.channels) + 0.5).astype(np.float32)),
                  b.const((rng.standard_normal(c.channels) * 0.1).astype(np.float32)),
                  b.const((rng.standard_normal(c.channels) * 0.1).astype(np.float32)),
                  b.const((rng.random(c.channels) + 0.5).astype(np.float32))]
        bn = b.op("BatchNormalization", [c.name, *params])
        g.add(b.op("Relu", [bn]), c.channels, c.height, c.width)
    elif op == "relu":
        g.add(b.op("Relu", [x.name]), x.channels, x.height, x.width)
    elif op == "residual_add":  # x -> conv -> relu -> conv, + x
        y = g.conv(x, x.channels, 3)
        y = g.add(b.op("Relu", [y.name]), y.channels, y.height, y.width)
        y = g.conv(y, x.channels, 3)
        g.add(b.op("Add", [y.name, x.name]), x.channels, x.height, x.width)
    elif op == "standalone_add":  # two existing tensors of one shape (x + x when there is no other)
        same = [t for t in g.tensors if (t.channels, t.height, t.width) == (x.channels, x.height, x.width)]
        other = draw(st.sampled_from(same), label="other")
        g.add(b.op("Add", [x.name, other.name]), x.channels, x.height, x.width)
    elif op in ("concat", "concat_spread"):
        gain = 1.0 if op == "concat" else draw(st.sampled_from([100.0, 1000.0]), label="gain")
        left = g.conv(x, draw(st.integers(1, 4), label="c1"), 1)
        right = g.conv(x, draw(st.integers(1, 4), label="c2"), 3, gain)
        g.add(b.op("Concat", [left.name, right.name], axis=1), left.channels + right.channels, x.height, x.width)
    elif op == "maxpool":
        stride = draw(st.sampled_from([1, 2]), label="stride") if min(x.height, x.width) >= 4 else 1
        out = b.op("MaxPool", [x.name], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride])
        g.add(out, x.channels, (x.height - 1) // stride + 1, (x.width - 1) // stride + 1)
    elif op == "resize" and x.height <= 8:
        scales = b.const(np.array([1, 1, 2, 2], np.float32), "scales")
        g.add(b.op("Resize", [x.name, "", scales], mode="nearest"), x.channels, x.height * 2, x.width * 2)
    elif op == "reshape" and x.height % 2 == 0:  # fold half the height into the channels
        shape = b.const(np.array([1, x.channels * 2, x.height // 2, x.width], np.int64), "shape")
        g.add(b.op("Reshape", [x.name, shape]), x.channels * 2, x.height // 2, x.width)
    elif op == "split" and x.channels >= 2:
        first = draw(st.integers(1, x.channels - 1), label="split")
        sizes = b.const(np.array([first, x.channels - first], np.int64), "split")
        name = b.name("Split")
        outs = [f"{name}_a", f"{name}_b"]
        b.nodes.append(helper.make_node("Split", [x.name, sizes], outs, name=name, axis=1))
        g.add(outs[0], first, x.height, x.width)
        g.add(outs[1], x.channels - first, x.height, x.width)


def draw_model(draw) -> onnx.ModelProto:
    """A random DAG: input 1xCxHxW, 1 to 7 random steps, one or two graph outputs, maybe a Gemm head."""
    g = _Graph(seed=draw(st.integers(0, 2**16), label="seed"))
    channels = draw(st.integers(1, 4), label="channels")
    side = draw(st.sampled_from([4, 6, 8]), label="side")
    g.add(g.b.input("x", [1, channels, side, side]), channels, side, side)
    g.conv(g.tensors[0], draw(st.integers(1, 6), label="stem"), 3)  # at least one weighted op
    for _ in range(draw(st.integers(1, 7), label="steps")):
        _step(g, draw, draw(st.sampled_from(OPS), label="op"))
    last = g.tensors[-1]
    outputs = [last.name]
    if draw(st.booleans(), label="gemm head"):
        flat = g.b.op("Flatten", [last.name])
        size = last.channels * last.height * last.width
        weight = g.b.const((g.b.rng.standard_normal((3, size)) * 0.3).astype(np.float32))
        outputs = [g.b.op("Gemm", [flat, weight], transB=1)]
    extra = draw(st.sampled_from(g.tensors[1:-1] or [None]), label="second output")
    if extra is not None and extra.name not in outputs:
        outputs.append(extra.name)
    return _with_output_types(g.b.model(outputs))


def _with_output_types(model: onnx.ModelProto) -> onnx.ModelProto:
    for output in model.graph.output:
        output.type.tensor_type.elem_type = TensorProto.FLOAT
    return model
