"""`fix-residuals` with scope all: re-place every Q/DQ of a model by calibrate's plan, with the model's own scales.

Pure planning: the Q/DQ are read off (the float view of qdqview), calibrate's placement is planned on the float graph,
and every range comes from the model's own quantizers: a Q/DQ pair on a tensor gives its amax (the largest, when the
model quantizes one tensor at several scales), Concat and commuting-op groups share the largest of theirs. A tensor
the model never quantized takes a ranges file or data when given, else, for a residual skip input, a range inferred
from the quantizers around its Add (repair/infer.py). Weights keep their int8 values and scales
(repair/kept_weights.py). Every Q/DQ of the input and of the result is listed with what happened to it and why.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace

from qdqtool.check.predict import Analysis, CheckReport, report_of
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.qdqview import GRAPH_OUTPUT, Edge, QdqView
from qdqtool.placement.plan import (
    Decision,
    PlacementConfig,
    PlacementPlan,
    QuantizedInput,
    group_amax,
    plan_placement,
)
from qdqtool.repair.infer import infer_skip_scale
from qdqtool.repair.kept_weights import KeptWeight, WeightDecision, keep_weights
from qdqtool.repair.plan import FixConfig, refuse_unfixable
from qdqtool.trt.analysis import residual_add
from qdqtool.trt.fusion import gated_activation_input
from qdqtool.trt.kinds import Cause, EdgeRule, Kind, Outcome, Rule, ScaleSource, StrEnum
from qdqtool.trt.rules import FUSIBLE_EPILOGUES, WEIGHTED_OPS, is_commuting
from qdqtool.trt.scales import amax_from_scale, same_scale, scale_from_amax

log = logging.getLogger("qdqtool")


class ChangeKind(StrEnum):
    """What scope all does with one Q/DQ of the input or of the result, in the order they are listed."""

    REMOVE = "remove"                        # an activation Q/DQ the plan does not place
    REMOVE_WEIGHT = "remove-weight"          # a constant's DQ the plan does not place (biases, float ops' constants)
    RESCALE = "rescale"                      # kept where it is, at its group's (larger) scale
    MOVE = "move"                            # placed where the model had none, with a scale the model has
    INSERT = "insert"                        # placed where the model had none, with a measured or inferred scale
    REQUANTIZE_WEIGHT = "requantize-weight"  # a weight quantized again (wrong axis, or not quantized before)
    KEEP = "keep"
    KEEP_WEIGHT = "keep-weight"


class ChangeCause(StrEnum):
    """Why a Q/DQ goes (kept and placed ones carry the plan's EdgeRule instead)."""

    GRAPH_OUTPUT = "graph-output"            # rule 6
    FLOAT_WEIGHTED_OP = "float-weighted-op"  # a weighted op the plan keeps float (decode, excluded)
    CONV_SIDE = "conv-side"                  # rule 2: the conv side of a residual Add
    STANDALONE_ADD = "standalone-add"        # rule 3: a standalone Add left float
    FLOAT_CONCAT = "float-concat"            # rule 4: a Concat that stays float (range spread)
    HOISTED = "hoisted-onto-float-concat"    # rules 4, 5: TensorRT would hoist the Q onto a spread Concat's inputs
    CONCAT_INPUT = "concat-input"            # rule 4: TensorRT hoists the output's Q onto the inputs
    COMMUTING_OP = "commuting-op"            # rule 5
    ACTIVATION = "activation"                # an epilogue TensorRT fuses into the convolution before it
    FLOAT_OP = "float-op"                    # rule 7: an op that runs in float
    BIAS = "bias"                            # TensorRT quantizes biases itself
    CONSTANT_INPUT = "constant-input"        # a constant of an op that runs in float
    WEIGHT = "weight"                        # a planned weight (keep-weight, requantize-weight)


UNCHANGED = (ChangeKind.KEEP, ChangeKind.KEEP_WEIGHT)


@dataclass(frozen=True)
class QdqChange:
    """What scope all does with one Q/DQ: keep | rescale | remove | move | insert (activation edges),
    keep-weight | requantize-weight | remove-weight (weights). cause: a machine-readable why (the plan's rule
    for a quantized edge, the reason it goes for a removed one)."""

    kind: ChangeKind
    cause: ChangeCause | EdgeRule
    node: str
    input_index: int
    tensor: str
    scale: float | None
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"kind": str(self.kind), "cause": str(self.cause), "node": self.node, "input_index": self.input_index,
                "tensor": self.tensor, "scale": self.scale, "reason": self.reason}


