"""`--method auto` on a tiny model: two tensors with the same statistics, whose outliers matter downstream for one
(the output shows them) and not for the other (a Clip after the conv hides them). Auto must treat them differently."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from tiny import Builder

from qdqtool.accuracy.measure import MeasureConfig, ReferenceMeter
from qdqtool.calibrate.observers import CANDIDATES, make_observer
from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, calibrate_file
from qdqtool.calibrate.search import (
    FeedSet,
    SearchConfig,
    Trials,
    choose_start,
    drawn_order,
    holdout_indices,
    scale_fed_model,
    scale_units,
    search_indices,
    search_score,
    start_indices,
)
from qdqtool.onnxgraph.prepare import load_model
from qdqtool.placement.apply import apply_plan
from qdqtool.placement.plan import group_amax
from qdqtool.runner import create_session

SIDE = 64
OUTLIER = 50.0


def two_branches():
    """a = Conv1x1(xa * 1) (outliers reach the output); b = Clip(Conv1x1(xb * 1), -0.5, 0.5) (outliers clipped)."""
    b = Builder()
    one = b.const(np.array(1.0, np.float32), "one")
    identity = b.const(np.ones((1, 1, 1, 1), np.float32))
    outputs = []
    for name in ("a", "b"):
        x = b.input(f"x{name}", [None, 1, SIDE, SIDE])
        inner = b.op("Mul", [x, one], f"scale_{name}")
        conv = b.op("Conv", [inner, identity], f"conv_{name}")
        outputs.append(conv if name == "a" else b.op("Clip", [conv, b.const(np.array(-0.5, np.float32)),
                                                             b.const(np.array(0.5, np.float32))], "clip_b"))
    return b.model(outputs)


def heavy_tailed(rng, shape):
    """Gaussian bulk (sigma 0.25) with rare large outliers (0.05% of values), the same law for both inputs."""
    values = rng.normal(0.0, 0.25, shape).astype(np.float32)
    mask = rng.random(shape) < 0.0005
    values[mask] = rng.choice([-1.0, 1.0], mask.sum()) * rng.uniform(0.6 * OUTLIER, OUTLIER, mask.sum())
    return values


@pytest.fixture
def model_and_data(tmp_path):
    model = two_branches()
    path = tmp_path / "two.onnx"
    path.write_bytes(model.SerializeToString())
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for index in range(12):
        np.savez(data / f"s{index:02d}.npz", xa=heavy_tailed(rng, (1, 1, SIDE, SIDE)),
                 xb=heavy_tailed(rng, (1, 1, SIDE, SIDE)))
    return path, data


def test_auto_keeps_outliers_that_reach_the_output_and_clips_those_that_do_not(model_and_data, tmp_path):
    path, data = model_and_data
    ranges_path = tmp_path / "two.ranges.json"
    result = calibrate_file(path, data, CalibrationOutputs(model=tmp_path / "q.onnx", ranges=ranges_path),
                            CalibrationConfig())   # auto is the default
    ranges = result.ranges
    kept, clipped = ranges["scale_a_out"], ranges["scale_b_out"]
    assert kept.observed_max > 0.5 * OUTLIER and clipped.observed_max > 0.5 * OUTLIER   # same statistics
    assert kept.amax >= 0.9 * kept.observed_max, kept
    assert clipped.amax <= 0.1 * clipped.observed_max, clipped
    assert kept.method != clipped.method and kept.method.startswith("auto: ")
    # every local (per-tensor) rule gives both tensors the same kind of range: it cannot tell them apart
    for name in CANDIDATES:
        sides = {dict(r.candidates)[name] > 0.5 * r.observed_max for r in (kept, clipped)}
        assert len(sides) == 1, name
    summary = result.summary()["auto"]
    assert sum(summary["scales_by_candidate"].values()) == 2
    assert summary["search_error"][1] < summary["search_error"][0]
    saved = {r["tensor"]: r for r in json.loads(ranges_path.read_text())["ranges"]}
    assert saved["scale_b_out"]["method"] == clipped.method
    assert set(saved["scale_b_out"]["candidates"]) == set(CANDIDATES)


def percentile_units(path, data):
    """The model, its percentile calibration and the scale units of its plan."""
    result = calibrate_file(path, data, CalibrationOutputs(model=path.with_name("q.onnx")),
                            CalibrationConfig(method="percentile"))
    return load_model(path), result, scale_units(result.plan, result.ranges)


def test_scale_fed_model_matches_the_applied_model(model_and_data):
    model, result, units = percentile_units(*model_and_data)
    fed, names = scale_fed_model(model, result.plan, units)
    amax = group_amax(result.plan, {t: r.amax for t, r in result.ranges.items()})
    rng = np.random.default_rng(3)
    feed = {"xa": heavy_tailed(rng, (1, 1, SIDE, SIDE)), "xb": heavy_tailed(rng, (1, 1, SIDE, SIDE))}
    scales = {n: np.array(amax[u.tensors[0]] / 127, np.float32) for u, group in zip(units, names) for n in group}
    expected = create_session(apply_plan(model, result.plan, amax), optimize=False).run(None, feed)
    got = create_session(fed, optimize=False).run(None, {**feed, **scales})
    assert len(scales) == 2 and not any(t.name in scales for t in fed.graph.initializer)
    assert isinstance(fed, onnx.ModelProto)
    for want, have in zip(expected, got):
        np.testing.assert_allclose(have, want, rtol=1e-6, atol=1e-6)


def test_candidate_observer_gives_every_candidate_ordered_by_clipping():
    rng = np.random.default_rng(1)
    observer = make_observer("auto")
    for _ in range(3):
        observer.update(heavy_tailed(rng, (4096,)))
    candidates = observer.candidates()
    assert tuple(candidates) == CANDIDATES
    assert candidates["max"] == observer.observed_max
    assert candidates["p99.9"] <= candidates["p99.99"] <= candidates["p99.999"] <= candidates["max"]
    assert observer.amax() == candidates["p99.99"]


def test_sample_sets_are_disjoint_reproducible_and_do_not_alias_with_periodic_folders():
    config = SearchConfig()
    search, holdout = search_indices(64, config), holdout_indices(64, config)
    assert (len(search), len(holdout)) == (config.search_samples, config.holdout_samples)
    assert not set(search) & set(holdout)
    assert search == search_indices(64, config) and sorted(drawn_order(64)) == list(range(64))
    # a folder of 16 photos x (strip 1, strip 2, both turned): evenly spaced indices took strip 1 upright only
    assert len({i % 4 for i in search}) >= 3, search   # evenly spaced: 1 kind
    start = start_indices(64, config)
    assert len(start) == config.start_samples and set(search) <= set(start)
    assert {i % 4 for i in start[0::2]} == {i % 4 for i in start[1::2]} == {0, 1, 2, 3}
    assert search_indices(3, config) == [0, 1, 2] and holdout_indices(3, config) == []
    assert len(holdout_indices(10, config)) == 10 - config.search_samples
    assert sorted(start_indices(10, config)) == list(range(10))


def test_start_stays_max_unless_a_candidate_wins_on_both_halves():
    max_scores = (0.30, 0.30, 0.30)
    # better on the whole, but only thanks to one half: noise, not a reason to clip
    assert choose_start({"max": max_scores, "p99.9": (0.25, 0.10, 0.40), "mse": (0.31, 0.29, 0.33)}) == "max"
    # two candidates beat max everywhere: the better on the whole
    assert choose_start({"max": max_scores, "p99.9": (0.20, 0.21, 0.19), "mse": (0.22, 0.18, 0.26)}) == "p99.9"
    assert choose_start({"max": max_scores, "entropy": (0.30, 0.29, 0.29)}) == "max"   # a tie is no win
    # not better on the first half: not run on the second, never chosen
    assert choose_start({"max": max_scores, "mse": (None, 0.31, None), "p99.9": (0.2, 0.2, 0.2)}) == "p99.9"
    assert choose_start({"max": max_scores, "mse": (None, 0.31, None)}) == "max"


def test_a_trial_worse_on_the_first_half_is_not_run_on_the_second(model_and_data):
    model, result, units = percentile_units(*model_and_data)
    rng = np.random.default_rng(4)
    feeds = [{"xa": heavy_tailed(rng, (1, 1, SIDE, SIDE)), "xb": heavy_tailed(rng, (1, 1, SIDE, SIDE))}
             for _ in range(4)]
    fp32 = create_session(model)
    references = [dict(zip([o.name for o in fp32.get_outputs()], fp32.run(None, feed))) for feed in feeds]
    trials = Trials(model, result.plan, units, FeedSet(feeds, references, MeasureConfig()))
    runs = []
    session_run = trials.session.run
    trials.session.run = lambda names, feed: runs.append(1) or session_run(names, feed)
    clipped = [0.05 * u.amax("max") for u in units]   # most values saturate
    scores, outputs = trials.scores(clipped)
    assert len(runs) == 4 and len(outputs) == 4 and None not in scores
    assert scores[0] == pytest.approx(search_score(ReferenceMeter(references), outputs))
    assert scores[1] == pytest.approx(search_score(ReferenceMeter(references[0::2]), outputs[0::2]))
    assert scores[2] == pytest.approx(search_score(ReferenceMeter(references[1::2]), outputs[1::2]))
    stopped, nothing = trials.scores(clipped, go_on=lambda first: first < scores[1])
    assert (stopped, nothing) == ((None, scores[1], None), None) and len(runs) == 6   # the first half only
    assert trials.scores([u.amax("max") for u in units])[0][0] != scores[0] and trials.count == 3


def test_max_error_keeps_the_fewest_harmful_quantizers_float(model_and_data, tmp_path):
    """entropy clips both tensors' outliers: only the branch whose outliers reach the output must go float."""
    path, data = model_and_data
    plain = calibrate_file(path, data, CalibrationOutputs(model=tmp_path / "p.onnx"),
                           CalibrationConfig(method="entropy"))
    result = calibrate_file(path, data, CalibrationOutputs(model=tmp_path / "t.onnx"),
                            CalibrationConfig(method="entropy", max_error=0.05))
    target = result.target
    assert target.error_before > 0.05 >= target.error_after and target.met
    assert target.kept == ("scale_a_out",)
    assert target.convs_before == (2, 2) and target.convs_after == (1, 2)
    floats = {d.node for d in result.plan.decisions if d.rule == "weighted" and d.outcome == "float"}
    assert floats == {"conv_a"} and all(d.outcome == "int8" for d in plain.plan.decisions if d.rule == "weighted")
    assert result.summary()["max_error"]["int8_convs_after"] == [1, 2]


def test_max_error_goes_as_far_as_the_ranking_when_needed(model_and_data, tmp_path):
    """A target only FP32 activations meet (the identity weights quantize exactly): every quantizer goes float."""
    path, data = model_and_data
    result = calibrate_file(path, data, CalibrationOutputs(model=tmp_path / "t.onnx"),
                            CalibrationConfig(method="entropy", max_error=1e-9))
    assert result.target.met and set(result.target.kept) == {"scale_a_out", "scale_b_out"}
    assert result.target.convs_after == (0, 2) and result.target.error_after <= 1e-9
