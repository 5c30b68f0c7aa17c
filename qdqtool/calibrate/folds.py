"""Auto's evidence: which calibration samples each stage runs on, and cross-validated decisions over folds of them.

A clip chosen because it lowers the output error on the samples it was chosen on says nothing about other photos:
with 12 samples "better on all of them and on both halves" was a quarter of the detections lost on unseen photos.
So a decision to leave the current candidate (max, at first) is cross-validated: the samples are split into folds
by source image (crops and flips of one photo stay in one fold: they are not independent evidence); for each fold,
the choice is made on the other folds' scores and its gain measured on that fold. The change is taken only when the
mean of those held-out gains exceeds `min_gain` and the spread of the gains across folds (largest minus smallest):
a gain some folds do not show is noise. With too few source images to form `min_folds` folds of two, nothing is
cross-validated and every scale keeps max.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

SAMPLE_SEED = 0   # a fixed draw: the same samples every run (reproducible output)
SOURCES_PER_FOLD = 2


@dataclass(frozen=True)
class Verdict:
    """A cross-validated decision between the current candidate and others."""

    chosen: Optional[str]          # the candidate taken, None when the current one is kept
    gain: float                    # mean over folds of the held-out relative error drop of the choice made without it
    spread: float                  # largest minus smallest of those held-out gains
    fold_gains: tuple

    def as_dict(self) -> Dict[str, object]:
        return {"cv_gain": round(self.gain, 6), "cv_spread": round(self.spread, 6),
                "fold_gains": [round(g, 6) for g in self.fold_gains]}


def cross_validated(current: Sequence[float], others: Mapping[str, Sequence[float]], min_gain: float) -> Verdict:
    """Per fold k: the candidate (or the current one) that lowers the mean error of the other folds by min_gain,
    best first, and its relative gain on fold k; the best candidate over all folds is taken when the mean held-out
    gain beats both min_gain and the spread of the held-out gains. Scores: one error per fold, lower is better."""
    folds = len(current)
    held = []
    for k in range(folds):
        rest = [j for j in range(folds) if j != k]
        pick = _best(current, others, rest, min_gain)
        held.append(0.0 if pick is None else _gain(current[k], others[pick][k]))
    gain, spread = float(np.mean(held)), float(max(held) - min(held))
    best = _best(current, others, range(folds), min_gain)
    chosen = best if best is not None and gain > min_gain and gain > spread else None
    return Verdict(chosen, gain, spread, tuple(held))


def _best(current: Sequence[float], others: Mapping[str, Sequence[float]], folds: Sequence[int],
          min_gain: float) -> Optional[str]:
    base = float(np.mean([current[j] for j in folds]))
    means = {name: float(np.mean([s[j] for j in folds])) for name, s in others.items()}
    better = [n for n, m in means.items() if m < base * (1 - min_gain)]
    return min(better, key=lambda n: means[n]) if better else None


def _gain(current: float, other: float) -> float:
    return (current - other) / current if current > 0 else 0.0


def drawn_order(total: int) -> List[int]:
    """The calibration samples' indices in a fixed pseudo-random order: evenly spaced indices alias with periodic
    folders (frames, crops of one photo, a strip and its turned copy), a random draw does not."""
    return [int(i) for i in np.random.default_rng(SAMPLE_SEED).permutation(total)]


def source_groups(sources: Sequence[str]) -> List[List[int]]:
    """The samples' indices grouped by source image, groups and members in drawn order (a periodic folder's first
    member is not always its first crop or strip)."""
    groups: Dict[str, List[int]] = {}
    for index in drawn_order(len(sources)):
        groups.setdefault(sources[index], []).append(index)
    return list(groups.values())


def search_indices(sources: Sequence[str], count: int) -> List[int]:
    """The samples the descent runs on: one of each of the first `count` source images, in file order."""
    return sorted(group[0] for group in source_groups(sources)[:count])


def start_indices(sources: Sequence[str], search: Sequence[int], count: int) -> List[int]:
    """The samples the uniform start is chosen on: the search samples first, then whole source images in drawn
    order while fewer than `count` (an image's samples are never split)."""
    chosen = list(search)
    for group in source_groups(sources):
        if len(chosen) >= count:
            break
        chosen += [i for i in group if i not in chosen]
    return chosen


def unseen_indices(sources: Sequence[str], used: Sequence[int], count: int) -> List[int]:
    """Up to `count` samples whose source image none of `used` comes from (whole images, drawn order)."""
    seen = {sources[i] for i in used}
    found: List[int] = []
    for group in source_groups(sources):
        if len(found) >= count:
            break
        if sources[group[0]] not in seen:
            found += group
    return sorted(found[:count])


def fold_positions(sources: Sequence[str], folds: int) -> List[List[int]]:
    """Positions 0..len(sources)-1 split into at most `folds` folds, each source image whole, each image going to the
    fold with the fewest samples so far (in order of first appearance); no empty fold."""
    parts: List[List[int]] = [[] for _ in range(folds)]
    groups: Dict[str, List[int]] = {}
    for position, source in enumerate(sources):
        groups.setdefault(source, []).append(position)
    for members in groups.values():
        min(parts, key=len).extend(members)
    return [sorted(p) for p in parts if p]


def fold_count(sources: Sequence[str], folds: int, min_folds: int) -> int:
    """How many folds of SOURCES_PER_FOLD source images the samples allow (at most `folds`), 0 when fewer than
    `min_folds`: too few images to tell a real gain from noise."""
    possible = min(folds, len(set(sources)) // SOURCES_PER_FOLD)
    return possible if possible >= min_folds else 0