@dataclass(frozen=True)
class ReplacePlan:
    placement: PlacementPlan
    tensor_amax: dict[str, float]
    weights: dict[str, KeptWeight]        # float weight name -> the model's int8 quantization, kept
    changes: tuple[QdqChange, ...]
    range_sources: dict[str, ScaleSource]  # quantized tensor -> where its range came from
    missing: tuple[str, ...]              # quantized tensors no source gives a range
    observe: tuple[str, ...]              # tensors the model gives no range (what data would measure)
    before: CheckReport
    see_through: tuple[str, ...] = ()     # no-op Cast/Identity nodes the float graph drops (so does the result)

    @property
    def changed(self) -> bool:
        return bool(self.see_through) or any(c.kind not in UNCHANGED for c in self.changes)

    def kinds(self) -> dict[str, int]:
        counted = Counter(c.kind for c in self.changes)
        return {str(kind): counted[kind] for kind in ChangeKind if counted[kind]}

    def causes(self, kind: str) -> dict[str, int]:
        return {str(cause): n for cause, n in Counter(c.cause for c in self.changes if c.kind == kind).most_common()}

    def to_json(self) -> dict[str, object]:
        return {"scope": "all", "kinds": self.kinds(),
                "causes": {kind: self.causes(kind) for kind in self.kinds()},
                "changes": [c.to_json() for c in self.changes], "missing": list(self.missing),
                "range_sources": dict(Counter(str(s) for s in self.range_sources.values())),
                "see_through": list(self.see_through),
                "before": self.before.to_json()}


def model_ranges(qdq: QdqView) -> dict[str, tuple[float, str]]:
    """Tensor -> (amax, Q node) from the model's own quantizers; the largest where one tensor has several."""
    found: dict[str, tuple[float, str]] = {}
    for quantizer in qdq.edges.values():
        amax = amax_from_scale(quantizer.scale)
        if amax > found.get(quantizer.tensor, (-1.0, ""))[0]:
            found[quantizer.tensor] = (amax, quantizer.q_node)
    return found


def float_weighted_ops(qdq: QdqView, view: GraphView) -> tuple[tuple[str, str], ...]:
    """Weighted ops the model keeps float (neither input quantized): the re-placed model keeps them float too."""
    kept = []
    for node in view.nodes:
        spec = WEIGHTED_OPS.get(node.op_type)
        if spec is None or len(node.input) <= spec.weight_input:
            continue
        edges = [(node.name, spec.activation_input), (node.name, spec.weight_input)]
        if not any(e in qdq.edges or e in qdq.weights for e in edges):
            kept.append((node.name, "the input model keeps it float"))
    return tuple(kept)


