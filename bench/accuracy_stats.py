"""Is a row of the accuracy bench really worse than another? A paired bootstrap over held-out source photos.

Feeds cut from one photo are correlated, so the unit resampled is the photo: each resample draws as many photos as
there are, with replacement, keeps every feed of a drawn photo, and recomputes both rows' metric from the summed
per-feed components (a ratio of sums: F1 from matched and detection counts, mask IoU from intersection and union
sums, top-1 from per-feed agreement). Both rows see the same draws (paired). A draw in which a row has nothing to
compare (no detection from either model, no text pixel from either) leaves its metric undefined and is left out.
The 95% interval of the difference is the 2.5th-97.5th percentile of the resampled differences; "worse" only when
the whole interval is below 0, "better" when it is above, else "within noise".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bench.accuracy_metrics import ratio_parts

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95
PEER_TOOLS = ("ort", "fix", "modelopt")
MAX_ROW = "qdqtool --method max"
METRIC_LABEL = {"detection": "F1", "mask": "mask IoU", "top1": "top-1"}

Parts = Tuple[np.ndarray, np.ndarray]   # per-feed (numerator, denominator)


@dataclass(frozen=True)
class Interval:
    difference: float     # candidate minus reference on the whole held-out set
    low: float
    high: float
    verdict: str          # "worse" | "better" | "within noise"
    sources: int          # source photos resampled
    resamples: int        # resamples in which both rows' metric is defined


def verdict(low: float, high: float) -> str:
    if high < 0:
        return "worse"
    if low > 0:
        return "better"
    return "within noise"


def per_source(parts: Parts, sources: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """Per-feed (numerator, denominator) summed per source photo, photos in sorted name order."""
    _, index = np.unique(np.asarray(sources), return_inverse=True)
    count = int(index.max()) + 1
    return (np.bincount(index, weights=parts[0], minlength=count),
            np.bincount(index, weights=parts[1], minlength=count))


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator elementwise, 1.0 where the denominator is 0 (nothing to compare: full agreement)."""
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 1.0, numerator / safe)


def resample_counts(sources: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, sources]: how often each photo is drawn in each resample (each row sums to `sources`)."""
    draws = np.random.default_rng(seed).integers(0, sources, size=(resamples, sources))
    counts = np.zeros((resamples, sources))
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
    return counts


def paired_interval(candidate: Parts, reference: Parts, sources: Sequence[str], resamples: int = RESAMPLES,
                    seed: int = SEED, level: float = LEVEL) -> Interval:
    """Bootstrap interval of metric(candidate) - metric(reference), resampling source photos."""
    if not (len(candidate[0]) == len(reference[0]) == len(sources)) or not len(sources):
        raise ValueError(f"per-feed components of {len(candidate[0])} and {len(reference[0])} feeds for "
                         f"{len(sources)} source labels: they must match and be non-empty")
    cand_num, cand_den = per_source(candidate, sources)
    ref_num, ref_den = per_source(reference, sources)
    counts = resample_counts(len(cand_num), resamples, seed)
    cand_den_drawn, ref_den_drawn = counts @ cand_den, counts @ ref_den
    defined = (cand_den_drawn > 0) & (ref_den_drawn > 0)
    differences = (ratio(counts @ cand_num, cand_den_drawn) - ratio(counts @ ref_num, ref_den_drawn))[defined]
    observed = float(ratio(cand_num.sum(), cand_den.sum()) - ratio(ref_num.sum(), ref_den.sum()))
    if not len(differences):    # nothing to compare on any photo: both metrics are 1.0 by definition
        return Interval(observed, observed, observed, verdict(observed, observed), len(cand_num), 0)
    low, high = (float(v) for v in np.percentile(differences, [50 * (1 - level), 50 * (1 + level)]))
    return Interval(observed, low, high, verdict(low, high), len(cand_num), len(differences))


def row_value(metric: str, row: Dict) -> float:
    numerator, denominator = ratio_parts(metric, row["task"]["per_feed"])
    return float(ratio(numerator.sum(), denominator.sum()))


def usable(row: Dict) -> bool:
    return not row.get("error_message") and "per_feed" in row.get("task", {})


def best_peer(rows: Sequence[Dict], metric: str) -> Optional[Dict]:
    """The other tools' (ORT, fix-residuals, ModelOpt) best row by the task metric; the first of a tie."""
    peers = [r for r in rows if r.get("tool") in PEER_TOOLS and usable(r)]
    return max(peers, key=lambda r: row_value(metric, r), default=None)


def comparisons(result: Dict) -> List[Dict]:
    """Each qdqtool row of one model's result against the best other tool's row, and the default row against
    `--method max`, with their intervals."""
    metric, sources = result["metric"], result.get("held_out_sources")
    peer = best_peer(result["rows"], metric)
    if not sources:
        return []
    found = []
    candidates = [r for r in result["rows"] if r.get("tool") == "qdqtool" and usable(r)]
    for row in sorted(candidates, key=lambda r: "(default)" not in r["name"]) if peer else []:   # the default first
        interval = paired_interval(ratio_parts(metric, row["task"]["per_feed"]),
                                   ratio_parts(metric, peer["task"]["per_feed"]), sources)
        found.append({"candidate": row["name"], "reference": peer["name"], "metric": METRIC_LABEL[metric],
                      "seed": SEED, **asdict(interval)})
    default = next((r for r in candidates if "(default)" in r["name"]), None)
    plain = next((r for r in candidates if r["name"].startswith(MAX_ROW)), None)
    if default is not None and plain is not None and plain is not default:   # the default against no clipping
        interval = paired_interval(ratio_parts(metric, default["task"]["per_feed"]),
                                   ratio_parts(metric, plain["task"]["per_feed"]), sources)
        found.append({"candidate": default["name"], "reference": plain["name"], "metric": METRIC_LABEL[metric],
                      "seed": SEED, **asdict(interval)})
    return found


def missing_components(result: Dict) -> List[str]:
    """Rows that ran but whose per-feed components were not saved (results from before they were)."""
    missing = [r["name"] for r in result["rows"] if not r.get("error_message") and "per_feed" not in r["task"]]
    return missing + (["held-out source photos"] if not result.get("held_out_sources") else [])


def comparison_line(comparison: Dict, size: str) -> str:
    """e.g. 'qdqtool auto vs ModelOpt int8 max: F1 -0.039 [-0.081, +0.004] (within noise; 147 objects, 11 source
    images)'."""
    low, high, difference = (signed(comparison[k]) for k in ("low", "high", "difference"))
    return (f"{comparison['candidate']} vs {comparison['reference']}: {comparison['metric']} "
            f"{difference} [{low}, {high}] "
            f"({comparison['verdict']}; {size}, {comparison['sources']} source images)")


def signed(value: float) -> str:
    """+0.123 / -0.123, and +0.000 for whatever rounds to 0 (never -0.000)."""
    return f"{round(value, 3) + 0.0:+.3f}"
