"""Where Q/DQ goes, by TensorRT's rules: a pure plan from a float graph view, every decision with its reason.

The plan is computed twice by `calibrate`: first without ranges (to learn which tensors need observing), then with
the calibrated ranges (Concat decisions depend on how far the input ranges are apart). `fix-residuals` and `check`
use the same rules on the float view of an existing Q/DQ model.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Set, Tuple

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.trt.analysis import (
    HoistBlock,
    activation_inputs,
    add_sides,
    hoist_block,
    is_two_input_add,
    range_spread,
    residual_add,
    spread_concats,
)
from qdqtool.trt.kinds import Cause, EdgeRule, Outcome, Rule
from qdqtool.trt.rules import DECODE_OPS, FUSIBLE_EPILOGUES, INT8_POOLS, WEIGHTED_OPS, is_commuting, weight_channel_axis

RESIDUAL_MODES = ("skip", "both")
STANDALONE_ADD_MODES = ("float", "int8")


@dataclass(frozen=True)
class PlacementConfig:
    residual_mode: str = "skip"            # "skip": Q/DQ on the skip input only; "both": both inputs, one scale
    concat_ratio: float = 8.0              # a Concat whose grouped ranges differ by more stays float
    standalone_add: str = "float"          # "float" | "int8" for Adds with no fusible convolution
    op_types: Optional[FrozenSet[str]] = None   # weighted op types to quantize (None: all of WEIGHTED_OPS)
    exclude: Tuple[str, ...] = ()          # fnmatch patterns on node names left float
    keep_float: Tuple[Tuple[str, str], ...] = ()   # (node name, reason): nodes the sensitivity analysis keeps float

    def excludes(self, name: str) -> bool:
        """True when the node stays float by the user's patterns or the sensitivity analysis."""
        return any(fnmatch.fnmatchcase(name, p) for p in self.exclude) or any(n == name for n, _ in self.keep_float)


@dataclass(frozen=True)
class QuantizedInput:
    """One edge that receives a Q/DQ pair: tensor -> node.input[input_index] (activations, per tensor)."""

    tensor: str
    node: str
    input_index: int
    rule: EdgeRule


@dataclass(frozen=True)
class QuantizedWeight:
    """A constant weight quantized per output channel (axis None: per tensor)."""

    tensor: str
    node: str
    input_index: int
    axis: Optional[int]


@dataclass(frozen=True)
class Decision:
    """What the plan decided for one node, and why (reason: for people; cause and the fields after it: for code)."""

    node: str
    op_type: str
    rule: Rule
    outcome: Outcome
    reason: str
    tensors: Tuple[str, ...] = ()
    cause: Cause = Cause.NONE
    conv: str = ""                  # residual Adds: the convolution the Add fuses into
    spread: Optional[float] = None  # Concats: how far the input ranges are apart, when measured


@dataclass(frozen=True)
class PlacementPlan:
    inputs: Tuple[QuantizedInput, ...]
    weights: Tuple[QuantizedWeight, ...]
    groups: Tuple[Tuple[str, ...], ...]     # tensors that must share one scale (size >= 2)
    decisions: Tuple[Decision, ...]
    observe: Tuple[str, ...]                # tensors whose ranges the plan needs or reports
    config: PlacementConfig = field(default_factory=PlacementConfig)
    spread: Tuple[Tuple[str, float], ...] = ()   # (Concat, input range spread): Concats kept float for spread

    def hoist_block(self, view: GraphView, tensor: str) -> Optional[HoistBlock]:
        """Why a Q on tensor may not be placed (it would be hoisted onto a spread Concat's inputs), or None."""
        return hoist_block(view, tensor, dict(self.spread), self.config.concat_ratio)

    def quantized_tensors(self) -> List[str]:
        return sorted({q.tensor for q in self.inputs})

    def decisions_for(self, rule: Rule) -> List[Decision]:
        return [d for d in self.decisions if d.rule == rule]


