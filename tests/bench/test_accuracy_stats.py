"""The accuracy bench's paired bootstrap: intervals over source photos on small hand-made per-feed counts."""

from __future__ import annotations

import numpy as np
import pytest

from bench.accuracy_stats import (
    best_peer,
    comparison_line,
    comparisons,
    missing_components,
    paired_interval,
    resample_counts,
    verdict,
)


def parts(numerators, denominators=None):
    numerator = np.asarray(numerators, dtype=float)
    return numerator, np.ones_like(numerator) if denominators is None else np.asarray(denominators, dtype=float)


def test_a_candidate_worse_on_every_photo_is_worse_and_the_interval_excludes_0():
    sources = [f"photo{i}" for i in range(12) for _ in range(3)]
    candidate = parts([5, 4, 6] * 12, [10] * 36)     # F1-like ratios: about 0.5 on every photo
    reference = parts([9, 10, 9] * 12, [10] * 36)    # about 0.93
    interval = paired_interval(candidate, reference, sources)
    assert interval.high < 0 and interval.verdict == "worse"
    assert interval.difference == pytest.approx(15 / 30 - 28 / 30)
    assert interval.low <= interval.difference <= interval.high
    assert interval.sources == 12


def test_a_candidate_better_on_some_photos_and_worse_on_others_is_within_noise():
    sources = [f"photo{i}" for i in range(10) for _ in range(2)]
    # top-1 agreement per feed: the candidate wins 3 feeds on photos 0-2, loses 3 on photos 5-7
    candidate = parts([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1])
    reference = parts([0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    interval = paired_interval(candidate, reference, sources)
    assert interval.difference == 0
    assert interval.low < 0 < interval.high and interval.verdict == "within noise"


def test_the_feeds_of_one_photo_are_resampled_together():
    # on every photo the candidate gains one feed and loses another: photo totals agree, so every photo-level
    # resample gives a difference of exactly 0 (a feed-level resample would not)
    sources = ["a", "a", "b", "b", "c", "c", "d", "d"]
    candidate = parts([1, 0] * 4)
    reference = parts([0, 1] * 4)
    interval = paired_interval(candidate, reference, sources)
    assert (interval.low, interval.high, interval.verdict) == (0, 0, "within noise")
    assert interval.sources == 4


def test_the_metric_is_recomputed_from_summed_counts_not_averaged_per_feed():
    # one feed with 100 objects all matched, one with 1 object missed: F1 from sums is 100/101, not 0.5
    sources = ["a", "b"]
    candidate, reference = parts([100, 0], [100, 1]), parts([0, 0], [100, 1])
    interval = paired_interval(candidate, reference, sources, resamples=200)
    assert interval.difference == pytest.approx(100 / 101)


def test_a_resample_draws_as_many_photos_as_there_are_and_the_seed_fixes_it():
    counts = resample_counts(7, 50, seed=3)
    assert counts.shape == (50, 7) and (counts.sum(1) == 7).all()
    assert (counts == resample_counts(7, 50, seed=3)).all() and not (counts == resample_counts(7, 50, 4)).all()


def test_mismatched_components_are_refused():
    with pytest.raises(ValueError, match="must match"):
        paired_interval(parts([1, 0]), parts([1, 0, 1]), ["a", "b"])


def test_verdict_needs_the_whole_interval_on_one_side():
    assert verdict(-0.2, -0.01) == "worse"
    assert verdict(0.01, 0.2) == "better"
    assert verdict(-0.2, 0.0) == verdict(0.0, 0.0) == verdict(-0.1, 0.1) == "within noise"


def row(name, tool, agree, error=None):
    if error:
        return {"name": name, "tool": tool, "error_message": error}
    return {"name": name, "tool": tool, "task": {"per_feed": {"agree": agree}}}


def test_the_best_peer_is_the_best_other_tool_by_the_metric_ignoring_failures_and_qdqtool_rows():
    rows = [{"name": "FP32", "task": {"per_feed": {"agree": [1, 1, 1, 1]}}},
            row("ORT", "ort", [0, 0, 1, 1]), row("ORT broken", "ort", None, error="exit 1"),
            row("ModelOpt max", "modelopt", [1, 0, 1, 1]), row("qdqtool max", "qdqtool", [1, 1, 1, 1])]
    assert best_peer(rows, "top1")["name"] == "ModelOpt max"
    assert best_peer(rows[:1] + rows[4:], "top1") is None


def test_every_qdqtool_row_is_compared_with_the_best_peer_and_printed_with_its_interval():
    result = {"metric": "top1", "held_out_sources": ["a", "a", "b", "b", "c", "c"],
              "rows": [row("ORT", "ort", [1, 1, 1, 1, 1, 1]), row("qdqtool auto", "qdqtool", [0, 0, 0, 0, 0, 0]),
                       row("qdqtool max", "qdqtool", [1, 1, 1, 1, 1, 1])]}
    found = comparisons(result)
    assert [(c["candidate"], c["reference"], c["verdict"]) for c in found] == [
        ("qdqtool auto", "ORT", "worse"), ("qdqtool max", "ORT", "within noise")]
    assert comparison_line(found[0], "6 feeds") == (
        "qdqtool auto vs ORT: top-1 -1.000 [-1.000, -1.000] (worse; 6 feeds, 3 source images)")


def test_results_saved_without_components_have_no_comparisons_and_say_what_is_missing():
    result = {"metric": "top1", "rows": [{"name": "ORT", "tool": "ort", "task": {"top1_agree": 3}},
                                         row("qdqtool", "qdqtool", [1, 1])]}
    assert comparisons(result) == []
    assert missing_components(result) == ["ORT", "held-out source photos"]


def test_draws_with_nothing_to_compare_are_left_out_not_counted_as_agreement():
    # F1-like counts: objects on 3 of 12 photos, all missed by the candidate; a draw without those photos has no
    # object at all (F1 undefined), and must not count as a difference of 0
    sources = [f"photo{i}" for i in range(12)]
    candidate = parts([0, 0, 0] + [0] * 9, [2, 3, 2] + [0] * 9)
    reference = parts([4, 6, 4] + [0] * 9, [4, 6, 4] + [0] * 9)
    interval = paired_interval(candidate, reference, sources)
    assert (interval.low, interval.high, interval.verdict) == (-1, -1, "worse")
    assert 0 < interval.resamples < 2000


def test_nothing_to_compare_anywhere_is_no_difference():
    interval = paired_interval(parts([0, 0], [0, 0]), parts([0, 0], [0, 0]), ["a", "b"])
    assert (interval.difference, interval.low, interval.high, interval.resamples) == (0, 0, 0, 0)


def test_a_difference_that_rounds_to_0_prints_as_plus_0():
    line = comparison_line({"candidate": "a", "reference": "b", "metric": "F1", "difference": -1e-17,
                            "low": -0.0004, "high": 0.25, "verdict": "within noise", "sources": 2}, "3 objects")
    assert line == "a vs b: F1 +0.000 [+0.000, +0.250] (within noise; 3 objects, 2 source images)"
