"""Applying planned repairs to a copy of an existing Q/DQ model: insert a pair on an edge, remove a pair, set a scale.

The sibling of edits.py for models that already hold Q/DQ. Edits name edges of the QdqView (consumer node name,
input index; float-model tensor names); this module maps them back onto the original graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from qdqtool.onnxgraph.prepare import upgrade_opset
from qdqtool.onnxgraph.qdqview import GRAPH_OUTPUT, QdqView, drop_unread_tensors
from qdqtool.placement.apply import _Names, insert_after_producers
from qdqtool.trt.kinds import Cause, EditKind, ScaleSource
from qdqtool.trt.rules import DEQUANTIZE, MIN_QDQ_OPSET, QUANTIZE, same_scale


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
        self.model = onnx.ModelProto()
        self.model.CopyFrom(qdq.model)
        self.graph = self.model.graph
        self.names = _Names(self.model)
        self.nodes = {n.name: n for n in self.graph.node}
        self.original_name = {new: old for old, new in qdq.renamed.items()}
        self.after: dict[str, list[onnx.NodeProto]] = {}
        self.new_pairs: dict[tuple[str, float], str] = {}
        self.new_scale: dict[str, float] = {}    # Q node -> scale set by a set-scale edit

    def constant(self, value: np.ndarray, base: str) -> str:
        name = self.names.fresh(base)
        self.graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    def dq_output_for(self, tensor: str, scale: float) -> str:
        """An existing DQ output quantizing tensor at this scale, else a new Q/DQ pair placed after the producer."""
        for quantizer in self.qdq.edges.values():
            current = self.new_scale.get(quantizer.q_node, quantizer.scale)
            if quantizer.tensor == tensor and same_scale(current, scale):
                return self.nodes[quantizer.dq_node].output[0]
        key = (tensor, round(scale, 12))
        if key not in self.new_pairs:
            source = self.original_name.get(tensor, tensor)
            scale_name = self.constant(np.array(scale, np.float32), f"{source}_scale")
            zero_name = self.constant(np.array(0, np.int8), f"{source}_zero_point")
            quantized = self.names.fresh(f"{source}_quantized")
            output = self.names.fresh(f"{source}_dequantized")
            pair = [helper.make_node(QUANTIZE, [source, scale_name, zero_name], [quantized],
                                     name=self.names.fresh(f"{source}_QuantizeLinear")),
                    helper.make_node(DEQUANTIZE, [quantized, scale_name, zero_name], [output],
                                     name=self.names.fresh(f"{source}_DequantizeLinear"))]
            self.after.setdefault(source, []).extend(pair)
            self.new_pairs[key] = output
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
        scale_name = self.constant(np.array(edit.scale, np.float32), f"{edit.tensor}_scale")
        q = self.nodes[edit.node]
        q.input[1] = scale_name
        self.new_scale[q.name] = float(edit.scale)
        for dq in self.graph.node:
            if dq.op_type == DEQUANTIZE and dq.input and dq.input[0] == q.output[0]:
                dq.input[1] = scale_name

    def finish(self) -> onnx.ModelProto:
        insert_after_producers(self.graph, self.after)
        _drop_dead_nodes(self.graph)
        return self.model


def _drop_dead_nodes(graph: onnx.GraphProto) -> None:
    """Remove Q/DQ/Identity nodes whose outputs nobody reads, then initializers nobody reads."""
    while True:
        used = {t for node in graph.node for t in node.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.op_type in (QUANTIZE, DEQUANTIZE, "Identity")
                and not any(o in used for o in n.output)]
        if not dead:
            break
        dead_ids = {id(n) for n in dead}
        kept = [n for n in graph.node if id(n) not in dead_ids]
        del graph.node[:]
        graph.node.extend(kept)
    drop_unread_tensors(graph)


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
