"""Calibration method auto: each scale's amax chosen among its candidates by how much the model's OUTPUTS change.

A tensor's own quantization error says little about what it does downstream: a detector's class logits need
their largest values (clip them and confident detections vanish), a text detector's features are better clipped.
So every candidate (max, percentiles, entropy, mse; see observers.CANDIDATES) is judged by the output error
measure (qdqtool.accuracy.measure) of the whole quantized model against FP32:

1. One Q/DQ model is built whose activation scales are session inputs: a trial feeds other scales, nothing is
   rebuilt. Tensors sharing one scale (Concat groups, commuting chains) form one unit and move together.
2. Start: a uniform choice (every unit the same candidate), judged on many more samples than the descent (up to
   `start_samples`: 6 trials only), because this one choice decides most of the result and 4 samples pick it
   badly. max (nothing clipped) unless a candidate wins under cross-validation over folds of those samples
   (calibrate.folds: chosen without each fold, gain measured on it, mean gain above the spread across folds).
3. Screening: each unit in graph order tries the candidate farthest from its current one with the rest fixed and
   keeps it when that wins under cross-validation over folds of the search samples (one per source image); how
   much the first folds' error moved ranks the units by sensitivity.
4. Refinement (coordinate descent on the sensitive few): the units that moved the error most try every candidate.
5. The start samples from images the descent did not run on check it: if it is worse than its start on them, the
   start is kept (the descent fitted noise).
With too few source images for `min_folds` folds of two, nothing is searched: every scale keeps max, and the
summary says so. Each non-max choice carries its cross-validated gain and spread (SearchResult.evidence).

Cost: every trial runs the first half of its folds first; a trial that is already worse there than what it must
beat is not chosen, so it is not run on the other folds (most screening trials, most uniform candidates). The
references are measured once (accuracy.measure.ReferenceMeter), not again for every trial.
"""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from qdqtool.accuracy.measure import MeasureConfig, ReferenceMeter
from qdqtool.calibrate.folds import Verdict, cross_validated
from qdqtool.calibrate.observers import CANDIDATES
from qdqtool.calibrate.ranges import TensorRange
from qdqtool.calibrate.suffix import SuffixRuns
from qdqtool.onnxgraph.edit import remove_initializers
from qdqtool.placement.apply import apply_plan
from qdqtool.placement.plan import PlacementPlan
from qdqtool.runner import create_session
from qdqtool.trt.rules import DEQUANTIZE, QUANTIZE
from qdqtool.trt.scales import scale_from_amax
from qdqtool.weightstore import needs_lean_session

log = logging.getLogger("qdqtool")

Feed = Dict[str, np.ndarray]
Outputs = Dict[str, np.ndarray]


@dataclass(frozen=True)
class SearchConfig:
    search_samples: int = 8     # calibration samples the trials run on (one batch when the batch dim is dynamic)
    holdout_samples: int = 4    # calibration samples the maximum-error target is checked on
    start_samples: int = 32     # calibration samples the uniform start is chosen on (6 trials: affordable)
    refine_fraction: float = 0.125   # share of the scales (those whose screening trial moved the error most) ...
    refine_min: int = 4              # ... and at least this many, that try every candidate
    min_gain: float = 0.005     # relative error drop a change must bring
    same_amax: float = 0.01     # candidates closer than this (relative) are one trial
    folds: int = 4              # cross-validation folds (by source image) a change from max must win on
    min_folds: int = 3          # fewer possible folds of two source images: too few to tell, every scale keeps max
    measure: MeasureConfig = field(default_factory=MeasureConfig)


@dataclass(frozen=True)
class ScaleUnit:
    """Quantized tensors sharing one scale and the candidate amaxes of the unit (max over its members)."""

    tensors: Tuple[str, ...]
    candidates: Tuple[Tuple[str, float], ...]

    def amax(self, name: str) -> float:
        """The candidate's amax; a unit without that candidate (a fixed one) keeps its first."""
        return dict(self.candidates).get(name, self.candidates[0][1])


