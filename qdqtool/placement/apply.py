"""Applying a placement plan: Q/DQ pairs on planned edges and per-channel int8 weights, on a copy of the model.

The edits themselves (names, insertion, pruning) are onnxgraph/edit.py's; this module maps a PlacementPlan onto them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import numpy as np
import onnx

from qdqtool.errors import RangeError
from qdqtool.onnxgraph.edit import (
    Names,
    add_initializer,
    drop_unread_tensors,
    insert_after_producers,
    qdq_nodes,
    scale_and_zero,
)
from qdqtool.placement.plan import PlacementPlan, QuantizedInput
from qdqtool.trt.scales import quantize_weight, scale_from_amax
from qdqtool.weightstore import fill_weights, skeleton_copy, tensor_array


def edges_by_tensor(plan: PlacementPlan) -> dict[str, list[QuantizedInput]]:
    """The planned activation edges, grouped by the tensor they carry (in plan order)."""
    grouped: dict[str, list[QuantizedInput]] = {}
    for edge in plan.inputs:
        grouped.setdefault(edge.tensor, []).append(edge)
    return grouped


def apply_plan(model: onnx.ModelProto, plan: PlacementPlan, tensor_amax: Mapping[str, float],
               weight_values: Optional[Mapping[str, tuple]] = None) -> onnx.ModelProto:
    """A new model with Q/DQ on every planned edge (scale = amax / 127, zero point 0) and int8 per-channel weights.
    weight_values: float weight name -> (int8 values, scales) to use as they are instead of quantizing the weight."""
    edges = edges_by_tensor(plan)
    missing = sorted(t for t in edges if t not in tensor_amax)
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise RangeError(f"no range for {len(missing)} tensors to quantize ({shown}); give calibration data or a "
                         "ranges file that covers them")
    result = skeleton_copy(model)   # float weights that get quantized are never copied; the rest is filled in last
    graph = result.graph
    names = Names(result)
    inits = {t.name: t for t in model.graph.initializer}
    nodes_by_name = {n.name: n for n in graph.node}
    after: dict[str, list[onnx.NodeProto]] = {}   # tensor -> Q/DQ nodes to insert right after its producer
    rewired: dict[tuple, str] = {}

    for tensor in sorted(edges):
        scale, zero = scale_and_zero(graph, names, scale_from_amax(tensor_amax[tensor]), tensor)
        after[tensor], dequantized = qdq_nodes(names, tensor, scale, zero)
        for edge in edges[tensor]:
            rewired[(edge.node, edge.input_index)] = dequantized

    weight_outputs: dict[str, str] = {}
    first: list[onnx.NodeProto] = []
    for weight in plan.weights:
        if weight.tensor not in weight_outputs:
            if weight.tensor not in inits:
                raise RangeError(f"weight {weight.tensor} of {weight.node} is not an initializer; "
                                 "run preparation first")
            given = (weight_values or {}).get(weight.tensor)
            quantized, scales = given or quantize_weight(tensor_array(inits[weight.tensor]), weight.axis)
            axis = weight.axis if np.ndim(scales) > 0 else None
            q_name = add_initializer(graph, names, quantized, f"{weight.tensor}_quantized")
            scale, zero = scale_and_zero(graph, names, scales, weight.tensor)
            nodes, weight_outputs[weight.tensor] = qdq_nodes(names, q_name, scale, zero, axis=axis, quantize=False)
            first.extend(nodes)
        rewired[(weight.node, weight.input_index)] = weight_outputs[weight.tensor]

    for (node_name, index), tensor in rewired.items():
        nodes_by_name[node_name].input[index] = tensor

    insert_after_producers(graph, after, first=first)
    drop_unread_tensors(graph, candidates=(w.tensor for w in plan.weights))
    fill_weights(result, model)
    return result
