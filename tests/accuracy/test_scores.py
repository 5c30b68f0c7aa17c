"""Score outputs: which outputs a threshold or a ranking acts on (graph), and the rates the measure counts on them."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import Builder

from qdqtool.accuracy.measure import MeasureConfig, OutputErrorMeter, ReferenceMeter
from qdqtool.accuracy.scores import score_outputs, score_threshold, scored_measure


def detector_like():
    """'head': Concat(boxes conv, Sigmoid(scores conv)) as YOLOv8 joins them; 'features': a plain conv."""
    b = Builder()
    x = b.input("x", [1, 3, 8, 8])
    boxes = b.conv(x, 3, 4, "boxes", k=1)
    scores = b.op("Sigmoid", [b.conv(x, 3, 2, "cls", k=1)], "sigmoid")
    head = b.op("Reshape", [b.op("Concat", [boxes, scores], "cat", axis=1), b.const(np.array([1, 6, 64]), "shape")],
                "head")
    return b.model([head, b.conv(x, 3, 2, "features", k=1)])


def test_an_output_from_a_sigmoid_through_a_concat_is_a_score_output_and_a_plain_conv_is_not():
    model = detector_like()
    names = [o.name for o in model.graph.output]
    assert score_outputs(model) == (names[0],)
    measure = scored_measure(model, MeasureConfig())
    assert measure.score_outputs == (names[0],) and measure.score_threshold == 0.25
    assert scored_measure(model, MeasureConfig(), task="detect").score_outputs == tuple(names)
    assert score_threshold("segment", None) == 0.5 and score_threshold("detect", 0.4) == 0.4


def head(rng, confident):
    """[1, 6, 200]: rows 0-3 box coordinates (0..300), rows 4-5 scores in [0, 1] with `confident` values >= 0.6."""
    out = np.concatenate([rng.uniform(0, 300, (1, 4, 200)), rng.uniform(0, 0.1, (1, 2, 200))], 1)
    out[0, 4, :confident] = rng.uniform(0.6, 0.9, confident)
    return out.astype(np.float32)


def test_the_lost_rate_counts_confident_scores_that_fall_below_the_threshold_not_box_coordinates():
    rng = np.random.default_rng(0)
    reference = head(rng, 10)
    candidate = reference.copy()
    candidate[0, 4, :3] = 0.15          # 3 of 10 confident scores lost (below 0.25 - 0.05)
    candidate[0, 4, 3] = 0.22           # within the tolerance: not lost
    candidate[0, 0, :50] = 0.5          # box coordinates move a lot but are no scores
    config = MeasureConfig(score_outputs=("head",))
    meter = OutputErrorMeter(config)
    meter.add({"head": reference}, {"head": candidate})
    out = meter.result().outputs["head"]
    assert out.lost_rate == pytest.approx(0.3) and out.flip_rate is None
    assert out.error >= 0.3 and meter.result().headline >= 0.3
    plain = OutputErrorMeter(MeasureConfig())
    plain.add({"head": reference}, {"head": candidate})
    assert plain.result().outputs["head"].lost_rate is None
    same = ReferenceMeter([{"head": reference}], config).result([{"head": candidate}]).outputs["head"]
    assert same.lost_rate == out.lost_rate and same.error == pytest.approx(out.error)


def test_the_flip_rate_counts_samples_whose_top_class_changes():
    reference = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]], np.float32)
    candidate = reference.copy()
    candidate[2] = [0.45, 0.3, 0.25]    # top class 2 -> 0
    candidate[3] = [0.4, 0.5, 0.1]      # top class 0 -> 1
    meter = OutputErrorMeter(MeasureConfig(score_outputs=("probs",)))
    meter.add({"probs": reference}, {"probs": candidate})
    out = meter.result().outputs["probs"]
    assert out.flip_rate == pytest.approx(0.5) and out.error >= 0.5
    same = ReferenceMeter([{"probs": reference}], MeasureConfig(score_outputs=("probs",)))
    assert same.result([{"probs": candidate}]).outputs["probs"].flip_rate == pytest.approx(0.5)
