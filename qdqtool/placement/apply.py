"""The one place that changes a ModelProto: inserting Q/DQ pairs on planned edges and per-channel weights."""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set

import numpy as np
import onnx
from onnx import helper, numpy_helper

from qdqtool.calibrate.observers import (  # scale_from_amax: also imported from here by callers
    SCALE_FLOOR,
    scale_from_amax,
)
from qdqtool.errors import RangeError
from qdqtool.placement.plan import PlacementPlan
from qdqtool.trt.rules import DEQUANTIZE, QUANTIZE, WEIGHT_MAX
from qdqtool.weightstore import fill_weights, skeleton_copy


class _Names:
    """Fresh tensor/node names that do not clash with anything in the graph."""

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.used: Set[str] = {t.name for t in graph.initializer} | {i.name for i in graph.input}
        for node in graph.node:
            self.used.update(node.input)
            self.used.update(node.output)
            self.used.add(node.name)

    def fresh(self, base: str) -> str:
        return fresh_name(self.used, base)


def fresh_name(used: Set[str], base: str) -> str:
    """base, else the first free base_1, base_2, ...; the name returned is added to used."""
    name, suffix = base, 1
    while name in used:
        name, suffix = f"{base}_{suffix}", suffix + 1
    used.add(name)
    return name


def insert_after_producers(graph: onnx.GraphProto, after: Mapping[str, Sequence[onnx.NodeProto]],
                           first: Sequence[onnx.NodeProto] = ()) -> None:
    """Reorder graph.node: `first`, then after[t] for graph inputs/initializers t, then each node followed by
    after[t] for each of its outputs t (so new Q/DQ nodes stand right behind what they read)."""
    ordered: List[onnx.NodeProto] = list(first)
    for name in dict.fromkeys([i.name for i in graph.input] + [t.name for t in graph.initializer]):
        ordered.extend(after.get(name, ()))
    for node in graph.node:
        ordered.append(node)
        for out in node.output:
            ordered.extend(after.get(out, ()))
    del graph.node[:]
    graph.node.extend(ordered)


def quantize_weight(value: np.ndarray, axis: Optional[int]) -> tuple:
    """(int8 weights, float32 scales) with scale = amax / 127 per output channel (or per tensor)."""
    value = value.astype(np.float32)
    if axis is None:
        scale = np.array(scale_from_amax(np.abs(value).max(initial=0.0), WEIGHT_MAX), dtype=np.float32)
        shaped = scale
    else:
        reduce_axes = tuple(a for a in range(value.ndim) if a != axis)
        amax = np.abs(value).max(axis=reduce_axes)
        scale = (np.maximum(amax, SCALE_FLOOR) / WEIGHT_MAX).astype(np.float32)
        shape = [1] * value.ndim
        shape[axis] = -1
        shaped = scale.reshape(shape)
    quantized = np.clip(np.round(value / shaped), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
    return quantized, scale


def _qdq_nodes(names: _Names, tensor: str, scale_name: str, zero_name: str, axis: Optional[int] = None,
               quantize: bool = True) -> tuple:
    """Q (optional) and DQ nodes for a tensor; returns (nodes, dequantized tensor name)."""
    nodes: List[onnx.NodeProto] = []
    source = tensor
    if quantize:
        source = names.fresh(f"{tensor}_quantized")
        nodes.append(helper.make_node(QUANTIZE, [tensor, scale_name, zero_name], [source],
                                      name=names.fresh(f"{tensor}_QuantizeLinear")))
    output = names.fresh(f"{tensor}_dequantized")
    attrs = {} if axis is None else {"axis": axis}
    nodes.append(helper.make_node(DEQUANTIZE, [source, scale_name, zero_name], [output],
                                  name=names.fresh(f"{tensor}_DequantizeLinear"), **attrs))
    return nodes, output


def apply_plan(model: onnx.ModelProto, plan: PlacementPlan, tensor_amax: Mapping[str, float]) -> onnx.ModelProto:
    """A new model with Q/DQ on every planned edge (scale = amax / 127, zero point 0) and int8 per-channel weights."""
    missing = [t for t in plan.quantized_tensors() if t not in tensor_amax]
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise RangeError(f"no range for {len(missing)} tensors to quantize ({shown}); give calibration data or a "
                         "ranges file that covers them")
    result = skeleton_copy(model)   # float weights that get quantized are never copied; the rest is filled in last
    graph = result.graph
    names = _Names(result)
    inits = {t.name: t for t in model.graph.initializer}
    nodes_by_name = {n.name: n for n in graph.node}
    after: Dict[str, List[onnx.NodeProto]] = {}   # tensor -> Q/DQ nodes to insert right after its producer
    rewired: Dict[tuple, str] = {}
    new_inits: List[onnx.TensorProto] = []

    for tensor in plan.quantized_tensors():
        scale = names.fresh(f"{tensor}_scale")
        zero = names.fresh(f"{tensor}_zero_point")
        new_inits.append(numpy_helper.from_array(np.array(scale_from_amax(tensor_amax[tensor]), np.float32), scale))
        new_inits.append(numpy_helper.from_array(np.array(0, np.int8), zero))
        nodes, dequantized = _qdq_nodes(names, tensor, scale, zero)
        after[tensor] = nodes
        for edge in plan.inputs:
            if edge.tensor == tensor:
                rewired[(edge.node, edge.input_index)] = dequantized

    weight_outputs: Dict[str, str] = {}
    for weight in plan.weights:
        if weight.tensor not in weight_outputs:
            if weight.tensor not in inits:
                raise RangeError(f"weight {weight.tensor} of {weight.node} is not an initializer; "
                                 "run preparation first")
            value = numpy_helper.to_array(inits[weight.tensor])
            quantized, scales = quantize_weight(value, weight.axis)
            q_name = names.fresh(f"{weight.tensor}_quantized")
            scale = names.fresh(f"{weight.tensor}_scale")
            zero = names.fresh(f"{weight.tensor}_zero_point")
            new_inits += [numpy_helper.from_array(quantized, q_name), numpy_helper.from_array(scales, scale),
                          numpy_helper.from_array(np.zeros(scales.shape, np.int8), zero)]
            nodes, dequantized = _qdq_nodes(names, q_name, scale, zero, axis=weight.axis, quantize=False)
            after.setdefault("", []).extend(nodes)
            weight_outputs[weight.tensor] = dequantized
        rewired[(weight.node, weight.input_index)] = weight_outputs[weight.tensor]

    for (node_name, index), tensor in rewired.items():
        nodes_by_name[node_name].input[index] = tensor

    insert_after_producers(graph, after, first=after.pop("", []))
    graph.initializer.extend(new_inits)
    _drop_unused_initializers(graph, (w.tensor for w in plan.weights))
    fill_weights(result, model)
    return result


def _drop_unused_initializers(graph: onnx.GraphProto, candidates: Iterable[str]) -> None:
    used = {t for node in graph.node for t in node.input} | {o.name for o in graph.output}
    unused = set(candidates) - used
    if unused:
        kept = [t for t in graph.initializer if t.name not in unused]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        kept_inputs = [i for i in graph.input if i.name not in unused]
        del graph.input[:]
        graph.input.extend(kept_inputs)
