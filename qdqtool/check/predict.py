"""Predicting, from a Q/DQ graph alone, how TensorRT groups and types its layers (see docs/TRT_RULES.md).

Shared by `qdqtool check` and `qdqtool fix-residuals`: a pure analysis of a QdqView, every finding with its reason
and node names. The standalone Q/DQ layers come from the one predicted engine model (check.engine); counts use the
gate names of qdqtool/trt/kinds.py (Gate).
"""

from __future__ import annotations

from qdqtool.check.analysis import Analysis
from qdqtool.check.engine import predict_engine
from qdqtool.check.findings import CheckReport, Finding, report_lines
from qdqtool.errors import ModelError
from qdqtool.onnxgraph.qdqview import QdqView
from qdqtool.placement.plan import PlacementConfig
from qdqtool.trt.kinds import ProblemKind

__all__ = ["Analysis", "CheckReport", "Finding", "check_model", "refuse_untakeable", "report_lines", "report_of"]

# problems TensorRT refuses to build (symmetric int8 only, per-tensor activations): problem kind -> the way out
UNTAKEABLE = {
    ProblemKind.ZERO_POINT: "re-quantize with symmetric int8 activations and weights (zero point 0)",
    ProblemKind.PER_CHANNEL_ACTIVATION: "re-quantize activations per tensor",
}


def refuse_untakeable(qdq: QdqView) -> None:
    """One ModelError for quantizers TensorRT cannot take (a non-zero zero point, a per-channel activation): no
    prediction or repair of such a model means anything, since TensorRT refuses to build it."""
    refused = [p for p in qdq.problems if p.kind in UNTAKEABLE]
    if refused:
        kinds = sorted({p.kind for p in refused})
        shown = ", ".join(p.node for p in refused[:5]) + (" ..." if len(refused) > 5 else "")
        raise ModelError(f"{len(refused)} quantizers TensorRT cannot take ({', '.join(kinds)}: {shown}); "
                         f"{'; '.join(UNTAKEABLE[k] for k in kinds)}")


def check_model(qdq: QdqView, config: PlacementConfig | None = None) -> CheckReport:
    """Predict TensorRT's INT8/float grouping of a Q/DQ model from its graph. A model TensorRT cannot build (non-zero
    zero points, per-channel activations) is refused with a ModelError rather than passed with a problem line: a CI
    gate on check must not pass a model the builder rejects."""
    refuse_untakeable(qdq)
    return report_of(Analysis(qdq, config))


def report_of(analysis: Analysis) -> CheckReport:
    """The check report of an analysis already made (repair builds on one): its findings over the predicted engine."""
    return analysis.report(predict_engine(analysis.qdq, analysis.config, analysis))


