"""Which convolution TensorRT fuses into an Add: walking back from an Add input through fusible epilogues."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import onnx

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.trt.kinds import Cause
from qdqtool.trt.rules import CONV_OPS, FUSIBLE_EPILOGUES, GATED_ACTIVATION_GATES

MAX_EPILOGUE_STEPS = 8

Edge = Tuple[str, int]   # (consumer node name, input index)


@dataclass(frozen=True)
class EpilogueChain:
    """The walk back from one Add input: the conv TensorRT fuses the Add into (None: none, see reason), the epilogue
    nodes between them (nearest the Add first) and the edges into them (the Add's own input edge not included)."""

    conv: Optional[onnx.NodeProto]
    cause: Cause
    reason: str
    nodes: Tuple[str, ...]
    edges: Tuple[Edge, ...]


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


def epilogue_chain(view: GraphView, tensor: str) -> EpilogueChain:
    """Walk back from an Add input to the convolution TensorRT can fuse the Add into.

    The chain from the conv to the Add may only hold fusible pointwise ops (BN, activations, gated activations),
    and every tensor on it must have a single consumer, otherwise TensorRT has to materialise it.
    """
    current, allowed_fan_out = tensor, 1
    nodes: list = []
    edges: list = []

    def stop(conv: Optional[onnx.NodeProto], cause: Cause, reason: str) -> EpilogueChain:
        return EpilogueChain(conv, cause, reason, tuple(nodes), tuple(edges))

    for _ in range(MAX_EPILOGUE_STEPS):
        node = view.producer(current)
        if node is None:
            return stop(None, Cause.GRAPH_INPUT, "comes from a graph input")
        if view.fan_out(current) != allowed_fan_out:
            return stop(None, Cause.SHARED_OUTPUT, f"{node.op_type} {node.name} output has other consumers")
        if node.op_type in CONV_OPS:
            if not view.is_constant(node.input[1]):
                return stop(None, Cause.WEIGHT_NOT_CONSTANT, f"{node.name} has non-constant weights")
            return stop(node, Cause.FUSIBLE, "fusible")
        if node.op_type in FUSIBLE_EPILOGUES:
            nodes.append(node.name)
            edges.append((node.name, 0))
            current, allowed_fan_out = node.input[0], 1
            continue
        gated = gated_activation_input(view, node)
        if gated is None:
            return stop(None, Cause.NOT_EPILOGUE, f"produced by {node.op_type} {node.name}, not a convolution epilogue")
        gate = view.producer(next(t for t in node.input if t != gated))
        nodes += [node.name, gate.name]
        edges += [(node.name, 0), (node.name, 1), (gate.name, 0)]
        # the gated input feeds only the gate and this Mul (checked above), so the next step allows two consumers
        current, allowed_fan_out = gated, 2
    return stop(None, Cause.TOO_FAR, "too many ops between the convolution and the Add")
