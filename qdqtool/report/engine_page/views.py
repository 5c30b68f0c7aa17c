"""What each command draws: check the predicted engine; report and build the engine's layers, when compared
also the prediction and the ONNX nodes where the two differ."""

from __future__ import annotations

from qdqtool.check.findings import CheckReport
from qdqtool.report.engine import engine_from_layers
from qdqtool.report.layers import PrecisionReport
from qdqtool.report.versus_check import compare_engines
from qdqtool.trt.engine_model import NodeDifference

from .page import PageView


def check_views(prediction: CheckReport) -> list[PageView]:
    return [PageView("predicted", prediction.engine, prediction.counts())]


def report_views(report: PrecisionReport,
                 prediction: CheckReport | None = None) -> tuple[list[PageView], list[NodeDifference]]:
    """The engine first; with a prediction (a report compared with its model) the predicted engine second, and the
    ONNX nodes where the two differ."""
    views = [PageView("engine", engine_from_layers(report), report.summary.gate_counts())]
    if prediction is None:
        return views, []
    comparison = compare_engines(report, prediction, prediction.engine)
    return views + check_views(prediction), list(comparison.differences)
