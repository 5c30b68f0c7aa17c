"""Lowering a TensorRT-placed Q/DQ model for ONNX Runtime: a Q/DQ pair on each weighted op's output.

TensorRT placement puts no Q on Conv outputs (rule 1: the next consumer quantizes, TensorRT fuses Conv+act+Q).
ONNX Runtime fuses `DQ -> Conv -> Q` into QLinearConv but turns `DQ -> Conv` (no Q after) into a float FusedConv.
So, for ONNX Runtime only, each weighted op fed by DequantizeLinear whose output has no QuantizeLinear gets an
int8 per-tensor Q/DQ pair (zero point 0) on its output, with scale amax / 127 from a calibrated range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from qdqtool.onnxgraph.edit import Names, copy_model, insert_after_producers, qdq_nodes, scale_and_zero
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.trt.rules import DEQUANTIZE, QUANTIZE, WEIGHTED_OPS
from qdqtool.trt.scales import scale_from_amax


@dataclass(frozen=True)
class LoweringResult:
    model: onnx.ModelProto
    added: tuple[str, ...]      # weighted-op outputs that received a Q/DQ pair
    missing: tuple[str, ...]    # outputs that needed one but had no range: those ops stay float in ONNX Runtime
    skipped: tuple[str, ...]    # outputs that are graph outputs (left alone)


def output_quantizer_candidates(model: onnx.ModelProto) -> list[str]:
    """Outputs of weighted ops whose activation and weight come through DequantizeLinear and that no Q consumes."""
    view = GraphView(model)
    found = []
    for node in view.nodes:
        spec = WEIGHTED_OPS.get(node.op_type)
        if spec is None or len(node.input) <= spec.weight_input:
            continue
        producers = [view.producer(node.input[i]) for i in (spec.activation_input, spec.weight_input)]
        if not all(p is not None and p.op_type == DEQUANTIZE for p in producers):
            continue
        output = node.output[0]
        consumers = view.consumers(output)
        if consumers and all(use.op_type == QUANTIZE for use, _ in consumers):
            continue
        found.append(output)
    return found


def add_output_quantizers(model: onnx.ModelProto, amax: Mapping[str, float]) -> LoweringResult:
    """A copy of model with Q/DQ on each candidate output that has a range; the input model is not modified."""
    lowered = copy_model(model)
    graph = lowered.graph
    view = GraphView(lowered)
    names = Names(lowered)
    added, missing, skipped = [], [], []
    new_nodes: dict[str, list[onnx.NodeProto]] = {}
    for tensor in output_quantizer_candidates(model):
        if view.is_graph_output(tensor):
            skipped.append(tensor)
            continue
        if tensor not in amax:
            missing.append(tensor)
            continue
        base = f"{tensor}_ort"
        scale, zero = scale_and_zero(graph, names, scale_from_amax(amax[tensor]), base)
        new_nodes[tensor], dequantized = qdq_nodes(names, tensor, scale, zero, base=base)
        for consumer, index in view.consumers(tensor):
            consumer.input[index] = dequantized
        added.append(tensor)
    if new_nodes:
        insert_after_producers(graph, new_nodes)
    return LoweringResult(lowered, tuple(added), tuple(missing), tuple(skipped))


def activations_to_uint8(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Per-tensor int8 activation Q/DQ (zero point 0) rewritten as uint8 (zero point 128): the same values, in
    the form ONNX Runtime's x86 kernels fuse (U8 activations, S8 weights). Weight DQs are left alone."""
    lowered = copy_model(model)
    graph = lowered.graph
    view = GraphView(lowered)
    zero_u8 = Names(lowered).fresh("ort_uint8_zero_point")
    converted = 0
    for node in view.nodes:
        if node.op_type != QUANTIZE or len(node.input) < 3 or view.is_constant(node.input[0]):
            continue
        zero = view.constant_value(node.input[2])
        scale = view.constant_value(node.input[1])
        if zero is None or scale is None or zero.dtype != np.int8 or zero.size != 1 or scale.size != 1 or zero.any():
            continue
        dequantizers = [use for use, _ in view.consumers(node.output[0])]
        if not dequantizers or any(use.op_type != DEQUANTIZE for use in dequantizers) or view.is_graph_output(
                node.output[0]):
            continue
        for target in (node, *dequantizers):
            target.input[2] = zero_u8
        converted += 1
    if converted:
        graph.initializer.append(numpy_helper.from_array(np.array(128, np.uint8), zero_u8))
    return lowered, converted
