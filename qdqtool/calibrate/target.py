"""Mixed precision to a target: keep the consumers of the most harmful quantizers float, fewest first, until the
output error measure on held-out calibration samples is at most the target (the max_error setting of calibrate).

Quantizers are ranked once by sensitivity (each alone quantized), then by what keeping their consumers float costs
in TensorRT terms (fusion_cost: INT8 convolutions, Conv+Add fusions and INT8 Concats lost, read off the two plans):
the ranking is by output error removed per INT8 layer lost, so a quantizer whose float consumer would also break a
residual block's fusion comes after one that costs a lone convolution for a similar gain. The number kept float is
searched by doubling then bisection (log2 of the quantizer count model builds), so the result is the smallest count
of that ranking that meets the target, not a hand-picked set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import onnx

from qdqtool.accuracy.measure import MeasureConfig, headline_error
from qdqtool.calibrate.sensitivity import Sensitivity, keep_float_nodes, model_outputs
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.placement.apply import apply_plan
from qdqtool.placement.plan import PlacementConfig, PlacementPlan, group_amax, plan_placement
from qdqtool.trt.kinds import Outcome, Rule

log = logging.getLogger("qdqtool")

Feed = Dict[str, np.ndarray]
DEFAULT_MEASURE = MeasureConfig()


@dataclass(frozen=True)
class TargetResult:
    target: float
    error_before: float
    error_after: float
    convs_before: Tuple[int, int]     # (int8 weighted ops, all weighted ops)
    convs_after: Tuple[int, int]
    kept: Tuple[str, ...]             # quantized tensors whose consumers were kept float
    met: bool
    costs: Tuple["FusionCost", ...] = ()   # what keeping each of `kept` float costs alone, in TensorRT terms

    def as_dict(self) -> Dict[str, object]:
        return {"target": self.target, "error_before": round(self.error_before, 6),
                "error_after": round(self.error_after, 6), "int8_convs_before": list(self.convs_before),
                "int8_convs_after": list(self.convs_after), "kept_float_quantizers": list(self.kept),
                "kept_float_costs": {t: c.as_dict() for t, c in zip(self.kept, self.costs)}, "met": self.met}


@dataclass(frozen=True)
class FusionCost:
    """INT8 layers that a change turns float: weighted ops, Conv+Add fusions, Concats (by node name)."""

    convs: Tuple[str, ...]
    adds: Tuple[str, ...]
    concats: Tuple[str, ...]

    @property
    def layers(self) -> int:
        return len(self.convs) + len(self.adds) + len(self.concats)

    def describe(self) -> str:
        parts = [f"{len(self.convs)} INT8 convolution(s) float"] if self.convs else []
        parts += [f"Conv+Add fusion of {', '.join(self.adds)} lost"] if self.adds else []
        parts += [f"INT8 Concat {', '.join(self.concats)} float"] if self.concats else []
        return "; ".join(parts) or "no INT8 layer lost"

    def as_dict(self) -> Dict[str, object]:
        return {"convs": list(self.convs), "fused_adds": list(self.adds), "concats": list(self.concats)}


INT8_OUTCOMES = {Rule.WEIGHTED: Outcome.INT8, Rule.RESIDUAL_ADD: Outcome.FUSED_INT8, Rule.CONCAT: Outcome.INT8}


def fusion_cost(before: PlacementPlan, after: PlacementPlan) -> FusionCost:
    """The weighted ops, fused residual Adds and Concats that are INT8 in `before` and not in `after`."""
    def int8(plan: PlacementPlan, rule: Rule) -> List[str]:
        return [d.node for d in plan.decisions_for(rule) if d.outcome == INT8_OUTCOMES[rule]]

    def lost(rule: Rule) -> Tuple[str, ...]:
        kept = set(int8(after, rule))
        return tuple(n for n in int8(before, rule) if n not in kept)

    return FusionCost(lost(Rule.WEIGHTED), lost(Rule.RESIDUAL_ADD), lost(Rule.CONCAT))


def by_gain_per_layer(ranked: Sequence[Sensitivity], costs: Sequence[FusionCost]
                      ) -> List[Tuple[Sensitivity, FusionCost]]:
    """The ranking reordered by output error removed per INT8 layer lost (a cost of 0 counts as 1; ties: error)."""
    pairs = list(zip(ranked, costs))
    return sorted(pairs, key=lambda p: (-p[0].error / max(1, p[1].layers), -p[0].error))


def int8_coverage(plan: PlacementPlan) -> Tuple[int, int]:
    weighted = plan.decisions_for(Rule.WEIGHTED)
    return sum(d.outcome == Outcome.INT8 for d in weighted), len(weighted)


class _Evaluator:
    def __init__(self, model, view, placement, decision_amax, tensor_ranges, feeds, measure) -> None:
        self.model, self.view, self.placement = model, view, placement
        self.decision_amax, self.tensor_ranges = decision_amax, tensor_ranges
        self.feeds, self.measure = feeds, measure
        names = [o.name for o in model.graph.output]
        self.names = names
        self.references = [dict(zip(names, out)) for out in model_outputs(model, feeds)]

    def plan(self, kept_nodes) -> PlacementPlan:
        placement = replace(self.placement, keep_float=self.placement.keep_float + tuple(kept_nodes))
        return plan_placement(self.view, placement, self.decision_amax)

    def has_ranges(self, plan: PlacementPlan) -> bool:
        """Every tensor the plan quantizes has a calibrated range (its own or its scale group's)."""
        return len(group_amax(plan, self.tensor_ranges)) == len(plan.quantized_tensors())

    def error(self, plan: PlacementPlan) -> float:
        quantized = apply_plan(self.model, plan, group_amax(plan, self.tensor_ranges))
        got = [dict(zip(self.names, out)) for out in model_outputs(quantized, self.feeds)]
        return headline_error(self.references, got, self.measure)


def meet_error_target(model: onnx.ModelProto, view: GraphView, placement: PlacementConfig,
                      decision_amax: Mapping[str, float], tensor_ranges: Mapping[str, float], plan: PlacementPlan,
                      ranked: Callable[[], List[Sensitivity]], feeds: Sequence[Feed], target: float,
                      measure: MeasureConfig = DEFAULT_MEASURE) -> Tuple[PlacementPlan, TargetResult]:
    """The plan with the fewest most-harmful quantizers' consumers float whose error on `feeds` is <= target
    (all of the ranking when even that does not meet it: `met` says so)."""
    evaluator = _Evaluator(model, view, placement, decision_amax, tensor_ranges, feeds, measure)
    before = evaluator.error(plan)
    if before <= target:
        return plan, TargetResult(target, before, before, int8_coverage(plan), int8_coverage(plan), (), True)
    sensitivities, costs = [], []
    for item in ranked():
        alone = evaluator.plan(keep_float_nodes([item], 1))
        if evaluator.has_ranges(alone):   # a re-plan may quantize a tensor calibration never observed: skip it
            sensitivities.append(item)
            costs.append(fusion_cost(plan, alone))
        else:
            log.info("max-error: keeping the consumers of %s float would quantize tensors with no range", item.tensor)
    pairs = by_gain_per_layer(sensitivities, costs)
    order = [s for s, _ in pairs]
    tried: Dict[int, Tuple[PlacementPlan, float]] = {0: (plan, before)}

    def attempt(count: int) -> float:
        if count not in tried:
            candidate = evaluator.plan(keep_float_nodes(order, count))
            error = evaluator.error(candidate) if evaluator.has_ranges(candidate) else float("inf")
            tried[count] = (candidate, error)
            log.info("max-error: %d quantizers kept float -> error %.4f", count, tried[count][1])
        return tried[count][1]

    low, high = 0, 1
    while high < len(order) and attempt(high) > target:
        low, high = high, min(2 * high, len(order))
    if attempt(high) <= target:
        while high - low > 1:
            middle = (low + high) // 2
            if attempt(middle) <= target:
                high = middle
            else:
                low = middle
    if tried[high][1] == float("inf"):   # unmet, and that plan needs ranges nobody has: the best one that has them
        high = min((c for c in tried if tried[c][1] < float("inf")), key=lambda c: (tried[c][1], c))
    chosen, after = tried[high]
    result = TargetResult(target, before, after, int8_coverage(plan), int8_coverage(chosen),
                          tuple(s.tensor for s in order[:high]), after <= target, tuple(c for _, c in pairs[:high]))
    return chosen, result
