"""A read-only index over an ONNX graph: producers, consumers, constants, types and depth, one lookup away."""

from __future__ import annotations

from functools import cached_property
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import onnx
from onnx import numpy_helper

from qdqtool.errors import ModelError
from qdqtool.onnxgraph.types import declared_types, propagate_types
from qdqtool.trt.rules import FLOAT_TYPES
from qdqtool.weightstore import tensor_array

Use = Tuple[onnx.NodeProto, int]  # (consumer node, input index)


class GraphView:
    """Lookups over the main graph of a model. It never modifies the model."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.nodes: List[onnx.NodeProto] = list(self.graph.node)
        self._producer: Dict[str, onnx.NodeProto] = {}
        self._consumers: Dict[str, List[Use]] = {}
        for node in self.nodes:
            for out in node.output:
                if out:
                    self._producer[out] = node
            for index, name in enumerate(node.input):
                if name:
                    self._consumers.setdefault(name, []).append((node, index))
        self.initializers: Dict[str, onnx.TensorProto] = {t.name: t for t in self.graph.initializer}
        self.input_names = [i.name for i in self.graph.input if i.name not in self.initializers]
        self.output_names = [o.name for o in self.graph.output]
        self._output_set = set(self.output_names)
        self._types: Dict[str, int] = propagate_types(self.nodes, declared_types(model))
        self.by_name: Dict[str, onnx.NodeProto] = {n.name: n for n in self.nodes if n.name}

    # --- structure -------------------------------------------------------------------------------------------
    def producer(self, tensor: str) -> Optional[onnx.NodeProto]:
        return self._producer.get(tensor)

    def consumers(self, tensor: str) -> List[Use]:
        return self._consumers.get(tensor, [])

    def is_graph_output(self, tensor: str) -> bool:
        return tensor in self._output_set

    def fan_out(self, tensor: str) -> int:
        """Consumers plus one if the tensor is also a graph output."""
        return len(self.consumers(tensor)) + (1 if self.is_graph_output(tensor) else 0)

    # --- constants -------------------------------------------------------------------------------------------
    def is_constant(self, tensor: str) -> bool:
        if tensor in self.initializers:
            return True
        node = self.producer(tensor)
        return node is not None and node.op_type == "Constant"

    def constant_dims(self, tensor: str) -> Optional[List[int]]:
        """The shape of a constant (initializer or Constant value) without reading its bytes; None if not one."""
        if tensor in self.initializers:
            return list(self.initializers[tensor].dims)
        node = self.producer(tensor)
        if node is not None and node.op_type == "Constant":
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None:
                return list(attr.t.dims)
        return None

    def constant_value(self, tensor: str) -> Optional[np.ndarray]:
        if tensor in self.initializers:
            return tensor_array(self.initializers[tensor])
        node = self.producer(tensor)
        if node is not None and node.op_type == "Constant":
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None:
                return numpy_helper.to_array(attr.t)
        return None

    # --- types ----------------------------------------------------------------------------------------------
    def elem_type(self, tensor: str) -> Optional[int]:
        """The declared, inferred (onnxgraph.types) or propagated element type; None when nothing types it."""
        return self._types.get(tensor)

    def is_float(self, tensor: str) -> bool:
        """True for float tensors. A tensor nothing types is refused, never guessed."""
        kind = self.elem_type(tensor)
        if kind is None:
            node = self.producer(tensor)
            made_by = f"{node.op_type} node {node.name}" if node is not None else "no node"
            raise ModelError(f"cannot tell the element type of tensor {tensor} (made by {made_by}): ONNX type "
                             "inference could not type it and its producer does not say; add value_info for it "
                             "(onnx.shape_inference or the exporter) and try again")
        return kind in FLOAT_TYPES

    # --- order ----------------------------------------------------------------------------------------------
    @cached_property
    def order(self) -> Dict[str, int]:
        """Node name -> its position in the graph (nodes are in topological order)."""
        return {node.name: i for i, node in enumerate(self.nodes)}

    @cached_property
    def depth(self) -> Dict[str, int]:
        """Longest path, in nodes, from any graph input to each node (by node name); nodes are in topological order."""
        depth_of_tensor: Dict[str, int] = {}
        result: Dict[str, int] = {}
        for node in self.nodes:
            d = 1 + max((depth_of_tensor.get(t, 0) for t in node.input if t), default=0)
            result[node.name] = d
            for out in node.output:
                depth_of_tensor[out] = d
        return result

    def upstream_nodes(self, tensor: str, limit: int = 64) -> Iterable[onnx.NodeProto]:
        """Producers walking backwards along input 0, at most limit steps."""
        node = self.producer(tensor)
        steps = 0
        while node is not None and steps < limit:
            yield node
            if not node.input:
                return
            node = self.producer(node.input[0])
            steps += 1
