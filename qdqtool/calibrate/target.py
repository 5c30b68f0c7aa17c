"""Mixed precision to a target: keep the consumers of the most harmful quantizers float, fewest first, until the
output error measure on held-out calibration samples is at most the target (the max_error setting of calibrate).

Quantizers are ranked once by sensitivity (each alone quantized). The number kept float is searched by doubling
then bisection (log2 of the quantizer count model builds), so the result is the smallest count of the ranking
that meets the target, not a hand-picked set.
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

    def as_dict(self) -> Dict[str, object]:
        return {"target": self.target, "error_before": round(self.error_before, 6),
                "error_after": round(self.error_after, 6), "int8_convs_before": list(self.convs_before),
                "int8_convs_after": list(self.convs_after), "kept_float_quantizers": list(self.kept),
                "met": self.met}


def int8_coverage(plan: PlacementPlan) -> Tuple[int, int]:
    weighted = plan.decisions_for("weighted")
    return sum(d.outcome == "int8" for d in weighted), len(weighted)


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
    order = ranked()
    tried: Dict[int, Tuple[PlacementPlan, float]] = {0: (plan, before)}

    def attempt(count: int) -> float:
        if count not in tried:
            candidate = evaluator.plan(keep_float_nodes(order, count))
            tried[count] = (candidate, evaluator.error(candidate))
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
    chosen, after = tried[high]
    result = TargetResult(target, before, after, int8_coverage(plan), int8_coverage(chosen),
                          tuple(s.tensor for s in order[:high]), after <= target)
    return chosen, result
