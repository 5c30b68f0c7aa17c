"""Which outputs are scores: what a threshold or a ranking acts on, so the output error measure counts lost ones.

An output is a score output when its producer, walking back through ops that only move, join or scale values
(SHAPE_OPS), is a squashing op (SCORE_OPS): a classifier's Softmax, a detector's Sigmoid (YOLOv8's Concat of boxes
and Sigmoid class scores, YOLOX's decoded [N, 5 + C], CenterFace's heatmap), a text detector's probability map.
Which of its channels are scores is read from the FP32 data (accuracy.measure: channels whose FP32 values lie in
[0, 1]), so box coordinates joined to the scores by a Concat are not counted.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Optional, Tuple

import onnx

from qdqtool.accuracy.measure import MeasureConfig
from qdqtool.onnxgraph.graph import GraphView

SCORE_OPS = frozenset({"Sigmoid", "Softmax", "HardSigmoid"})
# ops that keep a score a score: every input walked for the joining ones, input 0 for the others
JOINING_OPS = frozenset({"Concat", "Mul", "Where"})
SHAPE_OPS = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Slice", "Gather",
                       "Split", "Cast", "Expand", "Tile"}) | JOINING_OPS
MAX_STEPS = 12          # ops walked back from an output before giving up
DEFAULT_SCORE_THRESHOLD = 0.25   # a detector's usual confidence threshold (Ultralytics' predict default)
TASK_THRESHOLDS: Mapping[str, Optional[float]] = {"detect": 0.25, "segment": 0.5, "classify": None}


def score_outputs(model: onnx.ModelProto) -> Tuple[str, ...]:
    """The graph outputs whose values come from a squashing op through value-moving ops only."""
    view = GraphView(model)
    return tuple(name for name in view.output_names if _reaches_score_op(view, name))


def _reaches_score_op(view: GraphView, tensor: str) -> bool:
    pending, seen = [(tensor, 0)], set()
    while pending:
        name, steps = pending.pop()
        node = view.producer(name)
        if node is None or steps > MAX_STEPS or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in SCORE_OPS:
            return True
        if node.op_type in SHAPE_OPS:
            walked = node.input if node.op_type in JOINING_OPS else node.input[:1]
            pending += [(t, steps + 1) for t in walked if t and not view.is_constant(t)]
    return False


def score_threshold(task: Optional[str], threshold: Optional[float]) -> float:
    """The threshold a score output's confident values are judged at: the user's, the task's, else a detector's."""
    if threshold is not None:
        return threshold
    task_default = TASK_THRESHOLDS.get(task or "")
    return DEFAULT_SCORE_THRESHOLD if task_default is None else task_default


def scored_measure(model: onnx.ModelProto, measure: MeasureConfig, task: Optional[str] = None) -> MeasureConfig:
    """The measure with the model's score outputs (accuracy.scores; every output when a task is named) and their
    threshold, unless the config names its own."""
    if measure.score_outputs:
        return measure
    names = tuple(o.name for o in model.graph.output) if task else score_outputs(model)
    return replace(measure, score_outputs=names, score_threshold=score_threshold(task, measure.threshold))
