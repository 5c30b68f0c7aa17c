"""The TensorRT analysis placement, check and fix-residuals share: residual Adds, activation inputs, range spreads.

Each rule is written once here; `placement.plan` decides with it on a float graph, `check.predict` predicts with it
on the float view of a Q/DQ model, and `repair.plan` repairs with both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import onnx

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.trt.fusion import Edge, EpilogueChain, epilogue_chain


def activation_inputs(view: GraphView, node: onnx.NodeProto) -> list[tuple[int, str]]:
    """(input index, tensor) of the node's float, non-constant inputs."""
    return [(i, t) for i, t in enumerate(node.input) if t and not view.is_constant(t) and view.is_float(t)]


def is_two_input_add(view: GraphView, node: onnx.NodeProto) -> bool:
    """An Add of two activations (an Add with a constant is a bias, which TensorRT fuses; not a residual)."""
    return node.op_type == "Add" and len(node.input) == 2 and len(activation_inputs(view, node)) == 2


@dataclass(frozen=True)
class ResidualAdd:
    """A residual Add as TensorRT sees it: the side whose conv it fuses into, and the skip side."""

    add: str
    fused_index: int
    conv: str
    chain: EpilogueChain                 # the walk on the fused side

    @property
    def skip_index(self) -> int:
        return 1 - self.fused_index

    @property
    def conv_side_edges(self) -> tuple[Edge, ...]:
        """Every edge on the fused side, the Add's own input first: TensorRT needs them all free of Q/DQ."""
        return ((self.add, self.fused_index), *self.chain.edges)


def add_sides(view: GraphView, add: onnx.NodeProto) -> tuple[EpilogueChain, EpilogueChain]:
    chains = tuple(epilogue_chain(view, tensor) for tensor in add.input)
    return chains[0], chains[1]


def residual_add(view: GraphView, add: onnx.NodeProto, is_int8_conv: Callable[[str], bool],
                 sides: tuple[EpilogueChain, EpilogueChain] | None = None) -> ResidualAdd | None:
    """The fused side of a two-input Add: of the sides ending in an INT8 conv, the deeper conv (the main branch;
    ties go to input 0). None when neither side can fuse."""
    sides = sides or add_sides(view, add)
    fusible = [i for i, chain in enumerate(sides) if chain.conv is not None and is_int8_conv(chain.conv.name)]
    if not fusible:
        return None
    depth = view.depth
    fused = max(fusible, key=lambda i: (depth[sides[i].conv.name], -i))
    return ResidualAdd(add.name, fused, sides[fused].conv.name, sides[fused])


def range_spread(ranges: Mapping[str, float] | None, tensors: Iterable[str]) -> float | None:
    """How far apart the ranges of tensors are (largest / smallest amax); None when any range is unknown."""
    if ranges is None:
        return None
    values = [ranges.get(t) for t in tensors]
    if not values or any(v is None for v in values):
        return None
    low, high = min(values), max(values)
    return float("inf") if low <= 0 < high else (high / low if low > 0 else 1.0)
