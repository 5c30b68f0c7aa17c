"""The weight quantization an existing Q/DQ model already has: int8 values and scales to keep exactly.

`fix-residuals` with scope all re-places every activation Q/DQ but keeps each weight's int8 values and per-channel
scales, unless TensorRT cannot take them as they are (a per-channel axis other than the output-channel axis).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.qdqview import QdqView
from qdqtool.placement.plan import QuantizedWeight
from qdqtool.trt.rules import INT8_MAX, INT8_MIN, QUANTIZE


@dataclass(frozen=True)
class KeptWeight:
    """An existing weight quantization the re-placed model reuses. scales: one per channel of `axis`, or a scalar."""

    tensor: str                     # the float weight in the float model
    values: np.ndarray              # int8
    scales: np.ndarray              # float32
    axis: int | None                # None: per tensor
    dq_node: str


@dataclass(frozen=True)
class WeightDecision:
    """What happens to one planned weight: kept as the model quantized it, or quantized again, and why."""

    tensor: str
    node: str
    kept: bool
    reason: str


def _quantize_like_onnx(value: np.ndarray, scale: np.ndarray, zero: np.ndarray | None) -> np.ndarray:
    """QuantizeLinear's int8 result: round half to even, add the zero point, saturate."""
    rounded = np.rint(value.astype(np.float32) / scale)
    if zero is not None:
        rounded = rounded + zero.astype(np.float32)
    return np.clip(rounded, INT8_MIN, INT8_MAX).astype(np.int8)


def _shaped(scale: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    if axis is None or scale.size == 1:
        return scale.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return scale.reshape(shape)


def read_weight(qdq: QdqView, original: GraphView, node: str, index: int) -> KeptWeight | None:
    """The int8 values and scales behind the weight quantizer on (node, index), or None if it is not int8."""
    quantizer = qdq.weights.get((node, index))
    if quantizer is None:
        return None
    dq = original.by_name[quantizer.dq_node]
    scale = original.constant_value(dq.input[1])
    zero = original.constant_value(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
    if scale is None or (zero is not None and zero.dtype != np.int8):
        return None
    source = original.producer(dq.input[0])
    if source is not None and source.op_type == QUANTIZE:
        value = original.constant_value(source.input[0])
        if value is None:
            return None
        axis = quantizer.axis % value.ndim if quantizer.per_channel else None
        values = _quantize_like_onnx(value, _shaped(scale, value.ndim, axis),
                                     None if zero is None else _shaped(zero, value.ndim, axis))
    else:
        values = original.constant_value(dq.input[0])
        if values is None or values.dtype != np.int8:
            return None
        axis = quantizer.axis % values.ndim if quantizer.per_channel else None
    scales = scale.astype(np.float32) if axis is not None else scale.astype(np.float32).reshape(())
    return KeptWeight(quantizer.tensor, values, scales, axis, dq.name)


def keep_weights(qdq: QdqView, planned: tuple[QuantizedWeight, ...]
                 ) -> tuple[dict[str, KeptWeight], tuple[WeightDecision, ...]]:
    """For each planned weight: the model's own int8 quantization when TensorRT takes it, else None and why."""
    original = GraphView(qdq.model)
    kept: dict[str, KeptWeight] = {}
    decisions: list[WeightDecision] = []
    for weight in planned:
        found = read_weight(qdq, original, weight.node, weight.input_index)
        if found is None:
            why = ("not quantized in the input model" if (weight.node, weight.input_index) not in qdq.weights
                   else "its quantizer is not int8 with constant scales")
            decisions.append(WeightDecision(weight.tensor, weight.node, False,
                                            f"quantized per output channel (axis {weight.axis}): {why}"))
            continue
        if found.axis is not None and found.axis != weight.axis:
            decisions.append(WeightDecision(
                weight.tensor, weight.node, False,
                f"quantized again per output channel (axis {weight.axis}): the model's per-channel axis "
                f"{found.axis} is not the output-channel axis TensorRT needs"))
            continue
        how = "per tensor" if found.axis is None else f"per channel, axis {found.axis}"
        kept[weight.tensor] = found
        decisions.append(WeightDecision(weight.tensor, weight.node, True,
                                        f"the model's int8 values and scales kept ({how})"))
    return kept, tuple(decisions)


def as_weight_values(kept: Mapping[str, KeptWeight]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The form the placement applier takes: float weight name -> (int8 values, scales)."""
    return {name: (w.values, w.scales) for name, w in kept.items()}
