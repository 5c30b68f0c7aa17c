"""A range for a residual skip input the model never quantized, inferred from the quantizers around its Add.

In this order (issue 8's rules): the quantizer that reads the Add's output (directly or after commuting ops such as
ReLU; TensorRT quantizes the fused convolution's output at that scale anyway), then the other Add input's quantizer.
The largest scale wins where several quantizers read one tensor (nothing new clips).

Stand-in until the shared analysis (branch `analysis`, repair/infer.py) lands; it then replaces this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from qdqtool.check.predict import Analysis
from qdqtool.trt.rules import amax_from_scale


@dataclass(frozen=True)
class InferredRange:
    amax: float
    how: str


def infer_skip_amax(analysis: Analysis, add_name: str, skip_index: int) -> InferredRange | None:
    """The skip input's amax from the model's quantizers around the Add, or None when there are none."""
    add = analysis.node(add_name)
    outs = analysis.out_scales(add.output[0])
    if outs:
        how = (f"inferred from the quantizer reading the output of {add_name} (TensorRT quantizes the fused "
               "convolution's output at that scale)")
        return InferredRange(amax_from_scale(max(outs)), how)
    other = add.input[1 - skip_index]
    scales = [q.scale for _, q in analysis.by_tensor.get(other, [])]
    if scales:
        return InferredRange(amax_from_scale(max(scales)), f"inferred from the quantizer of {other}, the other input "
                             f"of {add_name}")
    return None
