"""The TensorRT analysis placement, check and fix-residuals share: residual Adds, activation inputs, range spreads,
and where TensorRT hoists a Q (onto a Concat's inputs).

Each rule is written once here; `placement.plan` decides with it on a float graph, `check.predict` predicts with it
on the float view of a Q/DQ model, and `repair.plan` repairs with both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import onnx

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.trt.fusion import Edge, EpilogueChain, epilogue_chain
from qdqtool.trt.rules import is_commuting


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


def engine_residual(view: GraphView, add: onnx.NodeProto, is_int8_conv: Callable[[str], bool],
                    is_quantized: Callable[[Edge], bool]) -> ResidualAdd | None:
    """The convolution TensorRT fuses a two-input Add into, in a Q/DQ graph (docs/TRT_RULES.md rule 2, "host"): of the
    sides ending in an INT8 conv, those whose edges carry no Q/DQ (a DQ on a side makes it the skip); of those, the
    conv that runs last in graph order, whose kernel reads the other side as a finished tensor. When every side
    carries Q/DQ the last conv still hosts it, and the Q/DQ on its side splits the fusion. None: no INT8 conv side."""
    sides = add_sides(view, add)
    convs = [i for i, chain in enumerate(sides) if chain.conv is not None and is_int8_conv(chain.conv.name)]
    free = [i for i in convs if not any(is_quantized(e) for e in ((add.name, i), *sides[i].edges))]
    if not convs:
        return None
    order = view.order
    fused = max(free or convs, key=lambda i: order[sides[i].conv.name])
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


# --- Concat hoisting (rules 4 and 5) ------------------------------------------------------------------------------
HOIST_WALK = 16   # how far a Q is followed backwards through commuting ops and Concats


def concats_hoisted_onto(view: GraphView, tensor: str) -> list[str]:
    """The Concats a Q on `tensor` ends up in front of: TensorRT moves a Q backward through commuting ops (rule 5)
    and, at a Concat, onto every input (rule 4), where it may move on. Names in the order the walk meets them."""
    found: list[str] = []
    todo, seen = [(tensor, 0)], {tensor}
    while todo:
        current, depth = todo.pop(0)
        node = view.producer(current)
        if node is None or depth >= HOIST_WALK:
            continue
        if node.op_type == "Concat":
            found.append(node.name)
            ahead = [t for _, t in activation_inputs(view, node)]
        elif is_commuting(node) and node.input and view.is_float(node.input[0]) and not view.is_constant(
                node.input[0]):
            ahead = [node.input[0]]
        else:
            continue
        for name in ahead:
            if name not in seen:
                seen.add(name)
                todo.append((name, depth + 1))
    return found


def spread_concats(view: GraphView, ranges: Mapping[str, float] | None, ratio: float,
                   skip: Callable[[str], bool] = lambda name: False) -> dict[str, float]:
    """Concat name -> the spread of its input ranges, for every Concat whose inputs differ by more than `ratio`: one
    int8 scale would crush its small-range inputs, so it stays float (rule 4). Empty without ranges."""
    found = {}
    for node in view.nodes:
        if node.op_type != "Concat" or not view.is_float(node.output[0]) or skip(node.name):
            continue
        spread = range_spread(ranges, [t for _, t in activation_inputs(view, node)])
        if spread is not None and spread > ratio:
            found[node.name] = spread
    return found


@dataclass(frozen=True)
class HoistBlock:
    """Why a quantizer is not placed: TensorRT would hoist its Q in front of the inputs of a Concat kept float for
    range spread, making that Concat INT8 at one scale after all (the requantization its float decision avoids)."""

    tensor: str
    concat: str
    spread: float
    ratio: float

    @property
    def reason(self) -> str:
        return (f"a Q on {self.tensor} would be hoisted in front of the inputs of Concat {self.concat}, whose input "
                f"ranges differ {self.spread:.1f}x (> {self.ratio:g}x) and which stays float (rules 4, 5)")


def hoist_block(view: GraphView, tensor: str, spread: Mapping[str, float], ratio: float) -> HoistBlock | None:
    """The placement policy for every quantizer (weighted-op inputs, residual skips, standalone Adds): a Q that
    TensorRT would hoist onto a spread Concat's inputs is not placed, and the op reading it runs in float there.

    The alternative, keeping the Q, turns the float Concat into an INT8 one at one scale: the small-range inputs
    round to a handful of levels, a large accuracy loss; leaving the consumer float costs one float op (a Gemm or a
    convolution; for a residual Add, the convolution still fuses the Add, with a float output since the skip
    arrives in float, rule 2). None when the Q is safe."""
    for concat in concats_hoisted_onto(view, tensor) if spread else ():
        if concat in spread:
            return HoistBlock(tensor, concat, spread[concat], ratio)
    return None
