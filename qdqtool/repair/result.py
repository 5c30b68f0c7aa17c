"""The one result of `fix-residuals`, whichever scope planned it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import onnx

from qdqtool.accuracy.measure import ErrorSummary
from qdqtool.check.predict import CheckReport
from qdqtool.repair.plan import FixPlan
from qdqtool.repair.replace_all import ReplacePlan


@dataclass(frozen=True)
class FixResult:
    """plan: the edits of scope residuals (FixPlan) or the re-placement of scope all (ReplacePlan); the rest is
    the same for both: the model (None when nothing needed fixing), check's report on it, where ranges came from."""

    plan: Union[FixPlan, ReplacePlan]
    model: onnx.ModelProto | None            # None when nothing needed fixing
    after: CheckReport
    range_sources: dict[str, int]            # ranges-file / data -> tensors measured
    max_abs_diff: dict[str, float]           # per graph output, input model vs fixed model
    compared_on: str
    output_error: dict[str, ErrorSummary] = field(default_factory=dict)   # "input"/"fixed" vs the float model
    converted_opset: bool = False

    def to_json(self) -> dict[str, object]:
        payload = self.plan.to_json()
        payload.update({"changed": self.model is not None, "after": self.after.to_json(),
                        "range_sources": self.range_sources, "compared_on": self.compared_on,
                        "converted_opset": self.converted_opset, "max_abs_diff": self.max_abs_diff,
                        "largest_difference": max(self.max_abs_diff.values(), default=0.0),
                        "output_error": {k: v.as_dict() for k, v in self.output_error.items()}})
        return payload
