"""Property-based tests on random convolutional graphs (tests/random_graphs.py): calibrate and fix-residuals always
give a model that passes onnx.checker, runs in ONNX Runtime close to float, keeps the placement rules `check`
verifies, and is a fixed point of fix-residuals.

Bounded in `make test` (the "ci" profile in tests/conftest.py: a fixed seed, 25 graphs per property);
`make fuzz` runs the "fuzz" profile (HYPOTHESIS_PROFILE=fuzz, 400 graphs per property, random seeds).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import tiny
import tiny_qdq
from hypothesis import given
from hypothesis import strategies as st
from random_graphs import draw_model

from qdqtool.calibrate.pipeline import CalibrationConfig, calibrate_model
from qdqtool.check.predict import check_model
from qdqtool.onnxgraph.prepare import prepare_float_model
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.repair.pipeline import DataConfig, fix_model
from qdqtool.repair.plan import FixConfig
from qdqtool.runner import create_session

pytestmark = pytest.mark.fuzz

MAX_RELATIVE_ERROR = 0.35   # relative L2 output error of int8 vs float (random weights, depth <= 15)
FIX_ERROR_MARGIN = 0.05     # fix-residuals vs quantize_static's own error (one shared Concat scale may cost a little)
FLOAT_KINDS = {"float-conv", "float-add", "float-concat", "requant-concat", "scale-mismatch", "reformat"}


class MemorySamples:
    """Random feeds with the SampleSet interface calibrate_model uses (len, iteration, batches, samples_at, sources)."""

    dynamic_batch = False   # one feed per run

    def __init__(self, model: onnx.ModelProto, count: int, seed: int):
        self.feeds = [tiny.random_feed(model, seed + index) for index in range(count)]

    def __len__(self) -> int:
        return len(self.feeds)

    def __iter__(self):
        return iter(self.feeds)

    def batches(self, batch_size: int):
        return iter(self.feeds)

    def samples_at(self, indices):
        return [self.feeds[i] for i in indices]

    def sources(self):
        return [f"feed{index}" for index in range(len(self.feeds))]   # every feed its own image


def relative_error(reference: onnx.ModelProto, candidate: onnx.ModelProto, feeds) -> float:
    """The worst output's relative L2 error over all the feeds together (||candidate - reference|| / ||reference||
    on the outputs of every feed at once). Not per feed: a feed whose output happens to be near zero (a Gemm head
    with norm 0.11 where the other feeds give 0.5-7) makes the ratio explode on an ordinary absolute error (a shrunk
    case: 0.52 on that feed, 0.01-0.13 on the others, with the same absolute error as theirs)."""
    first, second = create_session(reference, optimize=False), create_session(candidate, optimize=False)
    diff: Counter = Counter()
    norm: Counter = Counter()
    for feed in feeds:
        for index, (a, b) in enumerate(zip(first.run(None, feed), second.run(None, feed))):
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            diff[index] += float(np.sum((b64 - a64) ** 2))
            norm[index] += float(np.sum(a64 ** 2))
    return max(float(np.sqrt(diff[i]) / (np.sqrt(norm[i]) + 1e-6)) for i in diff)


def assert_fixed_point(model: onnx.ModelProto, data: DataConfig) -> None:
    again = fix_model(read_qdq(model), FixConfig(), data)
    assert again.plan.edits == (), [f"{e.kind} {e.node}: {e.reason}" for e in again.plan.edits]


def sample_folder(model: onnx.ModelProto, folder: Path, count: int = 4, seed: int = 50) -> Path:
    for index, feed in enumerate(MemorySamples(model, count, seed=seed)):
        np.save(folder / f"s{index}.npy", feed["x"])
    return folder


@pytest.mark.xfail(reason="known gap (issue 21): against the new engine model, calibrate leaves a standalone skip DQ "
                          "that a float op reads on some random graphs", run=False)
@given(st.data())
def test_calibrated_random_graphs_keep_the_rules(data):
    """Accuracy is judged on the calibration samples themselves: every activation the quantized model sees then
    lies in the range its observers saw, so an error above the tolerance is a placement or scale fault. Held-out
    random draws are not used: with 6 samples a fresh draw can exceed the calibrated range (a shrunk case peaked
    at 2.31 where the 6 samples peaked at 1.56) and clipping it is what PTQ does by design, not a bug. The fixed
    point is checked with fix-residuals on those samples too: on other draws a Concat's input ranges can cross the
    spread limit (7.96x on the calibration samples, 10.2x on others in a shrunk case) and the Concat's decision
    with them."""
    model = draw_model(data.draw)
    onnx.checker.check_model(model)
    prepared, _ = prepare_float_model(model)
    samples = MemorySamples(prepared, 6, seed=0)
    result = calibrate_model(prepared, samples, CalibrationConfig())
    onnx.checker.check_model(result.model, full_check=True)
    assert relative_error(prepared, result.model, samples.feeds) <= MAX_RELATIVE_ERROR
    report = check_model(read_qdq(result.model), result.plan.config)
    counts = report.counts()
    # every standalone Q/DQ left is a float -> INT8 boundary (a float op's output, a graph output's tensor), the one
    # Reformat such a boundary costs, or (a known gap of placement, issue 21) the skip DQ of a residual Add whose
    # output a float op reads: the group writes float and the DQ runs alone. Never a float reader that could take a
    # Q, nor a float skip.
    assert counts["requant-concat"] == 0, report.to_json()["findings"]
    causes = {f.cause for f in report.of_kind("reformat")}
    assert causes <= {"float-boundary", "float-consumer"}, report.to_json()["findings"]
    by_node = {f.node: f for f in report.findings}
    for decision in result.plan.decisions:
        finding = by_node.get(decision.node)
        if decision.outcome in ("int8", "fused-int8") and finding is not None:
            assert finding.kind not in FLOAT_KINDS, (decision, finding)
    with tempfile.TemporaryDirectory() as folder:   # fix-residuals on the same samples: the same Concat ranges
        assert_fixed_point(result.model, DataConfig(data_dir=sample_folder(prepared, Path(folder), 6, seed=0)))


@pytest.mark.xfail(reason="known gap (issue 21): fix-residuals keeps a Q/DQ on the output of an op it leaves float "
                          "(behind a spread Concat), a standalone Q the new engine model counts", run=False)
@given(st.data())
def test_fixed_quantize_static_random_graphs(data):
    """Fixing may not cost accuracy quantize_static had, judged on the samples both calibrated on (tiny_qdq's
    reader draws seeds 0-3, the fix's data folder gets the same): held-out random draws can exceed the calibrated
    ranges, and then removing a Q that clipped early moves where they clip (a shrunk case, kept in
    test_random_graph_cases: 0.16 -> 0.24 on one held-out feed)."""
    model = draw_model(data.draw)
    prepared, _ = prepare_float_model(model)
    static = tiny_qdq.ort_static(prepared)
    with tempfile.TemporaryDirectory() as folder:
        config = DataConfig(data_dir=sample_folder(prepared, Path(folder), seed=0))
        result = fix_model(read_qdq(static), FixConfig(), config)
        fixed = result.model or static
        onnx.checker.check_model(fixed, full_check=True)
        feeds = MemorySamples(prepared, 4, seed=0).feeds
        assert relative_error(prepared, fixed, feeds) <= relative_error(prepared, static, feeds) + FIX_ERROR_MARGIN
        report = check_model(read_qdq(fixed))
        after, before = report.counts(), result.plan.before.counts()
        # never worse on any gate but float-concat (making a spread Concat float is a repair), apart from the ops
        # left float on purpose: a Q there would be hoisted onto a spread Concat's inputs (test_random_graph_cases)
        on_purpose = Counter(f.gate for f in report.findings if f.cause == "hoisted-onto-float-concat")
        assert all(after[gate] - on_purpose[gate] <= before[gate] for gate in after if gate != "float-concat"), (
            before, after, on_purpose)
        assert_fixed_point(fixed, config)
