"""Q/DQ-shaped tiny models.

QAT exports (Q/DQ on Conv inputs and weights only) and ONNX Runtime quantize_static output.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
import tiny

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.placement.apply import apply_plan
from qdqtool.placement.plan import PlacementPlan, QuantizedInput, QuantizedWeight
from qdqtool.trt.rules import WEIGHTED_OPS, weight_channel_axis


def float_ranges(model: onnx.ModelProto, seed: int = 0, runs: int = 3) -> dict[str, float]:
    """max |x| of every float tensor on a few random inputs (plain ONNX Runtime, all outputs exposed)."""
    from qdqtool.onnxgraph.edit import tensors_exposed
    from qdqtool.runner import create_session

    view = GraphView(model)
    names = sorted({o for n in view.nodes for o in n.output if o and view.is_float(o)})
    with tensors_exposed(model, names) as exposed:
        session = create_session(exposed, optimize=False, providers=["CPUExecutionProvider"])
    amax: dict[str, float] = {}
    for run in range(runs):
        values = session.run(names, tiny.random_feed(model, seed + run))
        for name, value in zip(names, values):
            amax[name] = max(amax.get(name, 0.0), float(np.abs(value).max()))
    for name in view.input_names:
        amax[name] = 4.0
    return amax


def qat(model: onnx.ModelProto, skip: Iterable[str] = (), amax: dict[str, float] | None = None) -> onnx.ModelProto:
    """Q/DQ on every weighted op's activation input and weight, nothing else (a PyTorch QAT export)."""
    view = GraphView(model)
    inputs, weights = [], []
    for node in view.nodes:
        spec = WEIGHTED_OPS.get(node.op_type)
        if spec is None or node.name in set(skip):
            continue
        inputs.append(QuantizedInput(node.input[spec.activation_input], node.name, spec.activation_input, "qat"))
        value = view.constant_value(node.input[spec.weight_input])
        weights.append(QuantizedWeight(node.input[spec.weight_input], node.name, spec.weight_input,
                                       weight_channel_axis(node, value.ndim)))
    plan = PlacementPlan(tuple(inputs), tuple(weights), (), (), ())
    return apply_plan(model, plan, amax if amax is not None else float_ranges(model))


class _RandomReader:
    def __init__(self, model: onnx.ModelProto, count: int = 4):
        self.feeds = iter([tiny.random_feed(model, seed) for seed in range(count)])

    def get_next(self):
        return next(self.feeds, None)


def ort_static(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX Runtime's quantize_static in QDQ format, per-channel weights, symmetric int8 activations."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as folder:
        src, dst = Path(folder) / "in.onnx", Path(folder) / "out.onnx"
        onnx.save(model, str(src))
        quantize_static(str(src), str(dst), _RandomReader(model), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        return onnx.load(str(dst))
