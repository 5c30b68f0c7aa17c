"""A real engine's layer information as an EngineModel (trt/engine_model.py), the shape `check` predicts, so the two
compare node by node (the report's comparison with a model) and the HTML page draws either."""

from __future__ import annotations

import re

from qdqtool.report.layers import INT8, UNKNOWN, LayerPrecision, PrecisionReport, ReformatKind
from qdqtool.trt.engine_model import EngineLayer, EngineModel, LayerRole, Precision, TensorPort

# layer types that hold no computation of their own: shuffles, no-ops, shape and constant layers
_SHAPE_LAYER_TYPES = ("noop", "shuffle", "constant", "shape", "slice", "gather", "identity", "myelinshape")
_OP_TYPE = re.compile(r"([A-Za-z]+)(?:_\d+)?$")
_PRECISIONS = {str(p): p for p in Precision}


def _precision(text: str) -> Precision:
    return _PRECISIONS.get(text, Precision.UNKNOWN)


def _op_type(node: str) -> str:
    """'Conv_95' -> 'Conv', '/model/layer1/Add' -> 'Add'; '' when the name does not say."""
    match = _OP_TYPE.search(node.rsplit("/", 1)[-1])
    return match.group(1) if match else ""


def _ports(names: tuple[str, ...], precisions: tuple[str, ...]) -> tuple[TensorPort, ...]:
    count = max(len(names), len(precisions))
    return tuple(TensorPort(names[i] if i < len(names) else "",
                            _precision(precisions[i]) if i < len(precisions) else Precision.UNKNOWN)
                 for i in range(count))


def layer_role(layer: LayerPrecision, graph_inputs: frozenset[str]) -> LayerRole:
    """Reformats by their kind (Origin); a layer touching INT8 is a fused INT8 group; all-float is FLOAT; shape
    layers and layers of unknown precision are OTHER."""
    kind = layer.reformat_kind(graph_inputs)
    if kind:
        return LayerRole(kind)
    if any(word in layer.layer_type.lower() for word in _SHAPE_LAYER_TYPES) or not layer.onnx_nodes:
        return LayerRole.OTHER
    known = [p for p in (*layer.input_precisions, *layer.output_precisions) if p != UNKNOWN]
    if INT8 in known:
        return LayerRole.FUSED
    return LayerRole.FLOAT if known else LayerRole.OTHER


def _reason(layer: LayerPrecision, role: LayerRole) -> str:
    precisions = f"{'+'.join(layer.input_precisions) or '?'} -> {'+'.join(layer.output_precisions) or '?'}"
    what = layer.layer_type or "layer"
    if layer.origin:
        what += f", Origin {layer.origin}"
    return f"{what}: {precisions}" + (f", tactic {layer.tactic}" if layer.tactic and role != LayerRole.OTHER else "")


def engine_from_layers(report: PrecisionReport) -> EngineModel:
    """The layers of a built engine (its layer information) as an EngineModel: nodes from layer names or ONNX
    metadata, roles from the Origin field and the tensor types (ReformatKind, layer_role)."""
    graph_inputs = frozenset(report.io_tensors)
    layers = []
    for layer in report.layers:
        role = layer_role(layer, graph_inputs)
        nodes = layer.onnx_nodes or ((layer.name,) if layer.is_reformat else ())
        layers.append(EngineLayer(
            name=layer.name, role=role, nodes=nodes, op_types=tuple(_op_type(n) for n in nodes),
            inputs=_ports(layer.input_tensors, layer.input_precisions),
            outputs=_ports(layer.output_tensors, layer.output_precisions),
            reason=_reason(layer, role)))
    notes = report.notes + (() if report.precision_known else ("precision unknown: names only",))
    return EngineModel(report.source or report.backend, tuple(layers), notes)


__all__ = ["ReformatKind", "engine_from_layers", "layer_role"]
