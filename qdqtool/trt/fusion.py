"""Which convolution TensorRT fuses into an Add: walking back from an Add input through fusible epilogues."""

from __future__ import annotations

from typing import Optional, Tuple

import onnx

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.trt.rules import CONV_OPS, FUSIBLE_EPILOGUES, GATED_ACTIVATION_GATES

MAX_EPILOGUE_STEPS = 8


def gated_activation_input(view: GraphView, node: onnx.NodeProto) -> Optional[str]:
    """For Mul(x, gate(x)) (SiLU, HardSwish written out) return x, else None."""
    if node.op_type != "Mul" or len(node.input) != 2:
        return None
    for data, gate_out in (node.input, tuple(reversed(node.input))):
        gate = view.producer(gate_out)
        is_gate = gate is not None and gate.op_type in GATED_ACTIVATION_GATES and gate.input[0] == data
        if is_gate and view.fan_out(gate_out) == 1 and view.fan_out(data) == 2:
            return data
    return None


def conv_behind(view: GraphView, tensor: str) -> Tuple[Optional[onnx.NodeProto], str]:
    """The convolution TensorRT can fuse an Add into when `tensor` is one Add input, with the reason if none.

    The chain from the conv to the Add may only hold fusible pointwise ops (BN, activations, gated activations),
    and every tensor on it must have a single consumer, otherwise TensorRT has to materialise it.
    """
    current, allowed_fan_out = tensor, 1
    for _ in range(MAX_EPILOGUE_STEPS):
        node = view.producer(current)
        if node is None:
            return None, "comes from a graph input"
        if view.fan_out(current) != allowed_fan_out:
            return None, f"{node.op_type} {node.name} output has other consumers"
        if node.op_type in CONV_OPS:
            if not view.is_constant(node.input[1]):
                return None, f"{node.name} has non-constant weights"
            return node, "fusible"
        if node.op_type in FUSIBLE_EPILOGUES:
            current, allowed_fan_out = node.input[0], 1
            continue
        gated = gated_activation_input(view, node)
        if gated is None:
            return None, f"produced by {node.op_type} {node.name}, not a convolution epilogue"
        # the gated input feeds only the gate and this Mul (checked above), so the next step allows two consumers
        current, allowed_fan_out = gated, 2
    return None, "too many ops between the convolution and the Add"
