"""Calibration method auto: pick search and held-out samples, run the scale search, record the choice."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Mapping, Sequence, Tuple

import onnx

from qdqtool.calibrate.ranges import TensorRange
from qdqtool.calibrate.search import (
    FeedSet,
    ScaleUnit,
    SearchConfig,
    SearchResult,
    Trials,
    batched,
    scale_units,
    search_indices,
    search_scales,
    start_indices,
)
from qdqtool.calibrate.sensitivity import model_outputs
from qdqtool.placement.plan import PlacementPlan
from qdqtool.samples.sets import SampleSet


@dataclass(frozen=True)
class AutoChoice:
    ranges: Dict[str, TensorRange]     # every range, the searched ones with the chosen amax and method "auto: NAME"
    result: SearchResult
    units: Tuple[ScaleUnit, ...]

    def summary(self) -> Dict[str, object]:
        tensors: Dict[str, int] = {}
        for unit in self.units:
            name = self.result.choice[unit.tensors]
            tensors[name] = tensors.get(name, 0) + len(unit.tensors)
        return {"start": self.result.start, "scales_by_candidate": self.result.counts(),
                "tensors_by_candidate": tensors, "trials": self.result.trials,
                "search_error": [round(e, 6) for e in self.result.search_error],
                "holdout_error": [round(e, 6) for e in self.result.holdout_error]}


def choose_ranges(model: onnx.ModelProto, plan: PlacementPlan, ranges: Mapping[str, TensorRange],
                  samples: SampleSet, fixed: Sequence[str], config: SearchConfig) -> AutoChoice:
    """Choose the uniform start on up to `start_samples` calibration samples, search each scale's candidate on a few
    of them, check the search on the rest; `fixed` tensors keep their amax."""
    search_at = search_indices(len(samples), config)
    halves = (search_at[0::2], search_at[1::2])   # a move must help both halves of the search samples
    search_feeds = [feed for half in halves for feed in batched(samples.samples_at(half), samples.dynamic_batch)]
    start_at = start_indices(len(samples), config)   # the search samples first, then others
    start_feeds = list(samples.samples_at(start_at))   # one feed per sample: scored by halves
    search = FeedSet(search_feeds, _named_outputs(model, search_feeds), config.measure)
    pool = FeedSet(start_feeds, _named_outputs(model, start_feeds), config.measure)
    units = scale_units(plan, ranges, {t: ranges[t].amax for t in fixed if t in ranges})
    trials = Trials(model, plan, units, search)
    result = search_scales(trials, units, pool, len(search_at), config)   # the pool samples after the search's check it
    return AutoChoice(_chosen_ranges(ranges, plan, units, result), result, tuple(units))


def _named_outputs(model: onnx.ModelProto, feeds) -> List[Dict]:
    names = [o.name for o in model.graph.output]
    return [dict(zip(names, outputs)) for outputs in model_outputs(model, feeds)]


def _chosen_ranges(ranges: Mapping[str, TensorRange], plan: PlacementPlan, units: Sequence[ScaleUnit],
                   result: SearchResult) -> Dict[str, TensorRange]:
    """Each searched tensor (and the rest of its scale group) takes its own amax of the unit's chosen candidate."""
    group_of = {t: g for g in plan.groups for t in g}
    chosen = dict(ranges)
    for unit in units:
        name = result.choice[unit.tensors]
        if len(unit.candidates) == 1:
            continue
        for tensor in {m for t in unit.tensors for m in group_of.get(t, (t,))}:
            if tensor in chosen:
                item = chosen[tensor]
                amax = dict(item.candidates).get(name, item.amax)
                chosen[tensor] = replace(item, amax=amax, method=f"auto: {name}")
    return chosen
