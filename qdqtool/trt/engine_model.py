"""The engine as TensorRT runs it: layers (fused groups, standalone Q/DQ, graph-input quantizers, layout copies,
float fallbacks), each with the ONNX nodes it holds and the precision of every tensor it reads and writes.

One vocabulary for both sides: the prediction from a Q/DQ graph (`check`) and a real engine's layer information
(`report`) are both an EngineModel, so a per-node diff, the gates and the HTML page read one shape. Pure data: no
ONNX, no TensorRT.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from qdqtool.trt.kinds import StrEnum


class Precision(StrEnum):
    """A tensor's type as the engine holds it."""

    INT8 = "int8"
    FP16 = "fp16"
    BF16 = "bf16"
    FP32 = "fp32"
    FLOAT = "float"       # predicted float: FP32 or FP16 as the builder's flags and tactics decide
    FP8 = "fp8"
    FP4 = "fp4"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"
    UNKNOWN = "unknown"

    @property
    def is_float(self) -> bool:
        return self in (Precision.FP16, Precision.BF16, Precision.FP32, Precision.FLOAT)

    @property
    def family(self) -> str:
        """What a prediction can say: "int8", "float" (FP32/FP16/BF16 alike) or the type itself."""
        return "float" if self.is_float else str(self)


class LayerRole(StrEnum):
    """What one engine layer is."""

    FUSED = "fused"                     # a compute layer and what fused into it (conv+epilogue+Add+act, conv+pool)
    QUANTIZE = "quantize"               # a standalone QuantizeLinear: a Reformat of Origin "QDQ"
    DEQUANTIZE = "dequantize"           # a standalone DequantizeLinear: a Reformat of Origin "QDQ"
    INPUT_QUANTIZE = "input-quantize"   # a graph input's quantizer: always its own layer, unavoidable, not a defect
    LAYOUT = "layout"                   # a same-type layout copy (Origin "REFORMAT", e.g. FP32 -> FP32 vectorized)
    CONVERT = "convert"                 # a Reformat of Origin "REFORMAT" that changes the type (FP32 -> FP16)
    FLOAT = "float"                     # a layer that computes in float (fallback, or float by design)
    OTHER = "other"                     # shape layers, NoOp, plugins: nothing to say about precision


# roles that are Reformat layers in an engine; the `reformat` gate counts QUANTIZE and DEQUANTIZE only
REFORMAT_ROLES = frozenset({LayerRole.QUANTIZE, LayerRole.DEQUANTIZE, LayerRole.INPUT_QUANTIZE,
                            LayerRole.LAYOUT, LayerRole.CONVERT})


@dataclass(frozen=True)
class TensorPort:
    """One tensor a layer reads or writes, with the type it has there."""

    name: str
    precision: Precision = Precision.UNKNOWN


@dataclass(frozen=True)
class EngineLayer:
    """One layer. name: as TensorRT would print it ("Conv_95 + Add_97 + Relu_98"); nodes: its ONNX nodes in graph
    order; reason: for people (why it runs this way, why it could not fuse); scales: quantizer tensor -> scale;
    fix: what `fix-residuals` would change here, "" when nothing; cause: the why for code."""

    name: str
    role: LayerRole
    nodes: tuple[str, ...] = ()
    op_types: tuple[str, ...] = ()
    inputs: tuple[TensorPort, ...] = ()
    outputs: tuple[TensorPort, ...] = ()
    reason: str = ""
    scales: tuple[tuple[str, float], ...] = ()
    fix: str = ""
    cause: str = ""   # machine-readable why (trt.kinds.Cause text), "" when nothing to say

    @property
    def precision(self) -> Precision:
        """The output precision (the first output's; UNKNOWN when the layer writes nothing known)."""
        known = [p.precision for p in self.outputs if p.precision != Precision.UNKNOWN]
        return known[0] if known else Precision.UNKNOWN

    @property
    def is_reformat(self) -> bool:
        return self.role in REFORMAT_ROLES

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name, "role": str(self.role), "precision": str(self.precision),
            "nodes": list(self.nodes), "op_types": list(self.op_types),
            "inputs": [{"name": p.name, "precision": str(p.precision)} for p in self.inputs],
            "outputs": [{"name": p.name, "precision": str(p.precision)} for p in self.outputs],
            "reason": self.reason, "scales": dict(self.scales), "fix": self.fix, "cause": self.cause,
        }