@dataclass(frozen=True)
class SearchResult:
    choice: Dict[Tuple[str, ...], str]     # unit tensors -> chosen candidate
    start: str                             # the uniform candidate the descent started from
    search_error: Tuple[float, float]      # (start, final) on the search samples
    holdout_error: Tuple[float, float]     # (start, final) on the held-out samples; final is the kept one
    trials: int
    evidence: Dict[Tuple[str, ...], Verdict] = field(default_factory=dict)   # unit tensors -> why not max
    note: str = ""                         # why nothing was searched, when nothing was
    held_out: int = 0                      # samples of images the descent never ran on that checked it

    def tensor_amax(self, units: Sequence[ScaleUnit]) -> Dict[str, float]:
        return {t: u.amax(self.choice[u.tensors]) for u in units for t in u.tensors}

    def counts(self) -> Dict[str, int]:
        """How many units took each candidate."""
        counts = {name: 0 for name in CANDIDATES}
        for name in self.choice.values():
            counts[name] += 1
        return {name: n for name, n in counts.items() if n}


def scale_units(plan: PlacementPlan, ranges: Mapping[str, TensorRange],
                fixed: Mapping[str, float] = {}) -> List[ScaleUnit]:
    """One unit per scale of the plan, in graph order of first appearance; `fixed` tensors have one candidate."""
    quantized = plan.quantized_tensors()
    group_of = {t: g for g in plan.groups for t in g}
    units, seen = [], set()
    order = {t: i for i, t in enumerate(_graph_order(plan, quantized))}
    for tensor in sorted(quantized, key=lambda t: order[t]):
        if tensor in seen:
            continue
        members = group_of.get(tensor, (tensor,))
        seen.update(members)
        known = [m for m in members if m in ranges]
        if any(m in fixed for m in members):
            amax = max(fixed.get(m, ranges[m].amax) for m in known)
            candidates: Tuple[Tuple[str, float], ...] = (("max", amax),)
        else:
            per_member = [dict(ranges[m].candidates) or {"max": ranges[m].amax} for m in known]
            names = [n for n in CANDIDATES if all(n in c for c in per_member)] or ["max"]
            candidates = tuple((n, max(c.get(n, ranges[m].amax) for c, m in zip(per_member, known))) for n in names)
        units.append(ScaleUnit(tuple(m for m in members if m in set(quantized)), candidates))
    return units


def _graph_order(plan: PlacementPlan, tensors: Sequence[str]) -> List[str]:
    first_use = {}
    for index, edge in enumerate(plan.inputs):
        first_use.setdefault(edge.tensor, index)
    return sorted(tensors, key=lambda t: first_use.get(t, len(first_use)))


def scale_fed_model(model: onnx.ModelProto, plan: PlacementPlan, units: Sequence[ScaleUnit]
                    ) -> Tuple[onnx.ModelProto, List[List[str]]]:
    """The planned Q/DQ model whose activation scales are graph inputs; the input names of each unit's scales."""
    start = {t: u.candidates[0][1] for u in units for t in u.tensors}
    quantized = apply_plan(model, plan, start)
    graph = quantized.graph
    scale_of = {n.input[0]: n.input[1] for n in graph.node if n.op_type == QUANTIZE}
    names = [[scale_of[t] for t in u.tensors] for u in units]
    fed = {name for unit in names for name in unit}
    remove_initializers(graph, fed)
    graph.input.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, []) for name in sorted(fed))
    if needs_lean_session(quantized):   # large: folding would add a float copy of every weight; ORT dequantizes
        return quantized, names
    return dequantized_weights(quantized), names


