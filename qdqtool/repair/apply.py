"""Applying planned repairs to a copy of an existing Q/DQ model: insert a pair on an edge, remove a pair, set a scale.

Edits name edges of the QdqView (consumer node name, input index; float-model tensor names); this module maps them
back onto the original graph and makes the changes with onnxgraph/edit.py's helpers, each edit in constant time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from qdqtool.onnxgraph.edit import (
    Names,
    add_initializer,
    drop_dead_nodes,
    drop_unread_tensors,
    insert_after_producers,
    qdq_nodes,
    scale_and_zero,
)
from qdqtool.onnxgraph.prepare import upgrade_opset
from qdqtool.onnxgraph.qdqview import GRAPH_OUTPUT, QdqView, Quantizer
from qdqtool.trt.kinds import Cause, EditKind, ScaleSource
from qdqtool.trt.rules import DEQUANTIZE, MIN_QDQ_OPSET, QUANTIZE
from qdqtool.trt.scales import same_scale
from qdqtool.weightstore import fill_weights, skeleton_copy


@dataclass(frozen=True)
class RepairEdit:
    """One planned change. insert/remove: the edge (node, input_index) carrying tensor; set-scale: node is the Q node.
    scale is the new activation scale (insert, set-scale); source says where an inserted scale came from."""

    kind: EditKind
    node: str
    input_index: int
    tensor: str
    scale: float | None
    reason: str
    cause: Cause = Cause.NONE
    source: ScaleSource | None = None

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "node": self.node, "input_index": self.input_index, "tensor": self.tensor,
                "scale": self.scale, "reason": self.reason, "cause": self.cause, "source": self.source}


class _Editor:
    def __init__(self, qdq: QdqView):
        self.qdq = qdq
        self.model = skeleton_copy(qdq.model)   # edits touch nodes and small tensors; the weights are filled last
        self.graph = self.model.graph
        self.names = Names(self.model)
        self.nodes = {n.name: n for n in self.graph.node}
        self.original_name = {new: old for old, new in qdq.renamed.items()}
        self.after: dict[str, list[onnx.NodeProto]] = {}
        self.new_pairs: dict[tuple[str, float], str] = {}
        self.new_scale: dict[str, float] = {}    # Q node -> scale set by a set-scale edit
        self.quantizers_of: dict[str, list[Quantizer]] = {}   # float tensor -> existing quantizers, in edge order
        for quantizer in qdq.edges.values():
            self.quantizers_of.setdefault(quantizer.tensor, []).append(quantizer)
        self.dequantizers_of: dict[str, list[onnx.NodeProto]] = {}   # Q output -> the DQ nodes reading it
        for node in self.graph.node:
            if node.op_type == DEQUANTIZE and node.input:
                self.dequantizers_of.setdefault(node.input[0], []).append(node)

    def dq_output_for(self, tensor: str, scale: float) -> str:
        """An existing DQ output quantizing tensor at this scale, else a new Q/DQ pair placed after the producer."""
        for quantizer in self.quantizers_of.get(tensor, ()):
            if same_scale(self.new_scale.get(quantizer.q_node, quantizer.scale), scale):
                return self.nodes[quantizer.dq_node].output[0]
        key = (tensor, round(scale, 12))
        if key not in self.new_pairs:
            source = self.original_name.get(tensor, tensor)
            scale_name, zero_name = scale_and_zero(self.graph, self.names, scale, source)
            pair, self.new_pairs[key] = qdq_nodes(self.names, source, scale_name, zero_name)
            self.after.setdefault(source, []).extend(pair)
        return self.new_pairs[key]

    def insert(self, edit: RepairEdit) -> None:
        self.nodes[edit.node].input[edit.input_index] = self.dq_output_for(edit.tensor, float(edit.scale))

    def remove(self, edit: RepairEdit) -> None:
        quantizer = self.qdq.edges[(edit.node, edit.input_index)]
        source = self.nodes[quantizer.q_node].input[0]
        if edit.node != GRAPH_OUTPUT:
            self.nodes[edit.node].input[edit.input_index] = source
            return
        output = self.graph.output[edit.input_index].name
        self.after.setdefault(source, []).append(
            helper.make_node("Identity", [source], [output], name=self.names.fresh(f"{output}_Identity")))
        self.nodes[quantizer.dq_node].output[0] = self.names.fresh(f"{output}_unused")

    def set_scale(self, edit: RepairEdit) -> None:
        scale_name = add_initializer(self.graph, self.names, np.array(edit.scale, np.float32), f"{edit.tensor}_scale")
        q = self.nodes[edit.node]
        q.input[1] = scale_name
        self.new_scale[q.name] = float(edit.scale)
        for dq in self.dequantizers_of.get(q.output[0], ()):
            dq.input[1] = scale_name

    def finish(self) -> onnx.ModelProto:
        insert_after_producers(self.graph, self.after)
        drop_dead_nodes(self.graph, (QUANTIZE, DEQUANTIZE, "Identity"))
        drop_unread_tensors(self.graph)
        fill_weights(self.model, self.qdq.model)
        return self.model


def apply_repairs(qdq: QdqView, edits: list[RepairEdit] | tuple[RepairEdit, ...]) -> onnx.ModelProto:
    """A new model: qdq.model with the edits applied (removals first, then scales, then insertions)."""
    unknown = sorted({e.kind for e in edits} - set(EditKind))
    if unknown:
        raise ValueError(f"unknown edit kinds {unknown}")
    editor = _Editor(qdq)
    for edit in edits:
        if edit.kind == "remove":
            editor.remove(edit)
    for edit in edits:
        if edit.kind == "set-scale":
            editor.set_scale(edit)
    for edit in edits:
        if edit.kind == "insert":
            editor.insert(edit)
    model = editor.finish()
    if any(e.kind == "convert-opset" for e in edits):
        model = upgrade_opset(model, MIN_QDQ_OPSET)
    return model
