"""The output error measure on data where the worst channel is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from qdqtool.accuracy.measure import (
    MeasureConfig,
    OutputErrorMeter,
    ReferenceMeter,
    choose_channel_axis,
    headline_error,
)
from qdqtool.errors import DataError


def detector_output(rng: np.random.Generator, anchors: int = 600, classes: int = 8) -> np.ndarray:
    """A YOLO-like [1, 4 + classes, anchors]: coordinates 0..320, class scores 0..1."""
    boxes = rng.uniform(0, 320, size=(1, 4, anchors))
    scores = rng.uniform(0, 1, size=(1, classes, anchors)) ** 4
    return np.concatenate([boxes, scores], axis=1).astype(np.float32)


def test_one_destroyed_channel_fails_the_headline_while_whole_tensor_cosine_stays_high():
    rng = np.random.default_rng(0)
    reference = detector_output(rng)
    candidate = reference.copy()
    candidate[0, 6] = 0.0                 # class 2's scores destroyed; every other channel exact
    meter = OutputErrorMeter()
    meter.add({"out": reference}, {"out": candidate})
    summary = meter.result()
    out = summary.outputs["out"]
    assert out.cosine > 0.999
    assert out.channel_axis == 1 and out.channels == 12
    assert out.worst_channel == 6
    assert summary.headline > 0.3
    assert out.sqnr_db > 30


def test_identical_outputs_measure_zero():
    rng = np.random.default_rng(1)
    reference = detector_output(rng)
    assert headline_error([{"out": reference}], [{"out": reference.copy()}]) == 0.0


def test_headline_grows_with_the_damage_and_takes_the_worst_output():
    rng = np.random.default_rng(2)
    reference = detector_output(rng)
    errors = []
    for noise in (0.001, 0.01, 0.1):
        damaged = reference + noise * rng.standard_normal(reference.shape).astype(np.float32)
        errors.append(headline_error([{"a": reference, "b": reference}], [{"a": reference, "b": damaged}]))
    assert errors[0] < errors[1] < errors[2]


def test_channel_axis_is_picked_from_the_data_in_either_layout():
    rng = np.random.default_rng(3)
    channels_first = detector_output(rng)
    assert choose_channel_axis(channels_first) == 1
    assert choose_channel_axis(np.transpose(channels_first, (0, 2, 1))) == 2
    assert choose_channel_axis(rng.standard_normal((1, 1000))) is None          # class logits: one channel
    assert choose_channel_axis(rng.uniform(size=(1, 1, 64, 64))) is None         # one-channel map


def test_uniform_channels_are_one_channel():
    rng = np.random.default_rng(4)
    assert choose_channel_axis(rng.standard_normal((1, 16, 500))) is None


def test_override_names_the_channel_axis():
    rng = np.random.default_rng(5)
    reference = rng.standard_normal((2, 16, 500)).astype(np.float32)
    candidate = reference.copy()
    candidate[:, 3] += 1.0
    meter = OutputErrorMeter(MeasureConfig(channel_axes={"out": 1}))
    meter.add({"out": reference}, {"out": candidate})
    out = meter.result().outputs["out"]
    assert out.channel_axis == 1 and out.worst_channel == 3


def test_streaming_in_batches_of_any_size_equals_one_batch():
    rng = np.random.default_rng(6)
    reference = np.concatenate([detector_output(rng) for _ in range(6)])
    candidate = reference + 0.01 * rng.standard_normal(reference.shape)
    whole = OutputErrorMeter()
    whole.add({"out": reference}, {"out": candidate})
    pieces = OutputErrorMeter(MeasureConfig(channel_axes={"out": 1}))
    for start, stop in ((0, 1), (1, 4), (4, 6)):
        pieces.add({"out": reference[start:stop]}, {"out": candidate[start:stop]})
    a, b = whole.result(), pieces.result()
    assert a.samples == b.samples == 6
    assert b.headline == pytest.approx(a.headline)
    assert b.outputs["out"].cosine == pytest.approx(a.outputs["out"].cosine)


def test_top_values_weigh_the_confident_scores():
    """Errors only on each channel's largest values: a bulk RMS barely sees them, the top error does."""
    rng = np.random.default_rng(7)
    reference = detector_output(rng, anchors=2000)
    candidate = reference.copy()
    scores = candidate[0, 4:]
    top = scores >= np.quantile(scores, 0.995, axis=1, keepdims=True)
    scores[top] *= 0.5
    out = headline_error([{"out": reference}], [{"out": candidate}])
    bulk_only = np.sqrt(np.mean((candidate - reference)[0, 4:] ** 2, axis=1)).max()
    assert out > 3 * bulk_only