class _Replacement:
    def __init__(self, qdq: QdqView, config: FixConfig, measured: Mapping[str, float]):
        self.qdq, self.config, self.measured = qdq, config, measured
        self.analysis = Analysis(qdq, config.placement)
        self.view = self.analysis.view
        self.own = model_ranges(qdq)
        self.ranges: dict[str, float] = {t: amax for t, (amax, _) in self.own.items()}
        self.sources: dict[str, tuple[ScaleSource, str]] = {
            t: (ScaleSource.REUSED, f"the model's quantizer {q}") for t, (_, q) in self.own.items()}
        for tensor, amax in measured.items():
            if tensor not in self.ranges:
                self.ranges[tensor] = amax
                self.sources[tensor] = (ScaleSource.MEASURED, "a ranges file or data")
        self.before = report_of(self.analysis)
        standalone = "int8" if config.standalone_add == "int8" else "float"
        placement = config.placement
        self.placement = replace(placement, standalone_add=standalone,
                                 keep_float=placement.keep_float + float_weighted_ops(qdq, self.view))
        if config.standalone_add == "keep":
            self.placement = self.keep_standalone_adds()

    def keep_standalone_adds(self) -> PlacementConfig:
        """Standalone Add mode keep: an Add the model runs in INT8 stays INT8 where everything reading its output runs
        INT8 too (else the Q on its output would be a standalone layer); every other one runs in float."""
        plan = plan_placement(self.view, self.placement, self.ranges)
        planned = {(q.node, q.input_index) for q in plan.inputs}
        int8_concats = {d.node for d in plan.decisions_for(Rule.CONCAT) if d.outcome == Outcome.INT8}
        standalone = [d.node for d in plan.decisions_for(Rule.STANDALONE_ADD)]
        model_int8 = {f.node for f in self.before.of_kind(Kind.INT8_ADD)}
        keep = model_int8 & set(standalone)

        def read_in_int8(tensor: str, depth: int = 0) -> bool:
            readers = self.view.consumers(tensor)
            if not readers or self.view.is_graph_output(tensor) or depth > 16:
                return False
            return all((c.name, i) in planned or c.name in keep | int8_concats
                       or (is_commuting(c) and i == 0 and all(read_in_int8(o, depth + 1) for o in c.output if o))
                       for c, i in readers)

        while True:
            dropped = {a for a in keep if not read_in_int8(self.view.by_name[a].output[0])}
            if not dropped:
                break
            keep -= dropped
        why = {False: "the input model runs it in float", True: "the input model runs it in INT8, but its output "
               "feeds float ops"}
        floats = tuple((add, f"standalone Add left float: {why[add in model_int8]} (rule 3)")
                       for add in standalone if add not in keep)
        return replace(self.placement, standalone_add="int8", keep_float=self.placement.keep_float + floats)

    def placed(self) -> PlacementPlan:
        """calibrate's plan, plus the model's own Q/DQ on commuting-op inputs that the plan ties to the op's output
        scale: TensorRT moves them through the op either way (rule 5), so they stay where the model put them."""
        plan = plan_placement(self.view, self.placement, self.ranges)
        unranged = [q for q in plan.inputs if q.rule == EdgeRule.POOL_INPUT and q.tensor not in self.ranges]
        for q in unranged:   # no quantizer in the model and no data: the pool stays float, its output Q standalone
            log.info("pool input %s left float: no range for it (give calibration data or a ranges file)", q.tensor)
        if unranged:
            plan = replace(plan, inputs=tuple(q for q in plan.inputs if q not in unranged))
        grouped = {t for group in plan.groups for t in group}
        planned = {(q.node, q.input_index) for q in plan.inputs}
        kept = [QuantizedInput(q.tensor, node, index, EdgeRule.COMMUTING_INPUT)
                for (node, index), q in self.qdq.edges.items()
                if node != GRAPH_OUTPUT and index == 0 and (node, index) not in planned and q.tensor in grouped
                and is_commuting(self.view.by_name[node])]
        if not kept:
            return plan
        return replace(plan, inputs=tuple(sorted((*plan.inputs, *kept), key=lambda q: (q.node, q.input_index))))

    def plan(self) -> tuple[PlacementPlan, dict[str, float], tuple[str, ...], tuple[str, ...]]:
        plan = self.placed()
        amax = group_amax(plan, self.ranges)
        unmeasured_concats = set()     # Concats the model quantizes nowhere around: data decides their spread
        for decision in plan.decisions_for(Rule.CONCAT):
            around = {*decision.tensors, self.view.by_name[decision.node].output[0]}
            if not around & set(self.ranges):
                unmeasured_concats |= around
        observe = tuple(sorted(t for t in set(plan.quantized_tensors()) | unmeasured_concats if t not in amax))
        inferred = False
        int8 = {d.node for d in plan.decisions_for(Rule.WEIGHTED) if d.outcome == Outcome.INT8}
        for decision in plan.decisions_for(Rule.RESIDUAL_ADD):
            skip = decision.tensors[0]
            if skip in amax or decision.outcome == Outcome.FLOAT:
                continue
            res = residual_add(self.view, self.view.by_name[decision.node], int8.__contains__)
            found = None if res is None or self.config.strict_scales else infer_skip_scale(self.analysis, res)
            if found is not None:
                self.ranges[skip], self.sources[skip] = amax_from_scale(found.scale), (found.source, found.how)
                inferred = True
        if inferred:
            plan = self.placed()
            amax = group_amax(plan, self.ranges)
        for group in plan.groups:
            known = [t for t in group if t in self.ranges]
            for tensor in group:
                regrouped = tensor not in self.ranges or amax.get(tensor) != self.ranges[tensor]
                if tensor in amax and regrouped and known:
                    largest = max(known, key=lambda t: self.ranges[t])
                    self.sources[tensor] = (ScaleSource.GROUP, f"the shared scale of its group (from {largest})")
        missing = tuple(t for t in plan.quantized_tensors() if t not in amax)
        return plan, amax, missing, observe

    # --- explaining every Q/DQ ---------------------------------------------------------------------------------
    def removal(self, edge: Edge, decisions: Mapping[str, Decision]) -> tuple[ChangeCause, str]:
        """Why the plan places no Q/DQ on an edge the model quantized: (cause, reason)."""
        node_name, index = edge
        if node_name == GRAPH_OUTPUT:
            return ChangeCause.GRAPH_OUTPUT, "graph outputs stay float (rule 6)"
        node, decision = self.view.by_name[node_name], decisions.get(node_name)
        op = node.op_type
        kept_float = dict(self.placement.keep_float)
        if node_name in kept_float and op == "Add":
            return ChangeCause.STANDALONE_ADD, kept_float[node_name]
        if op in WEIGHTED_OPS:
            why = decision.reason if decision else "not an input TensorRT quantizes"
            return ChangeCause.FLOAT_WEIGHTED_OP, f"{op} {node_name} stays float: {why}"
        if decision is not None and decision.cause == Cause.HOISTED_ONTO_FLOAT_CONCAT and (
                node.input[index] in decision.tensors):
            return ChangeCause.HOISTED, decision.reason
        if op == "Add" and decision is not None and decision.rule == Rule.RESIDUAL_ADD:
            return ChangeCause.CONV_SIDE, (f"conv side of residual Add {node_name}: a Q/DQ there splits the fusion "
                                           "of the convolution into the Add (rule 2)")
        if op == "Add" and decision is not None:
            return ChangeCause.STANDALONE_ADD, decision.reason
        if op == "Concat" and decision is not None and decision.outcome == Outcome.FLOAT:
            return ChangeCause.FLOAT_CONCAT, decision.reason
        if op == "Concat":
            return ChangeCause.CONCAT_INPUT, ("TensorRT moves the Concat output's Q in front of each input (rule 4): "
                                              "the inputs need no Q/DQ of their own")
        if is_commuting(node) and index == 0:
            return ChangeCause.COMMUTING_OP, (f"{op} commutes with Q/DQ: the quantizer of what reads its output "
                                              "serves (rule 5)")
        if op in FUSIBLE_EPILOGUES or gated_activation_input(self.view, node) is not None:
            return ChangeCause.ACTIVATION, (f"{op} {node_name} fuses into the convolution before it: a Q/DQ between "
                                            "them is a standalone layer in TensorRT (rules 1, 7)")
        return ChangeCause.FLOAT_OP, (f"{op} {node_name} runs in float: a Q/DQ on its input is a standalone layer "
                                      "in TensorRT (rule 7)")

    def activation_changes(self, plan: PlacementPlan, amax: Mapping[str, float]) -> list[QdqChange]:
        decisions = {d.node: d for d in plan.decisions}
        planned = {(q.node, q.input_index): q for q in plan.inputs}
        changes = []
        for edge in sorted(set(self.qdq.edges) | set(planned)):
            old, new = self.qdq.edges.get(edge), planned.get(edge)
            node, index = edge
            if new is None:
                cause, reason = self.removal(edge, decisions)
                changes.append(QdqChange(ChangeKind.REMOVE, cause, node, index, old.tensor, None, reason))
                continue
            scale = scale_from_amax(amax[new.tensor]) if new.tensor in amax else None
            source, detail = self.sources.get(new.tensor, (None, "no range"))
            if old is not None:
                kind = ChangeKind.KEEP if scale is not None and same_scale(old.scale, scale) else ChangeKind.RESCALE
                why = (f"scale {old.scale:.6g} -> {scale:.6g} ({detail})" if kind == ChangeKind.RESCALE
                       else "its scale kept")
                changes.append(QdqChange(kind, new.rule, node, index, new.tensor, scale,
                                         f"{_rule_text(new.rule)}; {why}"))
                continue
            kind = ChangeKind.MOVE if source in (ScaleSource.REUSED, ScaleSource.GROUP) else ChangeKind.INSERT
            changes.append(QdqChange(kind, new.rule, node, index, new.tensor, scale,
                                     f"{_rule_text(new.rule)}; scale from {detail}"))
        return changes

    def weight_changes(self, plan: PlacementPlan, decisions: tuple[WeightDecision, ...]) -> list[QdqChange]:
        planned = {(w.node, w.input_index) for w in plan.weights}
        by_node = {(d.node, d.tensor): d for d in decisions}
        changes = []
        for weight in plan.weights:
            decision = by_node[(weight.node, weight.tensor)]
            kind = ChangeKind.KEEP_WEIGHT if decision.kept else ChangeKind.REQUANTIZE_WEIGHT
            changes.append(QdqChange(kind, ChangeCause.WEIGHT, weight.node, weight.input_index, weight.tensor, None,
                                     decision.reason))
        plan_decisions = {d.node: d for d in plan.decisions}
        for (node, index), quantizer in sorted(self.qdq.weights.items()):
            if (node, index) in planned:
                continue
            op = self.view.by_name[node].op_type
            spec = WEIGHTED_OPS.get(op)
            if spec is not None and index not in (spec.activation_input, spec.weight_input):
                cause, reason = ChangeCause.BIAS, f"bias of {node}: TensorRT quantizes biases itself; kept in float"
            elif spec is None:
                cause, reason = ChangeCause.CONSTANT_INPUT, f"constant input of {op} {node}, which runs in float"
            else:
                cause, reason = self.removal((node, index), plan_decisions)
            changes.append(QdqChange(ChangeKind.REMOVE_WEIGHT, cause, node, index, quantizer.tensor, None, reason))
        return changes