@dataclass(frozen=True)
class EngineModel:
    """The layers of one engine, in execution order. source: "predicted" (from the Q/DQ graph) or what the layer
    information came from ("engine", "trtexec layer info", "onnxruntime")."""

    source: str
    layers: tuple[EngineLayer, ...]
    notes: tuple[str, ...] = field(default=())

    def roles(self) -> dict[str, int]:
        counted = Counter(str(layer.role) for layer in self.layers)
        return {str(role): counted.get(str(role), 0) for role in LayerRole}

    def layer_of_node(self) -> Mapping[str, EngineLayer]:
        """ONNX node name -> the layer that runs it."""
        return {node: layer for layer in self.layers for node in layer.nodes}

    def of_role(self, *roles: LayerRole) -> list[EngineLayer]:
        return [layer for layer in self.layers if layer.role in roles]

    def to_json(self) -> dict[str, object]:
        return {"source": self.source, "roles": self.roles(), "notes": list(self.notes),
                "layers": [layer.to_json() for layer in self.layers]}


@dataclass(frozen=True)
class NodeDifference:
    """One ONNX node where two engine models disagree: which layer (by its node set) and which output precision."""

    node: str
    expected: str     # "role precision [nodes of its layer]" on the reference side (the engine)
    predicted: str
    what: str         # "group", "role" or "precision"


def node_differences(predicted: EngineModel, engine: EngineModel,
                     nodes: Iterable[str] | None = None) -> list[NodeDifference]:
    """Per ONNX node: the layer it falls in (its node set), the layer's role and its output precision family (int8 or
    float: a prediction cannot tell FP16 from FP32), compared.

    nodes: which ONNX nodes to compare; default: every node the engine names that the prediction knows, and each
    predicted standalone Q/DQ layer by its first node (absent from the engine: fused there). Node sets are compared
    on the nodes both sides know, since engines leave folded nodes (BatchNormalization, an activation after a conv,
    activation DQs) out of layer names and name weights and unnamed layers the ONNX graph does not have."""
    mine, theirs = predicted.layer_of_node(), engine.layer_of_node()
    differences = []
    for node in compared_nodes(predicted, engine) if nodes is None else nodes:
        a, b = mine.get(node), theirs.get(node)
        if a is None or b is None:
            if a is not b:
                differences.append(NodeDifference(node, _describe(b), _describe(a), "group"))
            continue
        what = ("group" if set(a.nodes) & set(theirs) != set(b.nodes) & set(mine) else "role" if a.role != b.role
                else "precision" if a.precision.family != b.precision.family else "")
        if what:
            differences.append(NodeDifference(node, _describe(b), _describe(a), what))
    return differences


_QDQ_ROLES = (LayerRole.QUANTIZE, LayerRole.DEQUANTIZE, LayerRole.INPUT_QUANTIZE)


def compared_nodes(predicted: EngineModel, engine: EngineModel) -> list[str]:
    """The nodes node_differences compares by default: those the engine names that the prediction knows, then each
    predicted standalone Q/DQ layer by its first node."""
    mine, theirs = predicted.layer_of_node(), engine.layer_of_node()
    standalone = [layer.nodes[0] for layer in predicted.of_role(*_QDQ_ROLES) if layer.nodes]
    return list(dict.fromkeys([*(n for n in theirs if n in mine), *standalone]))


def _describe(layer: EngineLayer | None) -> str:
    if layer is None:
        return "absent"
    return f"{layer.role} {layer.precision} [{' + '.join(layer.nodes)}]"
