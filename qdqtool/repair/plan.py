"""`qdqtool fix-residuals`: repair a Q/DQ placement someone else made, by the same rules `calibrate` places with.

Decide, then apply: `plan_repairs` compares the model's quantized edges with what TensorRT needs (residual Adds,
Concat groups, commuting-op scale groups, standalone Adds) and returns RepairEdits with reasons; `apply_repairs`
(repair_edits.py) applies them to a copy. Scales for new quantizers come, in order, from a quantizer that already
quantizes the same tensor, a ranges file, or a quick calibration on data, then (for a residual skip input, unless
strict_scales) a scale inferred from the quantizers around the Add (repair/infer.py); otherwise nothing is written.
A tensor read by quantizers of different scales gets one scale, the largest (one tensor, one scale).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from qdqtool.check.predict import Analysis, CheckReport, refuse_untakeable, report_of
from qdqtool.errors import RangeError
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.qdqview import GRAPH_OUTPUT, Edge, QdqView
from qdqtool.placement.plan import PlacementConfig, PlacementPlan, plan_placement
from qdqtool.repair.apply import RepairEdit
from qdqtool.repair.infer import infer_skip_scale
from qdqtool.trt.analysis import ResidualAdd, activation_inputs, is_two_input_add, range_spread
from qdqtool.trt.kinds import Cause, EditKind, Outcome, Rule, ScaleSource
from qdqtool.trt.rules import WEIGHTED_OPS, is_commuting
from qdqtool.trt.scales import amax_from_scale, same_scale, scale_from_amax

log = logging.getLogger("qdqtool")

STANDALONE_ADD_CHOICES = ("int8", "float", "keep")
SCOPES = ("residuals", "all")
KIND_ORDER = {kind: order for order, kind in enumerate(EditKind)}   # convert-opset, remove, set-scale, insert


@dataclass(frozen=True)
class FixConfig:
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    standalone_add: str = "keep"        # int8: both inputs and output quantized; float: none; keep: as they are
    strict_scales: bool = False         # True: never infer a skip scale; a missing range stops the repair
    scope: str = "residuals"            # residuals: repair Adds/Concats; all: re-place every Q/DQ (replace_all.py)


@dataclass(frozen=True)
class FixPlan:
    edits: tuple[RepairEdit, ...]
    kept: tuple[str, ...]               # "leave it" decisions, each with its reason
    missing: tuple[str, ...]            # tensors that need a range no source gave
    observe: tuple[str, ...]            # tensors a quick calibration measures (missing ranges, Concat inputs)
    before: CheckReport
    see_through: tuple[str, ...] = ()   # no-op Cast/Identity nodes read as the tensor behind them (kept)

    def to_json(self) -> dict[str, object]:
        return {"edits": [e.to_json() for e in self.edits], "kept": list(self.kept), "missing": list(self.missing),
                "see_through": list(self.see_through), "before": self.before.to_json()}


def refuse_unfixable(qdq: QdqView) -> None:
    """Quantizers TensorRT cannot take are refused, as `check` refuses them (check.predict.refuse_untakeable)."""
    refuse_untakeable(qdq)


class _Repairs:
    def __init__(self, qdq: QdqView, config: FixConfig, measured: Mapping[str, float]):
        self.qdq, self.config, self.measured = qdq, config, measured
        self.analysis = Analysis(qdq, config.placement)
        self.view: GraphView = self.analysis.view
        self.existing: dict[str, tuple[float, str]] = {}       # tensor -> (largest amax, its Q node)
        for quantizer in qdq.edges.values():
            amax = amax_from_scale(quantizer.scale)
            if amax > self.existing.get(quantizer.tensor, (-1.0, ""))[0]:
                self.existing[quantizer.tensor] = (amax, quantizer.q_node)
        self.removes: dict[Edge, tuple[str, Cause]] = {}
        self.inserts: dict[Edge, tuple[str, str, Cause]] = {}   # edge -> (tensor, reason, cause)
        self.scales: dict[str, tuple[float, str, str]] = {}     # Q node -> (scale, tensor, reason)
        self.group_amax: dict[str, float] = {}
        self.kept: list[str] = []
        self.missing: set[str] = set()
        self.extra_groups: list[tuple[str, ...]] = []
        self.ranges: dict[str, float] = {}
        self.skips: dict[Edge, ResidualAdd] = {}               # skip edges to insert -> their residual Add
        self.inferred: set[str] = set()                          # tensors whose scale was inferred
        self.placement: PlacementPlan | None = None

    def hoist_block(self, tensor: str):
        """The placement policy (trt.analysis.hoist_block): a Q TensorRT would hoist onto a spread Concat's inputs."""
        return self.placement.hoist_block(self.view, tensor) if self.placement is not None else None

    def plan(self) -> PlacementPlan:
        ranges = {t: amax for t, (amax, _) in self.existing.items()}
        ranges.update(self.measured)
        self.ranges = ranges
        standalone = "int8" if self.config.standalone_add == "int8" else "float"
        self.placement = plan_placement(self.view, replace(self.config.placement, standalone_add=standalone), ranges)
        return self.placement

    def remove(self, edge: Edge, reason: str, cause: Cause) -> None:
        if edge in self.qdq.edges:
            self.removes.setdefault(edge, (reason, cause))

    def insert(self, edge: Edge, tensor: str, reason: str, cause: Cause) -> None:
        if self.analysis.in_scale(*edge) is None and self.hoist_block(tensor) is None:
            self.inserts.setdefault(edge, (tensor, reason, cause))

    # --- rules ------------------------------------------------------------------------------------------------
    def residuals(self) -> None:
        for node in self.view.nodes:
            if not is_two_input_add(self.view, node) or self.config.placement.excludes(node.name):
                continue
            res = self.analysis.residual(node)
            if res is None:
                self.standalone_add(node)
                continue
            skip = node.input[res.skip_index]
            if self.hoist_block(skip) is not None:   # the skip stays float (removed by hoisted()), the conv side too
                for edge in res.conv_side_edges:
                    self.remove(edge, f"Q/DQ on the conv side of {node.name} splits the fusion of {res.conv} into it",
                                Cause.CONV_SIDE_QDQ)
                continue
            self.skips[(node.name, res.skip_index)] = res
            self.insert((node.name, res.skip_index), skip,
                        f"skip input of {node.name}: {res.conv} fuses the Add only when the skip arrives in INT8",
                        Cause.FLOAT_SKIP)
            keep = {(node.name, res.fused_index)} if self.config.placement.residual_mode == "both" else set()
            for edge in res.conv_side_edges:
                if edge not in keep:
                    self.remove(edge, f"Q/DQ on the conv side of {node.name} splits the fusion of {res.conv} into it",
                                Cause.CONV_SIDE_QDQ)
            if keep:
                self.insert((node.name, res.fused_index), node.input[res.fused_index],
                            "residual mode both: the conv side shares the skip input's scale", Cause.BOTH_ONE_SCALE)

    def standalone_add(self, node) -> None:
        mode = self.config.standalone_add
        out = node.output[0]
        block = next((b for b in map(self.hoist_block, node.input) if b is not None), None)
        if block is not None:   # its input Qs go (hoisted()): it runs float, so its output Q goes too
            self.float_add(node, f"standalone Add {node.name} runs in float: {block.reason}",
                           Cause.HOISTED_ONTO_FLOAT_CONCAT)
        elif mode == "keep":
            self.kept.append(f"{node.name}: standalone Add left as it is (standalone Add mode keep)")
        elif mode == "float":
            self.float_add(node, f"standalone Add {node.name} runs in float (standalone Add mode float)", Cause.MODE)
        elif self.view.is_graph_output(out) or not self.view.consumers(out):
            self.kept.append(f"{node.name}: standalone Add output is a graph output, which stays float (rule 6)")
        else:
            reason = f"standalone Add {node.name} in INT8 (standalone Add mode int8): both inputs and the output"
            for index, tensor in enumerate(node.input):
                self.insert((node.name, index), tensor, reason, Cause.MODE)
            for consumer, index in self.view.consumers(out):
                self.insert((consumer.name, index), out, reason, Cause.MODE)

    def float_add(self, node, reason: str, cause: Cause) -> None:
        """A standalone Add that runs in float: no Q/DQ on its inputs, nor on what reads its output in float (directly
        or behind commuting ops, rule 5). A residual Add's skip input keeps its Q, as a weighted op's input does: the
        residual rule wants it INT8 (rule 2) whatever runs in float before it."""
        for index in range(2):
            self.remove((node.name, index), reason, cause)
        todo, seen = [node.output[0]], set()
        while todo and len(seen) < 256:
            tensor = todo.pop()
            seen.add(tensor)
            for consumer, index in self.view.consumers(tensor):
                if consumer.op_type not in WEIGHTED_OPS and consumer.op_type != "Concat" and not self.is_skip(
                        consumer, index):
                    self.remove((consumer.name, index), reason, cause)
                if index == 0 and is_commuting(consumer):
                    todo += [o for o in consumer.output if o and o not in seen]
            for position, name in enumerate(self.view.output_names):
                if name == tensor:
                    self.remove((GRAPH_OUTPUT, position), reason, cause)

    def is_skip(self, node, index: int) -> bool:
        """Whether input `index` of node is the skip input of a residual Add (rule 2)."""
        if not is_two_input_add(self.view, node) or self.config.placement.excludes(node.name):
            return False
        res = self.analysis.residual(node)
        return res is not None and res.skip_index == index

    def concats(self, plan: PlacementPlan) -> None:
        for decision in plan.decisions_for(Rule.CONCAT):
            if decision.outcome != Outcome.FLOAT:
                continue
            node = self.view.by_name[decision.node]
            inputs = [t for _, t in activation_inputs(self.view, node)]
            # only a Q after the Concat ties its inputs to one scale (TensorRT hoists it onto them, rule 4); DQ inputs
            # alone are dequantized first and the Concat runs float, so their scales need not change
            around = bool(self.analysis.out_scales(node.output[0]))
            spread = range_spread(self.ranges, inputs)
            spread_too_wide = spread is not None and spread > self.config.placement.concat_ratio
            too_wide = decision.cause == Cause.RANGE_SPREAD or spread_too_wide
            if not too_wide:
                if around:  # the model quantizes it anyway: TensorRT then needs one scale around it
                    self.extra_groups.append(self.commuting_closure([node.output[0], *inputs]))
                else:
                    self.kept.append(f"{decision.node}: Concat left as it is ({decision.reason})")
                continue
            why = decision.reason if decision.cause == Cause.RANGE_SPREAD else (
                f"input ranges differ {spread:.1f}x (> {self.config.placement.concat_ratio:g}x): one int8 scale "
                "would crush the small-range inputs (rule 4)")
            reason = f"Concat {node.name} stays float: {why}"
            for index, _ in activation_inputs(self.view, node):
                self.remove((node.name, index), reason, Cause.RANGE_SPREAD)
            for consumer, index in self.view.consumers(node.output[0]):
                if consumer.op_type not in WEIGHTED_OPS:
                    self.remove((consumer.name, index), reason, Cause.RANGE_SPREAD)
            for position, name in enumerate(self.view.output_names):
                if name == node.output[0]:
                    self.remove((GRAPH_OUTPUT, position), reason, Cause.RANGE_SPREAD)

    def hoisted(self) -> None:
        """Every Q TensorRT would hoist onto the inputs of a Concat kept float for range spread goes (its reader runs
        in float): the same policy placement follows, so calibrate's output is a fixed point."""
        for edge, quantizer in self.qdq.edges.items():
            block = self.hoist_block(quantizer.tensor)
            if block is not None:
                reader = "the graph output" if edge[0] == GRAPH_OUTPUT else edge[0]
                self.remove(edge, f"{block.reason}; {reader} reads it in float",
                            Cause.HOISTED_ONTO_FLOAT_CONCAT)

    def commuting_closure(self, tensors: list[str]) -> tuple[str, ...]:
        """The tensors plus those TensorRT ties to them by moving Q/DQ through commuting ops (both directions)."""
        found, todo = set(tensors), list(tensors)
        while todo and len(found) < 256:
            tensor = todo.pop()
            near = []
            producer = self.view.producer(tensor)
            if producer is not None and is_commuting(producer) and producer.input:
                near.append(producer.input[0])
            for consumer, index in self.view.consumers(tensor):
                if index == 0 and is_commuting(consumer):
                    near += [o for o in consumer.output if o]
            for name in near:
                if name not in found and (name in self.analysis.by_tensor or name in self.existing):
                    found.add(name)
                    todo.append(name)
        return tuple(sorted(found))

    def two_scales(self) -> None:
        """Tensors read at several scales (directly, through no-op Casts, commuting ops or Concat hoisting)."""
        for finding in self.analysis.two_scale_findings():
            self.extra_groups.append(self.commuting_closure(list(finding.tensors)))

    def groups(self, plan: PlacementPlan) -> None:
        inserted = {tensor for tensor, _, _ in self.inserts.values()}
        for group in _merge_overlapping(list(plan.groups) + self.extra_groups):
            members = set(group)
            quantizers = {q.q_node: q for t in members for _, q in self.analysis.by_tensor.get(t, [])}
            if not quantizers and not members & inserted:
                continue
            known = [amax_from_scale(q.scale) for q in quantizers.values()] or [self.measured[t] for t in members
                                                                     if t in self.measured]
            if not known:
                continue   # nothing measured: insert_scale infers or reports the inserted members missing
            amax = max(known)
            for tensor in members:
                self.group_amax[tensor] = amax
            scale = scale_from_amax(amax)
            shown = ", ".join(sorted(members)[:4]) + (" ..." if len(members) > 4 else "")
            for q_node, quantizer in sorted(quantizers.items()):
                if not same_scale(quantizer.scale, scale):
                    reason = (f"{quantizer.tensor} shares one scale with {len(members) - 1} tensors TensorRT ties "
                              f"to it through Concat/commuting ops ({shown}): max of the group's ranges"
                              if len(members) > 1 else f"{quantizer.tensor} is read at several scales: one tensor, "
                              "one scale, the largest (nothing new clips)")
                    self.scales[q_node] = (scale, quantizer.tensor, reason)

    def insert_scale(self, edge: Edge, tensor: str) -> tuple[float | None, ScaleSource | None, str]:
        existing = self.existing.get(tensor)
        if tensor in self.group_amax and (existing is None or existing[0] != self.group_amax[tensor]):
            return (scale_from_amax(self.group_amax[tensor]), ScaleSource.GROUP,
                    "the shared scale of its Concat/commuting group")
        if existing is not None:
            amax, q_node = self.existing[tensor]
            return (scale_from_amax(amax), ScaleSource.REUSED,
                    f"reusing the scale of {q_node}, which already quantizes {tensor}")
        if tensor in self.measured:
            return scale_from_amax(self.measured[tensor]), ScaleSource.MEASURED, "measured range"
        inferred = None if self.config.strict_scales or edge not in self.skips else (
            infer_skip_scale(self.analysis, self.skips[edge]))
        if inferred is not None:
            self.inferred.add(tensor)
            return inferred.scale, inferred.source, inferred.how
        self.missing.add(tensor)
        return None, None, ""

    def edits(self) -> list[RepairEdit]:
        edits = [RepairEdit(EditKind.REMOVE, n, i, self.qdq.edges[(n, i)].tensor, None, reason, cause)
                 for (n, i), (reason, cause) in self.removes.items()]
        edits += [RepairEdit(EditKind.SET_SCALE, q, 0, tensor, scale, reason, Cause.GROUP_SCALE)
                  for q, (scale, tensor, reason) in self.scales.items()]
        for (node, index), (tensor, reason, cause) in self.inserts.items():
            scale, source, how = self.insert_scale((node, index), tensor)
            edits.append(RepairEdit(EditKind.INSERT, node, index, tensor, scale, f"{reason}; scale: {how}", cause,
                                    source))
        return sorted(edits, key=lambda e: (KIND_ORDER[e.kind], e.node, e.input_index))