def dequantized_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with each constant DequantizeLinear (a quantized weight) replaced by its float result, computed as
    ONNX Runtime does ((q - zero point) * scale in float32): the same outputs, without dequantizing every weight on
    every trial run (the trial session runs unoptimised). Edits `model` in place and returns it."""
    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    folded, kept = [], []
    for node in graph.node:
        if node.op_type == DEQUANTIZE and all(name in constants for name in node.input if name):
            folded.append(numpy_helper.from_array(_dequantize(node, constants), node.output[0]))
        else:
            kept.append(node)
    if not folded:
        return model
    used = ({name for node in kept for name in node.input} | {o.name for o in graph.output}
            | {i.name for i in graph.input})   # an initializer listed as a graph input (IR < 4) must stay
    remaining = [t for t in graph.initializer if t.name in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(remaining + folded)
    return model


def _dequantize(node: onnx.NodeProto, constants: Mapping[str, onnx.TensorProto]) -> np.ndarray:
    q = numpy_helper.to_array(constants[node.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(constants[node.input[1]]).astype(np.float32)
    zero = (numpy_helper.to_array(constants[node.input[2]]).astype(np.float32)
            if len(node.input) > 2 and node.input[2] else np.zeros_like(scale))
    if scale.ndim == 1 and q.ndim > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % q.ndim
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q - zero) * scale).astype(np.float32)


@dataclass(frozen=True)
class Scores:
    """A trial's search_score on each fold of its feeds (None where not run) and their mean (None unless all were
    run: every decision is made on fold scores, so the whole set is not measured again)."""

    folds: Tuple[Optional[float], ...]
    whole: Optional[float]

    @property
    def complete(self) -> bool:
        return self.whole is not None

    def first(self, part: int) -> float:
        """The mean score over the first `part` folds (those run first)."""
        return float(np.mean(self.folds[:part]))


class FeedSet:
    """Feeds with their FP32 references, scored whole and by folds (lists of feed positions; default: the even and
    the odd positions)."""

    def __init__(self, feeds: Sequence[Feed], references: Sequence[Outputs], measure: MeasureConfig,
                 folds: Optional[Sequence[Sequence[int]]] = None) -> None:
        self.feeds, self.references = list(feeds), list(references)
        if folds is None:
            positions = list(range(len(self.feeds)))
            folds = [positions[0::2], positions[1::2]] if len(positions) > 1 else [positions]
        self.folds = [list(f) for f in folds]
        self.meters = [ReferenceMeter([self.references[p] for p in fold], measure) for fold in self.folds]
        self.first_part = (len(self.folds) + 1) // 2   # folds run before a trial may stop


class Trials:
    """Runs the scale-fed model on fixed feeds and measures its outputs against the FP32 references."""

    def __init__(self, model: onnx.ModelProto, plan: PlacementPlan, units: Sequence[ScaleUnit],
                 search: FeedSet) -> None:
        fed_model, self.scale_names = scale_fed_model(model, plan, units)
        self.output_names = [o.name for o in fed_model.graph.output]
        self.suffix = None if needs_lean_session(fed_model) else SuffixRuns(fed_model, self.scale_names)
        self.session = create_session(self.suffix.whole_model() if self.suffix else fed_model, optimize=False)
        self.search = search
        self.count = 0

    def outputs(self, amaxes: Sequence[float], feeds: Sequence[Feed]) -> List[Outputs]:
        scales = self._scales(amaxes)
        return [dict(zip(self.output_names, self.session.run(self.output_names, {**feed, **scales})))
                for feed in feeds]

    def _scales(self, amaxes: Sequence[float]) -> Dict[str, np.ndarray]:
        return {name: np.array(scale_from_amax(a), np.float32) for a, names in zip(amaxes, self.scale_names)
                for name in names}

    def _outputs_at(self, feeds: FeedSet, amaxes: Sequence[float], positions: Sequence[int], moved: Optional[int]
                    ) -> List[Outputs]:
        """The outputs on the feeds at these positions; on the search feeds with `moved` (the one unit whose scale
        differs from the current choice), from the last cut before that unit's scale on, when its crossing tensors
        are kept."""
        cut = self.suffix.cut_of(moved) if feeds is self.search and self.suffix and moved is not None else None
        if cut is None:
            return self.outputs(amaxes, [feeds.feeds[p] for p in positions])
        scales, crossing_names = self._scales(amaxes), list(self.suffix.cuts[cut].crossing)
        results = []
        for position in positions:
            given = {**feeds.feeds[position], **scales}
            crossing = self.suffix.kept(cut, amaxes, position)
            if crossing is not None:
                values = self.suffix.run(cut, given, crossing)
            else:
                values = self.session.run(self.output_names + crossing_names, given)
                self.suffix.keep(cut, amaxes, position, dict(zip(crossing_names, values[len(self.output_names):])))
            results.append(dict(zip(self.output_names, values)))
        return results

    def scores(self, amaxes: Sequence[float], feeds: Optional[FeedSet] = None,
               go_on: Callable[[float], bool] = lambda first: True, moved: Optional[int] = None
               ) -> Tuple[Scores, Optional[List[Outputs]]]:
        """search_score on each of the first folds of the feeds (default: the search feeds), then, if
        `go_on(their mean)`, on the other folds and on all feeds; with the outputs of all feeds when all were run.
        `moved`: on the search feeds, the one unit whose scale differs from the current choice."""
        feeds = self.search if feeds is None else feeds
        self.count += 1
        got: List[Optional[Outputs]] = [None] * len(feeds.feeds)
        fold_scores: List[Optional[float]] = [None] * len(feeds.folds)
        for k, fold in enumerate(feeds.folds):
            if k == feeds.first_part and not go_on(float(np.mean(fold_scores[:k]))):
                return Scores(tuple(fold_scores), None), None
            outputs = self._outputs_at(feeds, amaxes, fold, moved)
            for position, one in zip(fold, outputs):
                got[position] = one
            fold_scores[k] = search_score(feeds.meters[k], outputs)
        return Scores(tuple(fold_scores), float(np.mean(fold_scores))), got


def search_score(meter: ReferenceMeter, candidates: Sequence[Outputs]) -> float:
    """The headline error plus the mean over outputs of their mean channel error.

    The headline alone is a max (worst channel of the worst output): a scale that helps every other channel leaves
    it unchanged, and a descent on it stalls. The mean term sees those gains; the headline still dominates."""
    result = meter.result(candidates)
    means = [o.mean_channel_error for o in result.outputs.values()]
    return result.headline + (float(np.mean(means)) if means else 0.0)


def search_scales(trials: Trials, units: Sequence[ScaleUnit], pool: FeedSet, unseen: Sequence[int],
                  config: SearchConfig) -> SearchResult:
    """Choose a candidate per unit: uniform start (cross-validated on the pool's folds), screening, refinement (each
    move cross-validated on the search feeds' folds), check on the pool positions `unseen` (samples of images the
    descent never ran on)."""
    holdout = ReferenceMeter([pool.references[p] for p in unseen], config.measure) if unseen else None
    pooled, held_start = _uniform_scores(trials, units, pool, holdout, unseen)
    others = {n: s.folds for n, s in pooled.items() if n != "max" and s.complete}
    verdict = cross_validated(pooled["max"].folds, others, config.min_gain)
    start = verdict.chosen or "max"
    log.info("auto: uniform candidates on %d samples in %d folds (mean held-out gain, spread): %s; start %s",
             len(pool.feeds), len(pool.folds), ", ".join(
                 f"{n} " + ("-" if not s.complete else " ".join(_shown(e) for e in s.folds))
                 for n, s in pooled.items()), start)
    log.info("auto: start cross-validated gain %.4f, spread %.4f", verdict.gain, verdict.spread)
    start_scores, _ = trials.scores([u.amax(start) for u in units])
    state = _Descent(trials, units, start, start_scores, config)
    searchable = [i for i, u in enumerate(units) if len(_distinct(u, config)) > 1]
    effect = {i: state.try_candidates(i, [_farthest(units[i], state.chosen[i])]) for i in searchable}
    refine = sorted(searchable, key=lambda i: -effect[i])[:max(config.refine_min, int(config.refine_fraction
                                                                                        * len(searchable)))]
    for index in refine:
        state.try_candidates(index, [n for n, _ in _distinct(units[index], config)])
    log.info("auto: screened %d scales, refined %d: error %.4f -> %.4f (%d trials)", len(searchable), len(refine),
             start_scores.whole, state.best.whole, trials.count)
    chosen, evidence = state.chosen, dict(state.evidence)
    final_amax = [u.amax(n) for u, n in zip(units, chosen)]
    held = (0.0, 0.0)
    if holdout is not None:
        moved = final_amax != [u.amax(start) for u in units]
        if moved:
            trials.count += 1
        held = (held_start[start], holdout.result(trials.outputs(final_amax, [pool.feeds[p] for p in unseen])
                                                  ).headline if moved else held_start[start])
        if held[1] > held[0]:
            log.info("auto: the search is worse on the held-out samples (%.4f > %.4f): keeping the uniform %s",
                     held[1], held[0], start)
            chosen, held, evidence = [start for _ in units], (held[0], held[0]), {}
    start_evidence = {i: verdict for i in range(len(units)) if start != "max"}
    choice = {u.tensors: _credited(u, name) for u, name in zip(units, chosen)}
    why = {units[i].tensors: v for i, v in {**start_evidence, **evidence}.items() if choice[units[i].tensors] != "max"}
    return SearchResult(choice, start, (start_scores.whole, state.best.whole), held, trials.count, why,
                        held_out=len(unseen))


def kept_max(units: Sequence[ScaleUnit], note: str) -> SearchResult:
    """Every unit at max: what auto gives when the calibration set is too small to tell a gain from noise."""
    return SearchResult({u.tensors: "max" for u in units}, "max", (0.0, 0.0), (0.0, 0.0), 0, {}, note)


def _uniform_scores(trials: Trials, units: Sequence[ScaleUnit], pool: FeedSet, holdout: Optional[ReferenceMeter],
                    unseen: Sequence[int]) -> Tuple[Dict[str, Scores], Dict[str, float]]:
    """Each uniform candidate's scores on the pool (max first: another candidate that is not better on the first
    folds is not run on the others) and, where run on all, its error on the pool positions `unseen`."""
    pooled: Dict[str, Scores] = {}
    held: Dict[str, float] = {}
    limit = float("inf")
    for name in CANDIDATES:
        pooled[name], got = trials.scores([u.amax(name) for u in units], pool, partial(operator.gt, limit))
        limit = pooled["max"].first(pool.first_part)
        if holdout is not None and got is not None:
            held[name] = holdout.result([got[p] for p in unseen]).headline
    return pooled, held


def _shown(score: Optional[float]) -> str:
    return "-" if score is None else f"{score:.4f}"


class _Descent:
    """The current choice per unit and its scores; moves one unit at a time when that wins under cross-validation."""

    def __init__(self, trials: Trials, units: Sequence[ScaleUnit], start: str, scores: Scores,
                 config: SearchConfig) -> None:
        self.trials, self.units, self.config = trials, units, config
        self.chosen = [start for _ in units]
        self.best = scores
        self.evidence: Dict[int, Verdict] = {}

    def try_candidates(self, index: int, names: Sequence[str]) -> float:
        """Try unit `index` at each named candidate with the rest fixed (a trial worse than the current choice on the
        first folds is not run on the others) and move to the one that wins under cross-validation over the search
        folds; returns the largest change of the first folds' mean error (how much this unit's choice matters)."""
        unit = self.units[index]
        amaxes = [u.amax(n) for u, n in zip(self.units, self.chosen)]
        current = amaxes[index]
        part = self.trials.search.first_part
        best_first = self.best.first(part)
        effect, tried = 0.0, {}
        for name in names:
            amax = unit.amax(name)
            if _same(amax, current, self.config.same_amax):
                continue
            amaxes[index] = amax
            scores, _ = self.trials.scores(amaxes, go_on=lambda first: first <= best_first, moved=index)
            effect = max(effect, abs(scores.first(part) - best_first))
            if scores.complete:
                tried[name] = scores
        verdict = cross_validated(self.best.folds, {n: s.folds for n, s in tried.items()}, self.config.min_gain)
        if verdict.chosen is not None:
            self.chosen[index], self.best = verdict.chosen, tried[verdict.chosen]
            self.evidence[index] = verdict
        return effect


def _same(a: float, b: float, tolerance: float) -> bool:
    return abs(a - b) <= tolerance * max(abs(a), abs(b), 1e-12)


def _distinct(unit: ScaleUnit, config: SearchConfig) -> List[Tuple[str, float]]:
    """The unit's candidates without near-duplicates (the first of each cluster in CANDIDATES order)."""
    kept: List[Tuple[str, float]] = []
    for name, amax in unit.candidates:
        if not any(_same(amax, a, config.same_amax) for _, a in kept):
            kept.append((name, amax))
    return kept


def _farthest(unit: ScaleUnit, current: str) -> str:
    """The candidate whose amax is farthest (by ratio) from the current one: the screening trial."""
    here = max(unit.amax(current), 1e-12)
    return max(unit.candidates, key=lambda c: abs(np.log(max(c[1], 1e-12) / here)))[0]


def _credited(unit: ScaleUnit, name: str) -> str:
    """The first candidate (in CANDIDATES order) with the same amax as the chosen one: max over p99.999 when equal."""
    amax = unit.amax(name)
    return next((n for n, a in unit.candidates if a == amax), name)


def batched(feeds: Sequence[Feed], dynamic_batch: bool) -> List[Feed]:
    """The feeds as one batch when the model's batch dim is dynamic and their shapes agree (one run per trial)."""
    if not dynamic_batch or len(feeds) < 2:
        return list(feeds)
    shapes = {tuple((k, v.shape) for k, v in sorted(f.items())) for f in feeds}
    if len(shapes) > 1:
        return list(feeds)
    return [{name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}]
