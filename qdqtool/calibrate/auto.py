"""Calibration method auto: pick search and held-out samples, run the scale search, record the choice."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Dict, List, Mapping, Sequence, Tuple

import onnx

from qdqtool.accuracy.scores import scored_measure
from qdqtool.calibrate.folds import (
    fold_count,
    fold_positions,
    search_indices,
    start_indices,
    unseen_indices,
)
from qdqtool.calibrate.ranges import TensorRange
from qdqtool.calibrate.search import (
    FeedSet,
    ScaleUnit,
    SearchConfig,
    SearchResult,
    Trials,
    batched,
    kept_max,
    scale_units,
    search_scales,
)
from qdqtool.calibrate.sensitivity import model_outputs
from qdqtool.placement.plan import PlacementPlan
from qdqtool.samples.sets import SampleSet

log = logging.getLogger("qdqtool")


@dataclass(frozen=True)
class AutoChoice:
    ranges: Dict[str, TensorRange]     # every range, the searched ones with the chosen amax and method "auto: NAME"
    result: SearchResult
    units: Tuple[ScaleUnit, ...]

    def clipped(self) -> List[Dict[str, object]]:
        """Every scale auto moved off max: its tensors, the candidate, observed max -> chosen amax and how sure the
        choice was (cross-validated gain and spread over folds)."""
        found = []
        for unit in self.units:
            name = self.result.choice[unit.tensors]
            verdict = self.result.evidence.get(unit.tensors)
            if name == "max" or verdict is None:
                continue
            observed = max(self.ranges[t].observed_max for t in unit.tensors if t in self.ranges)
            found.append({"tensors": list(unit.tensors), "candidate": name, "observed_max": round(observed, 6),
                          "amax": round(unit.amax(name), 6), **verdict.as_dict()})
        return found

    def summary(self) -> Dict[str, object]:
        tensors: Dict[str, int] = {}
        for unit in self.units:
            name = self.result.choice[unit.tensors]
            tensors[name] = tensors.get(name, 0) + len(unit.tensors)
        return {"start": self.result.start, "scales_by_candidate": self.result.counts(),
                "tensors_by_candidate": tensors, "trials": self.result.trials,
                "search_error": [round(e, 6) for e in self.result.search_error],
                "holdout_error": [round(e, 6) for e in self.result.holdout_error],
                "holdout_samples": self.result.held_out, "clipped": self.clipped(), "note": self.result.note}


def choose_ranges(model: onnx.ModelProto, plan: PlacementPlan, ranges: Mapping[str, TensorRange],
                  samples: SampleSet, fixed: Sequence[str], config: SearchConfig) -> AutoChoice:
    """Choose the uniform start on up to `start_samples` calibration samples, search each scale's candidate on one
    sample of each of a few source images, check the search on samples of other images; every change from max
    cross-validated over folds by source image. `fixed` tensors keep their amax."""
    units = scale_units(plan, ranges, {t: ranges[t].amax for t in fixed if t in ranges})
    sources = samples.sources()
    search_at = search_indices(sources, config.search_samples)
    start_at = start_indices(sources, search_at, config.start_samples)   # the search samples first, then others
    search_folds = fold_count([sources[i] for i in search_at], config.folds, config.min_folds)
    start_folds = fold_count([sources[i] for i in start_at], config.folds, config.min_folds)
    if not search_folds or not start_folds:
        note = (f"{len(set(sources))} source images are too few to cross-validate a clip ({config.min_folds} folds "
                f"of 2 needed): every scale keeps max; give more calibration images to let auto clip")
        log.info("auto: %s", note)
        result = kept_max(units, note)
        return AutoChoice(_chosen_ranges(ranges, plan, units, result), result, tuple(units))
    config = replace(config, measure=scored_measure(model, config.measure))   # lost confident scores count
    folds = fold_positions([sources[i] for i in search_at], search_folds)
    search_feeds: List[Dict] = []
    search_parts = []
    for fold in folds:   # one batch per fold when the batch dim is dynamic
        feeds = batched(samples.samples_at([search_at[p] for p in fold]), samples.dynamic_batch)
        search_parts.append(list(range(len(search_feeds), len(search_feeds) + len(feeds))))
        search_feeds += feeds
    start_feeds = list(samples.samples_at(start_at))   # one feed per sample: scored by folds
    search = FeedSet(search_feeds, _named_outputs(model, search_feeds), config.measure, search_parts)
    pool = FeedSet(start_feeds, _named_outputs(model, start_feeds), config.measure,
                   fold_positions([sources[i] for i in start_at], start_folds))
    unseen_images = {sources[i] for i in start_at} - {sources[i] for i in search_at}
    unseen = [p for p, i in enumerate(start_at) if sources[i] in unseen_images]
    trials = Trials(model, plan, units, search)
    result = search_scales(trials, units, pool, unseen, config)   # the pool samples of unseen images check it
    return AutoChoice(_chosen_ranges(ranges, plan, units, result), result, tuple(units))


def holdout_indices(samples: SampleSet, config: SearchConfig) -> List[int]:
    """The calibration samples no search decision sees (the maximum-error target's check): samples of images the
    search samples do not come from, none when there are too few to spare."""
    sources = samples.sources()
    return unseen_indices(sources, search_indices(sources, config.search_samples), config.holdout_samples)


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
                verdict = result.evidence.get(unit.tensors) if name != "max" else None
                chosen[tensor] = replace(item, amax=amax, method=f"auto: {name}",
                                         cv_gain=None if verdict is None else round(verdict.gain, 6),
                                         cv_spread=None if verdict is None else round(verdict.spread, 6))
    return chosen


def auto_lines(summary: Mapping[str, object]) -> List[str]:
    """Human lines for AutoChoice.summary(): the counts, and every scale moved off max with how sure it was."""
    taken = ", ".join(f"{n} {name}" for name, n in summary["scales_by_candidate"].items())
    held = summary["holdout_error"]
    checked = (f"output error {held[0]:.4f} -> {held[1]:.4f} on {summary['holdout_samples']} samples of images the "
               "search did not run on" if summary["holdout_samples"] else "no samples of other images to check it on")
    lines = [f"auto: scales by candidate: {taken} ({summary['trials']} trials from uniform {summary['start']}; "
             f"{checked})"]
    if summary["note"]:
        lines.append(f"auto: {summary['note']}")
    for item in summary["clipped"]:
        lines.append(f"  clipped: {', '.join(item['tensors'])}: {item['candidate']}, observed max "
                     f"{item['observed_max']:.4g} -> amax {item['amax']:.4g}; cross-validated gain "
                     f"{100 * item['cv_gain']:.1f}% (spread {100 * item['cv_spread']:.1f}% over "
                     f"{len(item['fold_gains'])} folds)")
    return lines