def _merge_overlapping(groups: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Groups sharing a tensor become one group (a tensor has one scale)."""
    owner: dict[str, int] = {}
    merged: list[set[str] | None] = []
    for group in groups:
        hits = sorted({owner[t] for t in group if t in owner})
        target = set(group)
        for index in hits:
            target |= merged[index]
            merged[index] = None
        merged.append(target)
        for tensor in target:
            owner[tensor] = len(merged) - 1
    return [tuple(sorted(g)) for g in merged if g]


def plan_repairs(qdq: QdqView, config: FixConfig | None = None,
                 measured: Mapping[str, float] | None = None) -> FixPlan:
    """The repairs a Q/DQ model needs (pure: nothing is modified). measured: tensor -> amax from a ranges file/data."""
    config = config or FixConfig()
    if config.standalone_add not in STANDALONE_ADD_CHOICES:
        raise ValueError(f"standalone_add must be one of {STANDALONE_ADD_CHOICES}")
    refuse_unfixable(qdq)
    repairs = _Repairs(qdq, config, dict(measured or {}))
    plan = repairs.plan()
    repairs.residuals()
    repairs.hoisted()
    repairs.concats(plan)
    repairs.two_scales()
    repairs.groups(plan)
    edits = repairs.edits()
    concat_inputs = {t for d in plan.decisions_for(Rule.CONCAT) for t in d.tensors}
    observe = tuple(sorted(repairs.missing | repairs.inferred | concat_inputs))   # data, when given, wins
    for edit in edits:
        log.info("%s %s[%d] %s: %s", edit.kind, edit.node, edit.input_index, edit.tensor, edit.reason)
    return FixPlan(tuple(edits), tuple(repairs.kept), tuple(sorted(repairs.missing)), observe,
                   report_of(repairs.analysis), qdq.see_through)


def require_ranges(plan: FixPlan) -> None:
    if plan.missing:
        shown = ", ".join(plan.missing[:10]) + (" ..." if len(plan.missing) > 10 else "")
        raise RangeError(f"{len(plan.missing)} tensors need a range and no quantizer, ranges file or data gives one "
                         f"({shown}); give a ranges file from `qdqtool calibrate` or calibration data",
                         settings=("ranges", "data"))
