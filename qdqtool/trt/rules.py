"""TensorRT's Q/DQ facts as small tables (see docs/TRT_RULES.md). Placement, checks and reports read these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import onnx

QUANTIZE = "QuantizeLinear"
DEQUANTIZE = "DequantizeLinear"
QDQ_OPS = frozenset({QUANTIZE, DEQUANTIZE})

INT8_MIN, INT8_MAX = -128, 127          # activation range
WEIGHT_MAX = 127                        # weights use the symmetric range [-127, 127]
MIN_QDQ_OPSET = 13                      # per-channel DequantizeLinear (axis) needs opset 13


@dataclass(frozen=True)
class WeightedOp:
    """An op TensorRT runs as an INT8 kernel when its activation input and its weight are both quantized."""

    activation_input: int
    weight_input: int
    channel_axis_name: str  # how the per-output-channel axis of the weight is found (see weight_channel_axis)


# Rule 1: quantize every input of these (activation per tensor, weight per output channel); never their output.
WEIGHTED_OPS = {
    "Conv": WeightedOp(activation_input=0, weight_input=1, channel_axis_name="first"),
    "ConvTranspose": WeightedOp(activation_input=0, weight_input=1, channel_axis_name="second"),
    "Gemm": WeightedOp(activation_input=0, weight_input=1, channel_axis_name="gemm"),
    "MatMul": WeightedOp(activation_input=0, weight_input=1, channel_axis_name="last"),
}

CONV_OPS = frozenset({"Conv", "ConvTranspose"})

# Rule 5: ops TensorRT moves Q/DQ through (data input 0); they need no Q/DQ of their own but equal scales both sides.
COMMUTING_OPS = frozenset({
    "MaxPool", "Relu", "Reshape", "Transpose", "Slice", "Split", "Resize", "Pad", "Flatten",
    "Squeeze", "Unsqueeze", "Identity", "Upsample", "DepthToSpace", "SpaceToDepth",
})

# Pooling TensorRT runs in INT8 between a DQ and a Q (CudaPooling int8 -> int8); MaxPool also fuses into the INT8
# convolution before it (ConvActPool) when it writes INT8.
INT8_POOLS = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"})
CONV_POOLS = frozenset({"MaxPool"})
# Ops that only move or reshape data: TensorRT turns them into shuffles or folds them; no precision of their own.
SHAPE_OPS = frozenset({
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Shape", "Gather", "Identity", "Cast", "Constant",
    "ConstantOfShape", "Expand", "Slice", "Split", "Pad", "Range", "Unique", "NonZero",
})

# Ops that read only a tensor's shape, never its values: they do not make its writer write float.
SHAPE_READERS = frozenset({"Shape", "Size"})

# Pointwise ops TensorRT fuses into a preceding convolution (Conv(+BN)(+act) -> Add). Single data input 0.
FUSIBLE_EPILOGUES = frozenset({
    "BatchNormalization", "Relu", "LeakyRelu", "Clip", "HardSwish", "Elu", "Selu", "Softplus", "Tanh",
    "PRelu", "Sigmoid",
})
# Elementwise ops with a constant operand (a bias or scale written as its own node, a BatchNorm split into Mul/Add):
# TensorRT folds them into the preceding convolution or Gemm, as `fc.bias + ... [ElementWise]` in a Gemm layer's name.
CONSTANT_EPILOGUES = frozenset({"Add", "Sub", "Mul", "Div"})
# Gated activations written as Mul(x, gate(x)): SiLU = x * Sigmoid(x), HardSwish = x * HardSigmoid(x).
GATED_ACTIVATION_GATES = frozenset({"Sigmoid", "HardSigmoid"})

# Ops whose presence means the model was quantized for ONNX Runtime's integer kernels: TensorRT's parser rejects them.
INTEGER_KERNEL_OPS = frozenset({
    "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
    "QLinearAdd", "QLinearMul", "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearSoftmax", "QLinearReduceMean", "QLinearWhere", "QGemm",
    "DynamicQuantizeLSTM", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention",
})

# Ops that begin a detection-head decode; a weighted op fed by one of these (e.g. YOLO's DFL Conv) stays float (rule 6).
DECODE_OPS = frozenset({"Softmax"})

FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16})


def weight_channel_axis(op: onnx.NodeProto, weight_rank: int) -> Optional[int]:
    """The axis of the weight that holds output channels, or None when the weight is 1-D (per tensor)."""
    if weight_rank < 2:
        return None
    kind = WEIGHTED_OPS[op.op_type].channel_axis_name
    if kind == "first":
        return 0
    if kind == "second":
        return 1
    if kind == "gemm":
        trans_b = next((a.i for a in op.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return weight_rank - 1


def constant_epilogue_input(node: onnx.NodeProto, is_constant) -> Optional[int]:
    """For an elementwise op with one constant operand (CONSTANT_EPILOGUES), the index of its data input, else None."""
    if node.op_type not in CONSTANT_EPILOGUES or len(node.input) != 2:
        return None
    constant = [is_constant(t) for t in node.input]
    if constant == [False, True]:
        return 0
    if constant == [True, False] and node.op_type in ("Add", "Mul"):
        return 1
    return None


def is_commuting(node: onnx.NodeProto) -> bool:
    """Rule 5, with the attribute conditions: Resize only in nearest mode, Pad only with a zero constant."""
    if node.op_type not in COMMUTING_OPS:
        return False
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type in ("Resize", "Upsample"):
        return attrs.get("mode", b"nearest") in (b"nearest", "nearest")
    if node.op_type == "Pad":
        mode_ok = attrs.get("mode", b"constant") in (b"constant", "constant")
        return mode_ok and len(node.input) < 3 and float(attrs.get("value", 0.0)) == 0.0
    return True
