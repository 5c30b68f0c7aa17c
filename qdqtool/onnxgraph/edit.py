"""The one editor of raw ModelProtos: fresh names, Q/DQ insertion, node placement and pruning.

Planners decide; appliers (placement/apply.py, repair/apply.py, build/ort_lowering.py) call these helpers on a
copy of the model. Every helper is linear in the size of the graph.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.trt.rules import DEQUANTIZE, QUANTIZE


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy; appliers edit the copy, never what the caller gave."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    return result


class Names:
    """Fresh tensor/node names that clash with nothing in the graph (nor with each other)."""

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.used: set[str] = {t.name for t in graph.initializer} | {i.name for i in graph.input}
        self.used.update(o.name for o in graph.output)
        for node in graph.node:
            self.used.update(node.input)
            self.used.update(node.output)
            self.used.add(node.name)
        self._next_suffix: dict[str, int] = {}

    def fresh(self, base: str) -> str:
        """base, else the first free base_1, base_2, ...; the name returned is taken."""
        name, suffix = base, self._next_suffix.get(base, 1)
        while name in self.used:
            name, suffix = f"{base}_{suffix}", suffix + 1
        self._next_suffix[base] = suffix
        self.used.add(name)
        return name


def add_initializer(graph: onnx.GraphProto, names: Names, value: np.ndarray, base: str) -> str:
    """Append value as a new initializer under a fresh name derived from base; returns the name."""
    name = names.fresh(base)
    graph.initializer.append(numpy_helper.from_array(value, name))
    return name


def scale_and_zero(graph: onnx.GraphProto, names: Names, scale: float | np.ndarray, base: str) -> tuple[str, str]:
    """Initializers for an int8 symmetric quantizer (float32 scale, int8 zero point 0); returns their names."""
    scale_value = np.asarray(scale, np.float32)
    scale_name = add_initializer(graph, names, scale_value, f"{base}_scale")
    zero_name = add_initializer(graph, names, np.zeros(scale_value.shape, np.int8), f"{base}_zero_point")
    return scale_name, zero_name


def qdq_nodes(names: Names, tensor: str, scale_name: str, zero_name: str, axis: Optional[int] = None,
              quantize: bool = True, base: Optional[str] = None) -> tuple[list[onnx.NodeProto], str]:
    """QuantizeLinear (optional) and DequantizeLinear nodes reading tensor; returns (nodes, dequantized tensor).
    New names derive from base (default: the tensor's name)."""
    base = tensor if base is None else base
    nodes: list[onnx.NodeProto] = []
    source = tensor
    if quantize:
        source = names.fresh(f"{base}_quantized")
        nodes.append(helper.make_node(QUANTIZE, [tensor, scale_name, zero_name], [source],
                                      name=names.fresh(f"{base}_QuantizeLinear")))
    output = names.fresh(f"{base}_dequantized")
    attrs = {} if axis is None else {"axis": axis}
    nodes.append(helper.make_node(DEQUANTIZE, [source, scale_name, zero_name], [output],
                                  name=names.fresh(f"{base}_DequantizeLinear"), **attrs))
    return nodes, output


def insert_after_producers(graph: onnx.GraphProto, after: Mapping[str, Sequence[onnx.NodeProto]],
                           first: Sequence[onnx.NodeProto] = ()) -> None:
    """Reorder graph.node: `first`, then after[t] for graph inputs/initializers t, then each node followed by
    after[t] for each of its outputs t (so new nodes stand right behind what they read)."""
    ordered: list[onnx.NodeProto] = list(first)
    for name in dict.fromkeys([i.name for i in graph.input] + [t.name for t in graph.initializer]):
        ordered.extend(after.get(name, ()))
    for node in graph.node:
        ordered.append(node)
        for out in node.output:
            ordered.extend(after.get(out, ()))
    del graph.node[:]
    graph.node.extend(ordered)


def _read_tensors(graph: onnx.GraphProto) -> set[str]:
    return {t for node in graph.node for t in node.input} | {o.name for o in graph.output}


def drop_dead_nodes(graph: onnx.GraphProto, op_types: Collection[str]) -> None:
    """Remove nodes of op_types whose outputs nobody reads, repeatedly (a dead DQ makes its Q dead), in one pass
    over a reader count."""
    readers: dict[str, int] = {o.name: 1 for o in graph.output}
    producer: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        for tensor in node.input:
            readers[tensor] = readers.get(tensor, 0) + 1
        for tensor in node.output:
            producer[tensor] = node
    dead: set[int] = set()
    pending = [n for n in graph.node if n.op_type in op_types and not any(readers.get(o) for o in n.output)]
    while pending:
        node = pending.pop()
        if id(node) in dead:
            continue
        dead.add(id(node))
        for tensor in node.input:
            readers[tensor] -= 1
            source = producer.get(tensor)
            if (readers[tensor] == 0 and source is not None and source.op_type in op_types
                    and not any(readers.get(o) for o in source.output)):
                pending.append(source)
    if dead:
        kept = [n for n in graph.node if id(n) not in dead]
        del graph.node[:]
        graph.node.extend(kept)


def remove_initializers(graph: onnx.GraphProto, names: Iterable[str]) -> None:
    """Remove the named initializers in place: the others are not copied (re-adding them would copy their bytes,
    and protobuf keeps the old ones' memory while the model lives)."""
    names = set(names)
    for index in reversed(range(len(graph.initializer))):
        if graph.initializer[index].name in names:
            del graph.initializer[index]


def drop_unread_tensors(graph: onnx.GraphProto, candidates: Optional[Iterable[str]] = None) -> None:
    """Remove initializers nobody reads (only those in candidates, if given) with their graph-input entries, and
    value_info of tensors nobody makes."""
    used = _read_tensors(graph)
    unread = {t.name for t in graph.initializer if t.name not in used}
    if candidates is not None:
        unread &= set(candidates)
    if unread:
        remove_initializers(graph, unread)
        kept_inputs = [i for i in graph.input if i.name not in unread]
        del graph.input[:]
        graph.input.extend(kept_inputs)
    produced = {t for node in graph.node for t in node.output}
    kept_info = [v for v in graph.value_info if v.name in produced]
    if len(kept_info) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(kept_info)


def _append_outputs(model: onnx.ModelProto, tensors: Sequence[str]) -> None:
    view = GraphView(model)
    present = {o.name for o in model.graph.output}
    for name in dict.fromkeys(tensors):
        if name not in present:
            view.is_float(name)   # a tensor nothing types is refused (ModelError), never exposed as a guess
            model.graph.output.append(helper.make_tensor_value_info(name, view.elem_type(name), None))
            present.add(name)


def expose_tensors(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """A copy of the model whose graph outputs also include the given intermediate tensors."""
    exposed = copy_model(model)
    _append_outputs(exposed, tensors)
    return exposed


@contextmanager
def tensors_exposed(model: onnx.ModelProto, tensors: Sequence[str]) -> Iterator[onnx.ModelProto]:
    """The model itself with the given tensors added as graph outputs for the block (no copy: models near 2 GB)."""
    kept = len(model.graph.output)
    try:
        _append_outputs(model, tensors)
        yield model
    finally:
        del model.graph.output[kept:]