def test_threshold_counts_crossings():
    reference = np.array([[0.1, 0.3, 0.6, 0.9]], np.float32)
    candidate = np.array([[0.1, 0.2, 0.6, 0.9]], np.float32)
    meter = OutputErrorMeter(MeasureConfig(threshold=0.25))
    meter.add({"s": reference}, {"s": candidate})
    out = meter.result().outputs["s"]
    assert out.crossed_rate == pytest.approx(1 / 3)
    assert out.error >= 1 / 3
    assert OutputErrorMeter().result().headline == 0.0


def test_mismatched_outputs_are_a_user_error():
    meter = OutputErrorMeter()
    with pytest.raises(DataError, match="same output shapes"):
        meter.add({"o": np.zeros((1, 4))}, {"o": np.zeros((1, 5))})
    with pytest.raises(DataError, match="no output"):
        meter.add({"o": np.zeros((1, 4))}, {"p": np.zeros((1, 4))})
    with pytest.raises(DataError, match="no channel axis"):
        OutputErrorMeter(MeasureConfig(channel_axes={"o": 3})).add({"o": np.zeros((1, 4))}, {"o": np.zeros((1, 4))})


def test_crossed_rate_is_per_channel_so_coordinates_do_not_dilute_it():
    rng = np.random.default_rng(8)
    reference = detector_output(rng)
    candidate = reference.copy()
    scores = candidate[0, 5]
    above = np.flatnonzero(scores >= 0.25)
    scores[above[: len(above) // 2]] = 0.0     # half of one class's confident scores fall below the threshold
    meter = OutputErrorMeter(MeasureConfig(threshold=0.25))
    meter.add({"out": reference}, {"out": candidate})
    assert meter.result().outputs["out"].crossed_rate == pytest.approx(0.5, abs=0.01)


def test_empty_batches_are_measured_as_nothing():
    meter = OutputErrorMeter()
    meter.add({"boxes": np.zeros((1, 0, 6))}, {"boxes": np.zeros((1, 0, 6))})
    meter.add({"boxes": np.ones((1, 3, 6))}, {"boxes": np.ones((1, 3, 6))})
    assert meter.result().headline == 0.0


@pytest.mark.parametrize("config", [MeasureConfig(), MeasureConfig(threshold=0.5)])
def test_fixed_references_measure_what_the_streaming_meter_measures(config):
    """ReferenceMeter (auto's trials: one set of references, many candidates) gives every figure of
    OutputErrorMeter over the same pairs: batches of different sizes and spatial shapes, and an output whose top
    values are many equal ones (a saturated sigmoid: which of them count decides the top error), and an empty batch."""
    rng = np.random.default_rng(5)
    references = [{"det": detector_output(rng, anchors=200 * (1 + i % 3)), "map": rng.random((1, 1, 9, 7 + i)),
                   "saturated": np.minimum(rng.random((1, 1, 40, 40)) * 1.5, 1.0),   # ties at the top: which count
                   "boxes": rng.random((1, 0 if i == 2 else 3 + i, 6))}   # an NMS output, nothing found in one batch
                  for i in range(6)]
    meter = ReferenceMeter(references, config)
    for damage in (0.0, 0.01, 0.3):
        candidates = [{k: v + damage * rng.normal(size=v.shape) * (np.abs(v) + 0.1) for k, v in r.items()}
                      for r in references]
        streaming = OutputErrorMeter(config)
        for reference, candidate in zip(references, candidates):
            streaming.add(reference, candidate)
        want, got = streaming.result(), meter.result(candidates)
        assert got.samples == want.samples == 6
        assert got.headline == want.headline   # the same sums in the same order: equal, not close
        assert got.outputs == want.outputs
    with pytest.raises(DataError, match="shape"):
        meter.result([{k: v[..., :-1] for k, v in references[0].items()}, *references[1:]])
