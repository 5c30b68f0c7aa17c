"""Element types of every tensor, read rather than guessed: declared types, ONNX type inference, then propagation.

ONNX's shape/type inference types most tensors of a model without value_info; where it cannot (an op it does not
know, a failed inference), `propagate_types` follows the producers by a small table of ops whose output has the
type of an input, the type an attribute names (Cast), or a fixed type (Shape). A tensor still untyped is left out:
callers refuse rather than guess.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from qdqtool.onnxgraph.prepare import infer_shapes
from qdqtool.trt.rules import FLOAT_TYPES

# output type = type of this input (the data input of structural and pointwise ops)
SAME_AS_INPUT = {
    "Identity": 0, "Relu": 0, "LeakyRelu": 0, "Clip": 0, "Sigmoid": 0, "HardSigmoid": 0, "HardSwish": 0, "Tanh": 0,
    "Elu": 0, "Selu": 0, "Softplus": 0, "PRelu": 0, "Neg": 0, "Abs": 0, "Exp": 0, "Log": 0, "Sqrt": 0, "Erf": 0,
    "Add": 0, "Sub": 0, "Mul": 0, "Div": 0, "Pow": 0, "Max": 0, "Min": 0, "Mod": 0, "Floor": 0, "Ceil": 0,
    "Round": 0, "Concat": 0, "Reshape": 0, "Flatten": 0, "Squeeze": 0, "Unsqueeze": 0, "Transpose": 0,
    "Slice": 0, "Split": 0, "Gather": 0, "GatherElements": 0, "Expand": 0, "Tile": 0, "Pad": 0, "Resize": 1,
    "Upsample": 0, "MaxPool": 0, "AveragePool": 0, "GlobalAveragePool": 0, "GlobalMaxPool": 0,
    "BatchNormalization": 0, "InstanceNormalization": 0, "LayerNormalization": 0, "Softmax": 0, "LogSoftmax": 0,
    "Conv": 0, "ConvTranspose": 0, "Gemm": 0, "MatMul": 0, "ReduceMean": 0, "ReduceMax": 0, "ReduceMin": 0,
    "ReduceSum": 0, "ReduceProd": 0, "ReduceL2": 0, "DepthToSpace": 0, "SpaceToDepth": 0, "Where": 1,
    "DequantizeLinear": 1, "Dropout": 0, "Reciprocal": 0, "Sin": 0, "Cos": 0, "Sign": 0, "Gelu": 0, "CumSum": 0,
    "Range": 0, "TopK": 0, "GatherND": 0, "ScatterND": 0, "ScatterElements": 0, "Trilu": 0, "Einsum": 0,
    "OneHot": 2, "GroupNormalization": 0, "QuickGelu": 0,
}
FIXED = {"Shape": TensorProto.INT64, "Size": TensorProto.INT64, "NonZero": TensorProto.INT64,
         "ArgMax": TensorProto.INT64, "ArgMin": TensorProto.INT64, "Equal": TensorProto.BOOL,
         "Greater": TensorProto.BOOL, "Less": TensorProto.BOOL, "Not": TensorProto.BOOL}


def declared_types(model: onnx.ModelProto) -> dict[str, int]:
    """Types the model states: graph inputs/outputs, value_info, initializers and Constant nodes."""
    graph = model.graph
    types: dict[str, int] = {}
    for info in list(graph.input) + list(graph.output) + list(graph.value_info):
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a for a in node.attribute if a.name == "value"), None)
            if value is not None:
                types[node.output[0]] = value.t.data_type
    return types


def inferred_types(model: onnx.ModelProto) -> dict[str, int]:
    """Declared types plus ONNX shape/type inference (on a copy); inference failures leave only the declared."""
    types = declared_types(model)
    for name, kind in declared_types(infer_shapes(model, with_weights=False)).items():
        types.setdefault(name, kind)
    return types


def propagate_types(nodes, types: dict[str, int]) -> dict[str, int]:
    """Fill untyped node outputs from their producers (nodes in topological order); returns the same dict."""
    for node in nodes:
        kind = _output_type(node, types)
        if kind is None:
            continue
        for out in node.output:
            if out and out not in types:
                types[out] = kind
    return types


def _output_type(node: onnx.NodeProto, types: dict[str, int]) -> int | None:
    if node.op_type == "Cast":
        return next((a.i for a in node.attribute if a.name == "to"), None)
    if node.op_type in FIXED:
        return FIXED[node.op_type]
    if node.op_type == "ConstantOfShape":
        value = next((a for a in node.attribute if a.name == "value"), None)
        return value.t.data_type if value is not None else TensorProto.FLOAT
    if node.op_type == "QuantizeLinear":
        zero = types.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        return zero or TensorProto.UINT8
    index = SAME_AS_INPUT.get(node.op_type)
    if index is None or len(node.input) <= index:
        return None
    return types.get(node.input[index])


def add_value_info(model: onnx.ModelProto, types: dict[str, int]) -> None:
    """Declare the type of every node output the model leaves untyped and `types` knows (in place)."""
    graph = model.graph
    known = {i.name for i in graph.input} | {o.name for o in graph.output}
    known |= {v.name for v in graph.value_info} | {t.name for t in graph.initializer}
    for node in graph.node:
        for out in node.output:
            if out and out not in known and out in types:
                graph.value_info.append(onnx.helper.make_tensor_value_info(out, types[out], None))
                known.add(out)


def is_no_op(node: onnx.NodeProto, types: dict[str, int]) -> bool:
    """An Identity, or a Cast to the float type its input already has: the same tensor under another name."""
    if node.op_type == "Identity":
        return len(node.input) == 1 and len(node.output) == 1
    if node.op_type != "Cast" or len(node.input) != 1:
        return False
    to = next((a.i for a in node.attribute if a.name == "to"), None)
    return to is not None and to in FLOAT_TYPES and types.get(node.input[0]) == to
