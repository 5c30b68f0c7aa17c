"""Descent trials from a cut: the same outputs as a whole-model run, kept tensors valid only for the same scales."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import Builder

from qdqtool.accuracy.measure import MeasureConfig
from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, calibrate_file
from qdqtool.calibrate.search import FeedSet, Trials, scale_fed_model, scale_units
from qdqtool.calibrate.suffix import SuffixRuns
from qdqtool.onnxgraph.prepare import load_model
from qdqtool.runner import create_session

CHANNELS, SIDE, BLOCKS = 4, 8, 8


def residual_chain(early_output: bool = False):
    """BLOCKS conv+SiLU blocks with residual Adds (two tensors cross most cuts) and the input's shape (an int64
    tensor made first, read last) reshaping the output."""
    b = Builder(seed=2)
    x = b.input("x", [1, CHANNELS, SIDE, SIDE])
    shape = b.op("Shape", [x], "input_shape")
    h, outputs = x, []
    for index in range(BLOCKS):
        inner = b.silu(b.conv(h, CHANNELS, CHANNELS, f"conv{index}"))
        h = b.op("Add", [h, inner], f"add{index}") if index % 2 else inner
        if early_output and index == 0:
            outputs.append(h)
    outputs.append(b.op("Reshape", [b.conv(h, CHANNELS, CHANNELS, "head", k=1), shape], "out"))
    return b.model(outputs)


@pytest.fixture
def fed(tmp_path):
    def make(early_output: bool = False):
        path = tmp_path / "chain.onnx"
        path.write_bytes(residual_chain(early_output).SerializeToString())
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        for index in range(6):
            np.save(data / f"s{index}.npy", rng.normal(size=(1, CHANNELS, SIDE, SIDE)).astype(np.float32))
        result = calibrate_file(path, data, CalibrationOutputs(model=tmp_path / "q.onnx"),
                                CalibrationConfig(method="percentile"))
        model = load_model(path)
        units = scale_units(result.plan, result.ranges)
        return model, result.plan, units, scale_fed_model(model, result.plan, units)
    return make


def scales_for(names, amaxes):
    return {n: np.array(a / 127, np.float32) for a, group in zip(amaxes, names) for n in group}


def test_every_cut_gives_the_whole_models_outputs_exactly(fed):
    _, _, units, (model, names) = fed()
    runs = SuffixRuns(model, names)
    assert len(runs.cuts) >= 2 and [c.node for c in runs.cuts] == sorted(c.node for c in runs.cuts)
    assert all("input_shape_out" in c.crossing and len(c.crossing) >= 2 for c in runs.cuts)  # int64 and floats
    whole = create_session(runs.whole_model(), optimize=False)
    rng = np.random.default_rng(1)
    feed = {"x": rng.normal(size=(1, CHANNELS, SIDE, SIDE)).astype(np.float32)}
    amaxes = [u.candidates[0][1] * rng.uniform(0.3, 1.0) for u in units]
    given = {**feed, **scales_for(names, amaxes)}
    for index, cut in enumerate(runs.cuts):
        values = whole.run(runs.output_names + list(cut.crossing), given)
        crossing = dict(zip(cut.crossing, values[len(runs.output_names):]))
        got = runs.run(index, given, crossing)
        assert all(np.array_equal(a, b) for a, b in zip(got, values[:len(runs.output_names)]))
        moved = [u for u in range(len(units)) if runs.cut_of(u) == index]
        assert moved and all(runs.unit_node[u] >= cut.node for u in moved)


def test_kept_tensors_hold_only_for_the_same_scales_before_the_cut(fed):
    _, _, units, (model, names) = fed()
    runs = SuffixRuns(model, names)
    cut = len(runs.cuts) - 1
    amaxes = [u.candidates[0][1] for u in units]
    tensors = {"t": np.ones(3, np.float32)}
    runs.keep(cut, amaxes, 0, tensors)
    after = next(u for u in range(len(units)) if u not in runs.cuts[cut].units_before)
    before = runs.cuts[cut].units_before[0]
    assert runs.kept(cut, [a * (2 if u == after else 1) for u, a in enumerate(amaxes)], 0) is tensors
    assert runs.kept(cut, [a * (2 if u == before else 1) for u, a in enumerate(amaxes)], 0) is None
    assert runs.kept(cut, amaxes, 1) is None
    small = SuffixRuns(model, names, keep_bytes=1)
    small.keep(0, amaxes, 0, tensors)
    small.keep(1, amaxes, 0, tensors)
    assert small.kept(0, amaxes, 0) is None and small.kept(1, amaxes, 0) is tensors   # over budget: oldest dropped


def test_no_cut_after_an_output_is_made(fed):
    _, _, _, (model, names) = fed(early_output=True)
    assert SuffixRuns(model, names).cuts == []


def test_trials_from_a_cut_score_as_whole_runs(fed):
    model, plan, units, _ = fed()
    rng = np.random.default_rng(3)
    feeds = [{"x": rng.normal(size=(1, CHANNELS, SIDE, SIDE)).astype(np.float32)} for _ in range(4)]
    fp32 = create_session(model)
    references = [dict(zip([o.name for o in fp32.get_outputs()], fp32.run(None, f))) for f in feeds]
    trials = Trials(model, plan, units, FeedSet(feeds, references, MeasureConfig()))
    assert trials.suffix is not None and trials.suffix.cuts
    amaxes = [u.candidates[0][1] for u in units]
    last = len(units) - 1
    assert trials.suffix.cut_of(last) is not None
    for scale in (0.5, 0.25):   # the first keeps the crossing tensors, the second runs from the cut
        moved = [a * (scale if u == last else 1) for u, a in enumerate(amaxes)]
        from_cut, _ = trials.scores(moved, moved=last)
        whole, _ = trials.scores(moved)
        assert from_cut == whole
    assert trials.suffix._sessions   # the suffix session did run
