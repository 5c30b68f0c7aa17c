"""Per-node precision of an ONNX Runtime optimised graph, in the same LayerPrecision form as TensorRT layers.

QLinear*/QGemm/ConvInteger/MatMulInteger nodes are int8 kernels; QuantizeLinear/DequantizeLinear are reformat-like;
data-movement ops (MaxPool, Reshape, ...) take the precision of the tensor they move; everything else computes in
float. A float node on a path from an int8 node to an int8 node is a fallback.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from qdqtool.onnxgraph.graph import GraphView
from qdqtool.report.layers import FLOAT_PRECISIONS, INT8, UNKNOWN, LayerPrecision
from qdqtool.trt.rules import DEQUANTIZE, QUANTIZE

INTEGER_KERNELS = frozenset({"QGemm", "ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention"})
INTEGER_KERNEL_PREFIX = "QLinear"
SHAPE_OPS = frozenset({"Shape", "Size", "NonZero", "ArgMax", "ArgMin"})
BOOL_OPS = frozenset({"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Xor", "IsNaN"})
PRECISION_OF_TYPE = {
    onnx.TensorProto.INT8: INT8, onnx.TensorProto.UINT8: INT8, onnx.TensorProto.FLOAT: "fp32",
    onnx.TensorProto.FLOAT16: "fp16", onnx.TensorProto.BFLOAT16: "bf16", onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT64: "int64", onnx.TensorProto.BOOL: "bool", onnx.TensorProto.DOUBLE: "fp64",
}


def is_integer_kernel(op_type: str) -> bool:
    return op_type.startswith(INTEGER_KERNEL_PREFIX) or op_type in INTEGER_KERNELS


def _attribute(node: onnx.NodeProto, name: str, default=None):
    attr = next((a for a in node.attribute if a.name == name), None)
    return onnx.helper.get_attribute_value(attr) if attr is not None else default


def _output_type(node: onnx.NodeProto, types: dict[str, int]) -> int:
    """The element type of a node's first output, from its op and its inputs' types (0 when unknown)."""
    op = node.op_type
    if op == QUANTIZE:
        return types.get(node.input[2], onnx.TensorProto.UINT8) if len(node.input) > 2 else onnx.TensorProto.UINT8
    if op == DEQUANTIZE:
        return types.get(node.input[1], onnx.TensorProto.FLOAT)
    if op == "QLinearConcat":
        return types.get(node.input[1], onnx.TensorProto.UINT8)
    if op in ("ConvInteger", "MatMulInteger"):
        return onnx.TensorProto.INT32
    if op == "Cast":
        return int(_attribute(node, "to", 0))
    if op in SHAPE_OPS:
        return onnx.TensorProto.INT64
    if op in BOOL_OPS:
        return onnx.TensorProto.BOOL
    known = [types[name] for name in node.input if name in types]
    if is_integer_kernel(op):
        return known[0] if known else onnx.TensorProto.UINT8
    return known[0] if known else 0


def infer_types(view: GraphView) -> dict[str, int]:
    """Element types of every tensor: declared ones first, the rest propagated in graph order."""
    types = {name: kind for name in list(view.initializers) + view.input_names
             if (kind := view.elem_type(name)) is not None}
    for info in list(view.graph.value_info) + list(view.graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    for node in view.nodes:
        if node.op_type == "Constant":
            value = view.constant_value(node.output[0])
            if value is not None:
                types[node.output[0]] = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
            continue
        guessed = _output_type(node, types)
        for output in node.output:
            if output and output not in types and guessed:
                types[output] = guessed
    return types


def _precision(tensor: str, types: dict[str, int]) -> str:
    return PRECISION_OF_TYPE.get(types.get(tensor, 0), UNKNOWN)


def _data_inputs(node: onnx.NodeProto, view: GraphView) -> list[str]:
    return [name for name in node.input if name and not view.is_constant(name)]


def _requantizes(node: onnx.NodeProto, view: GraphView) -> bool:
    """QLinearConcat with an input scale other than the output scale (ONNX Runtime requantizes that input)."""
    if node.op_type != "QLinearConcat":
        return False
    out_scale = view.constant_value(node.input[0])
    in_scales = [view.constant_value(node.input[i]) for i in range(3, len(node.input), 3)]
    if out_scale is None or any(s is None for s in in_scales):
        return False
    return any(not np.allclose(s, out_scale) for s in in_scales)


def _int8_paths(view: GraphView, int8_nodes: set[int], float_nodes: set[int]) -> tuple[set, set]:
    """Tensors reachable from an int8 node through float/reformat nodes, and tensors from which one is reachable."""
    passes = float_nodes | {i for i, n in enumerate(view.nodes) if n.op_type in (QUANTIZE, DEQUANTIZE)}
    from_int8: set = set()
    for index, node in enumerate(view.nodes):
        if index in int8_nodes or (index in passes and any(name in from_int8 for name in node.input)):
            from_int8.update(node.output)
    to_int8: set = set()
    for index in reversed(range(len(view.nodes))):
        node = view.nodes[index]
        if index in int8_nodes or (index in passes and any(name in to_int8 for name in node.output)):
            to_int8.update(node.input)
    return from_int8, to_int8


def map_node_precisions(model: onnx.ModelProto) -> list[LayerPrecision]:
    """One LayerPrecision per node of an (optimised) ONNX Runtime graph; unnamed nodes are called '<op>_<index>'."""
    view = GraphView(model)
    types = infer_types(view)
    int8_nodes = {i for i, n in enumerate(view.nodes) if is_integer_kernel(n.op_type)}
    float_nodes = {i for i, n in enumerate(view.nodes)
                   if i not in int8_nodes and n.op_type not in (QUANTIZE, DEQUANTIZE)
                   and _precision(n.output[0], types) in FLOAT_PRECISIONS}
    from_int8, to_int8 = _int8_paths(view, int8_nodes, float_nodes)
    layers = []
    for index, node in enumerate(view.nodes):
        name = node.name or f"{node.op_type}_{index}"
        outputs: Sequence[str] = [o for o in node.output if o]
        fallback = index in float_nodes and any(i in from_int8 for i in node.input) and any(
            o in to_int8 for o in outputs)
        layers.append(LayerPrecision(
            name=name,
            layer_type=node.op_type,
            onnx_nodes=(name,),
            input_precisions=tuple(_precision(i, types) for i in _data_inputs(node, view)),
            output_precisions=tuple(_precision(o, types) for o in outputs),
            tactic=node.domain or "ai.onnx",
            is_reformat=node.op_type in (QUANTIZE, DEQUANTIZE),
            fused_residual_add=node.op_type == "FusedConv" and len(node.input) >= 4 and bool(node.input[3]),
            is_fallback=fallback,
            requantizes=_requantizes(node, view),
        ))
    return layers
