"""A scale for a residual skip input no quantizer, ranges file or data covers, inferred from the quantizers around
the Add, in this order:

1. the quantizer that reads the Add's output (directly, through no-op Casts, or after ReLU/commuting ops): TensorRT
   quantizes the fused convolution's output at that scale anyway;
2. the quantizer of the Add's other input.

The largest scale wins where several quantizers read the same tensor (nothing new clips).
"""

from __future__ import annotations

from dataclasses import dataclass

from qdqtool.check.predict import Analysis
from qdqtool.trt.analysis import ResidualAdd
from qdqtool.trt.kinds import ScaleSource


@dataclass(frozen=True)
class InferredScale:
    scale: float
    source: ScaleSource
    how: str


def infer_skip_scale(analysis: Analysis, res: ResidualAdd) -> InferredScale | None:
    add = analysis.node(res.add)
    outs = analysis.out_scales(add.output[0])
    if outs:
        return InferredScale(max(outs), ScaleSource.INFERRED_FROM_OUTPUT,
                             f"inferred from the quantizer reading the output of {res.add} (rule 1 of inference: "
                             "TensorRT quantizes the fused convolution's output at that scale)")
    other = add.input[res.fused_index]
    scales = analysis.scales_needed(other).values()
    if scales:
        return InferredScale(max(scales), ScaleSource.INFERRED_FROM_OTHER_INPUT,
                             f"inferred from the quantizer of {other}, the other input of {res.add} (rule 2 of "
                             "inference)")
    return None