class _Groups:
    """Union-find over tensor names; each root tracks its members."""

    def __init__(self) -> None:
        self.parent: Dict[str, str] = {}

    def find(self, name: str) -> str:
        self.parent.setdefault(name, name)
        while self.parent[name] != name:
            self.parent[name] = self.parent[self.parent[name]]
            name = self.parent[name]
        return name

    def union(self, names: Iterable[str]) -> None:
        roots = [self.find(n) for n in names]
        for root in roots[1:]:
            self.parent[root] = roots[0]

    def members(self, name: str) -> Set[str]:
        root = self.find(name)
        return {n for n in self.parent if self.find(n) == root}

    def all_groups(self) -> List[Tuple[str, ...]]:
        by_root: Dict[str, List[str]] = {}
        for name in self.parent:
            by_root.setdefault(self.find(name), []).append(name)
        return sorted(tuple(sorted(g)) for g in by_root.values() if len(g) > 1)


class _Planner:
    def __init__(self, view: GraphView, config: PlacementConfig, ranges: Optional[Mapping[str, float]]):
        self.view, self.config, self.ranges = view, config, ranges
        self.inputs: Dict[Tuple[str, int], QuantizedInput] = {}
        self.weights: List[QuantizedWeight] = []
        self.decisions: List[Decision] = []
        self.groups = _Groups()
        self.observe: Set[str] = set()
        self.int8_convs: Set[str] = set()
        self.kept_float: Dict[str, str] = dict(config.keep_float)
        self.spread = spread_concats(view, ranges, config.concat_ratio, config.excludes)
        self.blocked: Dict[str, List[str]] = {}    # spread Concat -> the nodes left float because of it

    def block(self, node, tensors: Iterable[str]) -> Optional[HoistBlock]:
        """The policy of trt.analysis.hoist_block: the first of the tensors whose Q TensorRT would hoist onto a spread
        Concat's inputs; the node is recorded as left float because of that Concat."""
        for tensor in tensors:
            found = hoist_block(self.view, tensor, self.spread, self.config.concat_ratio)
            if found is not None:
                self.blocked.setdefault(found.concat, []).append(node.name)
                return found
        return None

    # --- helpers --------------------------------------------------------------------------------------------
    def quantize(self, tensor: str, node, index: int, rule: EdgeRule) -> None:
        self.inputs.setdefault((node.name, index), QuantizedInput(tensor, node.name, index, rule))

    def decide(self, node, rule: Rule, outcome: Outcome, reason: str, tensors: Iterable[str] = (),
               cause: Cause = Cause.NONE, **structured) -> None:
        self.decisions.append(Decision(node.name, node.op_type, rule, outcome, reason, tuple(tensors), cause,
                                       **structured))

    def fed_by_decode(self, tensor: str) -> Optional[str]:
        """Name of a decode op (Softmax) reaching this tensor through commuting ops, if any."""
        for node in self.view.upstream_nodes(tensor, limit=8):
            if node.op_type in DECODE_OPS:
                return node.name
            if not is_commuting(node):
                return None
        return None

    # --- rule 1: weighted ops -------------------------------------------------------------------------------
    def plan_weighted(self) -> None:
        allowed = self.config.op_types
        for node in self.view.nodes:
            spec = WEIGHTED_OPS.get(node.op_type)
            if spec is None:
                continue
            if allowed is not None and node.op_type not in allowed:
                self.decide(node, Rule.WEIGHTED, Outcome.FLOAT, f"{node.op_type} not among the op types to quantize",
                            cause=Cause.OP_TYPE_NOT_SELECTED)
                continue
            if self.config.excludes(node.name):
                kept = node.name in self.kept_float
                reason = self.kept_float.get(node.name, "excluded by an exclude pattern")
                self.decide(node, Rule.WEIGHTED, Outcome.FLOAT, reason,
                            cause=Cause.KEPT_FLOAT if kept else Cause.EXCLUDED)
                continue
            if len(node.input) <= spec.weight_input:
                continue
            act, weight = node.input[spec.activation_input], node.input[spec.weight_input]
            if not self.view.is_float(act) or self.view.is_constant(act):
                self.decide(node, Rule.WEIGHTED, Outcome.FLOAT, "activation input is not a float tensor",
                            cause=Cause.ACTIVATION_NOT_FLOAT)
                continue
            decode = self.fed_by_decode(act)
            if decode is not None:
                self.decide(node, Rule.WEIGHTED, Outcome.FLOAT,
                            f"fed by {decode}: detection-head decode stays float (rule 6)", cause=Cause.DECODE)
                continue
            dims = self.view.constant_dims(weight)   # the shape only: a weight's bytes are never read here
            blocked = self.block(node, [act] if dims is not None else [act, weight])
            if blocked is not None:
                self.decide(node, Rule.WEIGHTED, Outcome.FLOAT, f"{blocked.reason}: the activation stays float, so "
                            f"{node.op_type} runs in float", [blocked.tensor], Cause.HOISTED_ONTO_FLOAT_CONCAT)
                continue
            if dims is None:
                if node.op_type != "MatMul" or not self.view.is_float(weight):
                    self.decide(node, Rule.WEIGHTED, Outcome.FLOAT, "weight is not constant",
                                cause=Cause.WEIGHT_NOT_CONSTANT)
                    continue
                self.quantize(weight, node, spec.weight_input, EdgeRule.WEIGHTED_INPUT)
            else:
                axis = weight_channel_axis(node, len(dims))
                self.weights.append(QuantizedWeight(weight, node.name, spec.weight_input, axis))
            self.quantize(act, node, spec.activation_input, EdgeRule.WEIGHTED_INPUT)
            self.int8_convs.add(node.name)
            self.decide(node, Rule.WEIGHTED, Outcome.INT8, "activation per tensor, weight per output channel (rule 1)",
                        [act], Cause.QUANTIZED)

    # --- rules 2 and 3: Adds --------------------------------------------------------------------------------
    def plan_adds(self) -> None:
        for node in self.view.nodes:
            if not is_two_input_add(self.view, node) or self.config.excludes(node.name):
                continue
            sides = add_sides(self.view, node)
            residual = residual_add(self.view, node, self.int8_convs.__contains__, sides)
            if residual is None:
                self.plan_standalone_add(node, sides)
                continue
            fused, skip, conv_name = residual.fused_index, residual.skip_index, residual.conv
            skip_tensor = node.input[skip]
            blocked = self.block(node, [skip_tensor])
            if blocked is not None:
                self.decide(node, Rule.RESIDUAL_ADD, Outcome.FLOAT,
                            f"skip input left float: {blocked.reason}; {conv_name} still fuses the Add, with a float "
                            "output (rule 2)", [skip_tensor], Cause.HOISTED_ONTO_FLOAT_CONCAT, conv=conv_name)
                continue
            if self.config.residual_mode == "both":
                self.quantize(node.input[fused], node, fused, EdgeRule.RESIDUAL_BOTH)
                self.quantize(skip_tensor, node, skip, EdgeRule.RESIDUAL_SKIP)
                self.groups.union(node.input)
                cause = Cause.BOTH_ONE_SCALE
                reason = (f"both inputs quantized with one scale (residual mode both); "
                          f"{conv_name} fuses the Add")
            else:
                self.quantize(skip_tensor, node, skip, EdgeRule.RESIDUAL_SKIP)
                shared = [c.name for c, i in self.view.consumers(skip_tensor)
                          if c.name != node.name and (c.name, i) in self.inputs]
                cause = Cause.SKIP_SHARES_QUANTIZER if shared else Cause.SKIP_QUANTIZED
                reuse = f", sharing the quantizer {skip_tensor} has for {shared[0]}" if shared else ""
                reason = (f"skip input {skip_tensor} quantized{reuse}; nothing on the side of {conv_name}, "
                          f"which fuses the Add (rule 2)")
            self.decide(node, Rule.RESIDUAL_ADD, Outcome.FUSED_INT8, reason, [skip_tensor], cause, conv=conv_name)

    def plan_standalone_add(self, node, sides) -> None:
        why = "; ".join(f"input {i}: {chain.reason}" for i, chain in enumerate(sides))
        if self.config.standalone_add != "int8":
            self.decide(node, Rule.STANDALONE_ADD, Outcome.FLOAT,
                        f"no fusible INT8 convolution on either side ({why}); an isolated INT8 Add costs "
                        "reformats (rule 3)", cause=Cause.NO_FUSIBLE_CONV)
            return
        consumers = self.view.consumers(node.output[0])
        if self.view.is_graph_output(node.output[0]) or not consumers:
            self.decide(node, Rule.STANDALONE_ADD, Outcome.FLOAT,
                        "output is a graph output, which stays float (rule 6)", cause=Cause.GRAPH_OUTPUT)
            return
        blocked = self.block(node, node.input)
        if blocked is not None:
            self.decide(node, Rule.STANDALONE_ADD, Outcome.FLOAT, f"{blocked.reason}: the Add runs in float (rule 3)",
                        [blocked.tensor], Cause.HOISTED_ONTO_FLOAT_CONCAT)
            return
        for index, tensor in enumerate(node.input):
            self.quantize(tensor, node, index, EdgeRule.STANDALONE_ADD)
        for consumer, index in consumers:
            self.quantize(node.output[0], consumer, index, EdgeRule.STANDALONE_ADD)
        self.decide(node, Rule.STANDALONE_ADD, Outcome.INT8,
                    "both inputs and the output quantized (standalone Add mode int8)", [*node.input, node.output[0]],
                    Cause.MODE)

    # --- rule 4: Concat -------------------------------------------------------------------------------------
    def reaches_int8(self, tensor: str, depth: int = 0) -> bool:
        """True if the tensor feeds a quantized edge directly or through commuting ops / accepted concats."""
        if depth > 16:
            return False
        for consumer, index in self.view.consumers(tensor):
            if (consumer.name, index) in self.inputs:
                return True
            commutes = is_commuting(consumer) and index == 0
            if commutes and any(self.reaches_int8(out, depth + 1) for out in consumer.output if out):
                return True
        return False

    def plan_concats(self) -> None:
        for node in self.view.nodes:
            if node.op_type != "Concat" or not self.view.is_float(node.output[0]) or self.config.excludes(node.name):
                continue
            inputs = [t for _, t in activation_inputs(self.view, node)]
            if not inputs:
                continue
            self.observe.update(inputs)
            ratio = range_spread(self.ranges, inputs)
            ratio_text = f"input ranges differ {ratio:.1f}x" if ratio is not None else "input ranges not measured"
            if not self.reaches_int8(node.output[0]):
                mixed = ratio is not None and ratio > self.config.concat_ratio
                left = self.blocked.get(node.name, [])
                if mixed and left:
                    why = (f"{ratio_text} (> {self.config.concat_ratio:g}x): one int8 scale would crush the "
                           "small-range inputs, so the Concat stays float, and so do the ops reading it, whose Q "
                           f"TensorRT would hoist onto its inputs ({', '.join(left)}; rules 4, 5)")
                elif mixed:
                    why = (f"output feeds no INT8 op; {ratio_text} (> {self.config.concat_ratio:g}x), so one int8 "
                           "scale would also crush the small-range inputs")
                else:
                    why = f"output feeds no INT8 op ({ratio_text})"
                self.decide(node, Rule.CONCAT, Outcome.FLOAT, why, inputs,
                            Cause.RANGE_SPREAD if mixed else Cause.NO_INT8_CONSUMER, spread=ratio)
                continue
            members = self.groups.members(node.output[0]) | set().union(*(self.groups.members(t) for t in inputs))
            self.observe.update(members)
            group_ratio = range_spread(self.ranges, members)
            if ratio is not None and ratio > self.config.concat_ratio:
                self.decide(node, Rule.CONCAT, Outcome.FLOAT,
                            f"{ratio_text} (> {self.config.concat_ratio:g}x): one int8 scale would crush the "
                            "small-range inputs, so the Concat stays float (rule 4)", inputs, Cause.RANGE_SPREAD,
                            spread=ratio)
                continue
            if group_ratio is not None and group_ratio > self.config.concat_ratio:
                self.decide(node, Rule.CONCAT, Outcome.FLOAT,
                            f"sharing one scale with the tensors already tied to it would span {group_ratio:.1f}x "
                            f"(> {self.config.concat_ratio:g}x), so the Concat stays float (rule 4)", inputs,
                            Cause.RANGE_SPREAD, spread=group_ratio)
                continue
            self.groups.union([node.output[0], *inputs])
            self.decide(node, Rule.CONCAT, Outcome.INT8,
                        f"one scale for its {len(inputs)} inputs and its output ({ratio_text}); TensorRT "
                        "removes the Concat (rule 4)", [node.output[0], *inputs], Cause.ONE_SCALE, spread=ratio)

    # --- pooling between INT8 layers ------------------------------------------------------------------------
    def int8_writer(self, tensor: str) -> bool:
        """The tensor is written by an INT8 conv group (through its fusible epilogues) or by a residual Add fused
        into one: a layer that writes INT8 when every reader is a quantizer."""
        fused_adds = {d.node for d in self.decisions if d.rule == Rule.RESIDUAL_ADD and d.outcome == Outcome.FUSED_INT8}
        for node in self.view.upstream_nodes(tensor, limit=8):
            if node.name in self.int8_convs or node.name in fused_adds:
                return True
            if node.op_type not in FUSIBLE_EPILOGUES or self.view.fan_out(node.output[0]) != 1:
                return False
        return False

    def plan_pools(self) -> None:
        """A pooling layer whose output is quantized runs INT8 when its input is quantized too (DQ -> pool -> Q:
        `GlobalAveragePool_300`, int8 -> int8, in the resnet18-qat-residual-qgap engine). Its input is quantized when
        that lets the writer write INT8: the writer is an INT8 conv group and every other reader of the tensor is
        quantized already. Otherwise the pool stays float and the Q after it is the cheaper one (its tensor is the
        smaller)."""
        for node in self.view.nodes:
            if node.op_type not in INT8_POOLS or is_commuting(node) or self.config.excludes(node.name):
                continue
            tensor = node.input[0]
            if not self.view.is_float(tensor) or not any(self.reaches_int8(t) for t in node.output if t):
                continue
            others = [(c.name, i) for c, i in self.view.consumers(tensor) if c.name != node.name]
            if self.view.is_graph_output(tensor) or any(edge not in self.inputs for edge in others):
                continue
            if self.int8_writer(tensor) and self.block(node, [tensor]) is None:
                self.quantize(tensor, node, 0, EdgeRule.POOL_INPUT)

    # --- rule 5: ops that commute with Q/DQ -----------------------------------------------------------------
    def plan_commuting(self) -> None:
        int8 = {q.tensor for q in self.inputs.values()} | set(self.groups.parent)
        for node in reversed(self.view.nodes):
            if not is_commuting(node) or not node.input or self.view.is_constant(node.input[0]):
                continue
            outputs = [o for o in node.output if o in int8]
            if not outputs or not self.view.is_float(node.input[0]):
                continue
            self.groups.union([node.input[0], *outputs])
            int8.add(node.input[0])
            self.observe.add(node.input[0])

    def plan(self) -> PlacementPlan:
        self.plan_weighted()
        self.plan_adds()
        self.plan_concats()
        self.plan_pools()
        self.plan_commuting()
        quantized = {q.tensor for q in self.inputs.values()}
        self.observe.update(quantized)
        for group in self.groups.all_groups():
            self.observe.update(group)
        return PlacementPlan(
            inputs=tuple(sorted(self.inputs.values(), key=lambda q: (q.node, q.input_index))),
            weights=tuple(self.weights),
            groups=tuple(self.groups.all_groups()),
            decisions=tuple(self.decisions),
            observe=tuple(sorted(self.observe)),
            config=self.config,
            spread=tuple(sorted(self.spread.items())),
        )


def plan_placement(view: GraphView, config: PlacementConfig = PlacementConfig(),
                   ranges: Optional[Mapping[str, float]] = None) -> PlacementPlan:
    """Plan Q/DQ placement for a float graph. `ranges` (tensor -> amax) lets Concat decisions see range spreads."""
    if config.residual_mode not in RESIDUAL_MODES:
        raise ValueError(f"residual_mode must be one of {RESIDUAL_MODES}")
    if config.standalone_add not in STANDALONE_ADD_MODES:
        raise ValueError(f"standalone_add must be one of {STANDALONE_ADD_MODES}")
    return _Planner(view, config, ranges).plan()


def group_amax(plan: PlacementPlan, ranges: Mapping[str, float]) -> Dict[str, float]:
    """The amax each quantized tensor gets: its own, or the max over its scale group."""
    of_group: Dict[str, float] = {}
    for group in plan.groups:
        known = [ranges[t] for t in group if t in ranges]
        if known:
            for tensor in group:
                of_group[tensor] = max(known)
    return {t: of_group[t] if t in of_group else ranges[t] for t in plan.quantized_tensors()
            if t in of_group or t in ranges}
