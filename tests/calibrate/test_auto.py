"""`--method auto` on a tiny model: two tensors with the same statistics, whose outliers matter downstream for one
(the output shows them) and not for the other (a Clip after the conv hides them). Auto must treat them differently."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from tiny import Builder

from qdqtool.accuracy.measure import MeasureConfig, ReferenceMeter
from qdqtool.calibrate.auto import auto_lines
from qdqtool.calibrate.folds import (
    cross_validated,
    drawn_order,
    fold_count,
    fold_positions,
    search_indices,
    start_indices,
    unseen_indices,
)
from qdqtool.calibrate.observers import CANDIDATES, make_observer
from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, calibrate_file
from qdqtool.calibrate.search import FeedSet, Trials, scale_fed_model, scale_units, search_score
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
    # the clip helps on every fold of 12 independent samples: taken, with how sure it was, in the summary and file
    reason = next(r for r in summary["clipped"] if r["tensors"] == ["scale_b_out"])
    assert reason["candidate"] == clipped.method.split(": ")[1]
    assert reason["observed_max"] == pytest.approx(clipped.observed_max) and reason["amax"] < reason["observed_max"]
    assert reason["cv_gain"] > reason["cv_spread"] >= 0 and min(reason["fold_gains"]) > 0
    shown = [line for line in auto_lines(summary) if "clipped: scale_b_out:" in line]
    assert len(shown) == 1 and f"gain {100 * reason['cv_gain']:.1f}%" in shown[0] and "-> amax" in shown[0]
    saved = {r["tensor"]: r for r in json.loads(ranges_path.read_text())["ranges"]}
    assert saved["scale_b_out"]["method"] == clipped.method
    assert saved["scale_b_out"]["cv_gain"] == pytest.approx(reason["cv_gain"])
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


def test_sample_sets_keep_each_source_image_whole_and_do_not_alias_with_periodic_folders():
    # a folder of 16 photos x (strip 1, strip 2, both turned): evenly spaced indices took strip 1 upright only
    strips = [f"photo{i // 4}" for i in range(64)]
    search = search_indices(strips, 8)
    assert len(search) == 8 and len({strips[i] for i in search}) == 8   # one sample of each of 8 photos
    assert len({i % 4 for i in search}) >= 3, search
    assert search == search_indices(strips, 8) and sorted(drawn_order(64)) == list(range(64))
    start = start_indices(strips, search, 32)
    assert start[:8] == search and len(start) >= 32 and len(set(start)) == len(start)
    whole = {strips[i] for i in start[8:]} - {strips[i] for i in search}
    assert all(sum(strips[j] == photo for j in start) == 4 for photo in whole)   # whole photos, never part of one
    unseen = unseen_indices(strips, search, 4)
    assert len(unseen) == 4 and not {strips[i] for i in unseen} & {strips[i] for i in search}
    assert unseen_indices([f"p{i}" for i in range(3)], search_indices([f"p{i}" for i in range(3)], 8), 4) == []


def test_folds_keep_crops_of_one_image_together_and_need_enough_images():
    sources = ["a", "b", "a", "c", "d", "b", "e", "f"]
    folds = fold_positions(sources, 3)
    assert sorted(p for f in folds for p in f) == list(range(8))
    for fold in folds:
        for other in folds:
            assert fold is other or not {sources[p] for p in fold} & {sources[p] for p in other}
    assert fold_count(sources, 4, 3) == 3    # 6 images: 3 folds of 2
    assert fold_count(sources[:5], 4, 3) == 0   # 4 images: too few to tell a gain from noise
    assert fold_count([f"p{i}" for i in range(12)], 4, 3) == 4


def test_a_change_needs_a_held_out_gain_above_the_spread_across_folds():
    current = (0.30, 0.30, 0.30, 0.30)
    steady = cross_validated(current, {"p99.9": (0.20, 0.21, 0.19, 0.20), "mse": (0.25, 0.25, 0.25, 0.25)}, 0.005)
    assert steady.chosen == "p99.9" and steady.gain > steady.spread > 0
    # a large win on one fold, small losses on the others: better on the whole, but noise
    lucky = cross_validated(current, {"p99.9": (0.05, 0.31, 0.31, 0.31)}, 0.005)
    assert lucky.chosen is None and lucky.gain < lucky.spread
    mixed = cross_validated(current, {"p99.9": (0.20, 0.20, 0.20, 0.40)}, 0.005)   # the fourth image disagrees
    assert mixed.chosen is None
    assert cross_validated(current, {"mse": (0.30, 0.299, 0.30, 0.30)}, 0.005).chosen is None   # a tie is no win
    assert cross_validated(current, {}, 0.005).chosen is None


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
    assert len(runs) == 4 and len(outputs) == 4 and scores.complete
    assert scores.whole == pytest.approx(np.mean(scores.folds))
    assert scores.folds[0] == pytest.approx(search_score(ReferenceMeter(references[0::2]), outputs[0::2]))
    assert scores.folds[1] == pytest.approx(search_score(ReferenceMeter(references[1::2]), outputs[1::2]))
    stopped, nothing = trials.scores(clipped, go_on=lambda first: first < scores.folds[0])
    assert (stopped.folds, stopped.whole, nothing) == ((scores.folds[0], None), None, None)
    assert len(runs) == 6   # the first fold only
    assert trials.scores([u.amax("max") for u in units])[0].whole != scores.whole and trials.count == 3


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


def single_conv():
    """y = Conv1x1(x * 1): every value of the quantized tensor reaches the output."""
    b = Builder()
    one = b.const(np.array(1.0, np.float32), "one")
    x = b.input("x", [None, 1, SIDE, SIDE])
    return b.model([b.op("Conv", [b.op("Mul", [x, one], "scale"), b.const(np.ones((1, 1, 1, 1), np.float32))],
                         "conv")])


def with_dark_spots(rng, spots: bool):
    """Gaussian bulk (sigma 0.25); with spots, 0.3% of the values at -2..-6 (one photo's dark details)."""
    values = rng.normal(0.0, 0.25, (1, 1, SIDE, SIDE)).astype(np.float32)
    if spots:
        where = rng.choice(SIDE * SIDE, int(0.003 * SIDE * SIDE), replace=False)
        values.reshape(-1)[where] = -rng.uniform(2.0, 6.0, len(where))
    return values


def test_auto_keeps_max_when_a_clip_helps_the_calibration_samples_but_not_across_their_images(tmp_path):
    """Nine plain photos and one photo with dark details (3 crops, named as write_augmented_crops names them): a clip
    beats max on the 12 samples as a whole and on both halves of them (the evidence auto used to take), but the
    fold holding the detailed photo disagrees, and on held-out photos like it the clip is worse. Auto keeps max."""
    path, data = tmp_path / "conv.onnx", tmp_path / "data"
    path.write_bytes(single_conv().SerializeToString())
    data.mkdir()
    rng = np.random.default_rng(0)
    for index in range(9):
        np.save(data / f"plain{index}.npy", with_dark_spots(rng, False))
    for index in range(3):
        np.save(data / f"crop_{index:05d}__detailed.npy", with_dark_spots(rng, True))
    held = [{"x": with_dark_spots(rng, True)} for _ in range(4)]
    result = calibrate_file(path, data, CalibrationOutputs(model=tmp_path / "q.onnx"), CalibrationConfig())
    chosen = result.ranges["scale_out"]
    assert chosen.method == "auto: max" and chosen.amax == chosen.observed_max
    assert result.summary()["auto"]["clipped"] == [] and result.summary()["auto"]["note"] == ""
    # what the clip does: better on the calibration samples and both their halves, worse on held-out photos
    model, units = load_model(path), scale_units(result.plan, result.ranges)
    names = [o.name for o in model.graph.output]
    feeds = [{"x": np.load(p)} for p in sorted(data.glob("*.npy"))]
    fp32 = create_session(model)
    references = [dict(zip(names, fp32.run(None, f))) for f in feeds]
    held_references = [dict(zip(names, fp32.run(None, f))) for f in held]
    trials = Trials(model, result.plan, units, FeedSet(feeds, references, MeasureConfig()))
    whole, held_out = ReferenceMeter(references), ReferenceMeter(held_references)

    def judged(amax):   # (on all samples, on each half, on the held-out photos)
        halves, outputs = trials.scores([amax])
        return search_score(whole, outputs), halves.folds, search_score(held_out, trials.outputs([amax], held))

    plain = judged(units[0].amax("max"))
    helped = [(name, judged(amax)) for name, amax in units[0].candidates]
    helped = [(name, j) for name, j in helped if j[0] < 0.99 * plain[0] and all(
        s < m for s, m in zip(j[1], plain[1]))]
    assert helped and all(j[2] > 1.05 * plain[2] for _, j in helped), helped


def test_too_few_source_images_keep_max_and_say_so(tmp_path):
    path, data = tmp_path / "conv.onnx", tmp_path / "data"
    path.write_bytes(single_conv().SerializeToString())
    data.mkdir()
    rng = np.random.default_rng(1)
    for photo in range(4):   # 4 photos x 3 crops: 12 samples, but only 4 images
        for crop in range(3):
            np.save(data / f"crop_{crop:05d}__photo{photo}.npy", heavy_tailed(rng, (1, 1, SIDE, SIDE)))
    result = calibrate_file(path, data, CalibrationOutputs(model=tmp_path / "q.onnx"), CalibrationConfig())
    assert result.ranges["scale_out"].amax == result.ranges["scale_out"].observed_max
    summary = result.summary()["auto"]
    assert "4 source images are too few" in summary["note"] and summary["trials"] == 0 and not summary["clipped"]
    assert any("too few" in line for line in auto_lines(summary))