RULE_TEXT = {
    EdgeRule.WEIGHTED_INPUT: "input of an INT8 weighted op (rule 1)",
    EdgeRule.RESIDUAL_SKIP: "skip input of a residual Add the convolution fuses (rule 2)",
    EdgeRule.RESIDUAL_BOTH: "conv-side input of a residual Add, one scale with the skip (rule 2)",
    EdgeRule.STANDALONE_ADD: "standalone INT8 Add (rule 3)",
    EdgeRule.COMMUTING_INPUT: "input of an op TensorRT moves Q/DQ through, at its output's scale (rule 5)",
    EdgeRule.POOL_INPUT: "input of a pooling layer between INT8 layers, which then runs INT8",
}


def _rule_text(rule: str) -> str:
    return RULE_TEXT.get(rule, str(rule))


def plan_replacement(qdq: QdqView, config: FixConfig | None = None,
                     measured: Mapping[str, float] | None = None) -> ReplacePlan:
    """The whole re-placement, explained (pure). measured: tensor -> amax from a ranges file or data."""
    config = config or FixConfig()
    refuse_unfixable(qdq)
    replacement = _Replacement(qdq, config, dict(measured or {}))
    plan, amax, missing, observe = replacement.plan()
    kept, weight_decisions = keep_weights(qdq, plan.weights)
    changes = replacement.activation_changes(plan, amax) + replacement.weight_changes(plan, weight_decisions)
    order = list(ChangeKind)
    changes.sort(key=lambda c: (order.index(c.kind), str(c.cause), c.node, c.input_index))
    sources = {t: replacement.sources[t][0] for t in plan.quantized_tensors() if t in replacement.sources}
    return ReplacePlan(plan, amax, kept, tuple(changes), sources, missing, observe, replacement.before,
                       qdq.see_through)
