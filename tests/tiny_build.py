"""Tiny Q/DQ models for the build tests, built with onnx.helper."""

from __future__ import annotations

import numpy as np
import onnx
import tiny
from onnx import TensorProto, helper, numpy_helper


def tiny_qdq_conv(path, shape=(1, 3, 32, 32)) -> None:
    """x -Q/DQ-> Conv(int8 weights) -> Relu -> y, saved at path; a dim of None in shape is dynamic."""
    rng = np.random.default_rng(0)
    weight = np.clip(np.round(rng.standard_normal((8, 3, 3, 3)) * 40), -127, 127).astype(np.int8)
    inits = [numpy_helper.from_array(np.array(1 / 127, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(weight, "w_q"),
             numpy_helper.from_array(np.full(8, 0.005, np.float32), "w_s"),
             numpy_helper.from_array(np.zeros(8, np.int8), "w_z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="x_Q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xdq"], name="x_DQ"),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], name="w_DQ", axis=0),
             helper.make_node("Conv", ["xdq", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    dims = [d if d is not None else name for d, name in zip(shape, ("n", "c", "h", "w"))]
    out = [dims[0], 8, dims[2], dims[3]]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], inits)
    onnx.save(tiny.make_model(graph), path)
