"""Reading an existing Q/DQ model: its float graph, which edges are quantized at which scale, and what TensorRT rejects.

`read_qdq` never modifies its argument. The float model it returns has every Q/DQ pair removed (consumers read the
float tensor the pair quantized), int8 weights turned back into float initializers and float-weight Q->DQ chains
folded to the float weight; graph output names are kept. Edges are keyed by (consumer node name, input index); a
quantized graph output is keyed by (GRAPH_OUTPUT, output position).

No-op Casts (to the float type the tensor already has) and Identities are transparent: a quantizer reading one
quantizes the tensor behind it, a DQ read through one quantizes its readers, and the float model drops them. Types
come from the model, ONNX type inference and propagation (onnxgraph.types), never from a guess.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import onnx
from onnx import helper

from qdqtool.onnxgraph.edit import copy_model, drop_unread_tensors
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.prepare import default_opset, name_nodes, needs_node_names, refuse_integer_kernels
from qdqtool.onnxgraph.types import add_value_info, inferred_types, is_no_op, propagate_types
from qdqtool.trt.kinds import ProblemKind
from qdqtool.trt.rules import DEQUANTIZE, MIN_QDQ_OPSET, QUANTIZE
from qdqtool.weightstore import detached_tensor, fill_tensor, is_detached, skeleton_copy

log = logging.getLogger("qdqtool")

GRAPH_OUTPUT = ""   # the "consumer" name of a quantized graph output
Edge = tuple[str, int]


@dataclass(frozen=True)
class Quantizer:
    """A Q->DQ pair on one activation edge. tensor: the float tensor in the float model; source: its original name."""

    tensor: str
    scale: float
    zero_point: int
    q_node: str
    dq_node: str
    source: str
    per_channel: bool = False


@dataclass(frozen=True)
class WeightQuantizer:
    """A DQ (int8 initializer) or Q->DQ (float weight) on a constant input; tensor: the float weight's name."""

    tensor: str
    dq_node: str
    q_node: str | None
    axis: int | None
    per_channel: bool
    zero_point_nonzero: bool


@dataclass(frozen=True)
class Problem:
    """Something TensorRT cannot take as it is."""

    kind: ProblemKind
    node: str
    message: str


@dataclass(frozen=True)
class Dequantized:
    """A float weight made from an int8 initializer by its DequantizeLinear: (value - zero point) * scale."""

    value: str          # the int8 constant
    scale: str
    zero_point: str     # "" when the DQ has none
    axis: int | None    # per-channel axis, None per tensor


@dataclass(frozen=True)
class QdqView:
    """float_graph is the float model with its large weights detached (no bytes): enough for structure, types and
    shapes, and cheap for a model of any size. float_model (made on first use, then kept) has every weight; the
    `float_weight` bytes of one detached tensor let a writer stream the float model instead."""

    model: onnx.ModelProto                   # the input with unique node names; repair edits apply to this one
    float_graph: onnx.ModelProto
    edges: dict[Edge, Quantizer]
    weights: dict[Edge, WeightQuantizer]
    problems: tuple[Problem, ...]
    renamed: dict[str, str]                  # original tensor name -> float-model name (quantized graph outputs)
    see_through: tuple[str, ...] = ()        # no-op Cast/Identity nodes read as the tensor behind them
    dequantized: dict[str, Dequantized] = field(default_factory=dict, repr=False)   # float weight name -> recipe

    @cached_property
    def float_model(self) -> onnx.ModelProto:
        model = copy_model(self.float_graph)
        for tensor in model.graph.initializer:
            if is_detached(tensor):
                fill_tensor(tensor, self.float_weight(tensor))
        return model

    def float_weight(self, tensor: onnx.TensorProto) -> bytes | memoryview:
        """The bytes of a detached initializer of float_graph: a dequantized weight (a view of the one array made),
        or the Q/DQ model's own."""
        recipe = self.dequantized.get(tensor.name)
        if recipe is None:
            return self._view.initializers[tensor.name].raw_data
        return memoryview(np.ascontiguousarray(_dequantize(self._view, recipe))).cast("B")

    @cached_property
    def _view(self) -> GraphView:
        return GraphView(self.model)


def _dequantize(view: GraphView, recipe: Dequantized) -> np.ndarray:
    value = view.constant_value(recipe.value)
    scale = view.constant_value(recipe.scale)
    zero = view.constant_value(recipe.zero_point) if recipe.zero_point else None
    shaped = scale
    if recipe.axis is not None:
        shape = [1] * value.ndim
        shape[recipe.axis % value.ndim] = -1
        shaped = scale.reshape(shape)
    offset = 0 if zero is None else (zero.reshape(shaped.shape) if recipe.axis is not None else zero)
    weight = value.astype(np.float32)   # in place from here: one float copy of the weight
    weight -= np.float32(offset)
    weight *= shaped
    return weight


def _scalar_or_array(view: GraphView, tensor: str) -> np.ndarray | None:
    return view.constant_value(tensor) if tensor else None


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


class _Reader:
    def __init__(self, model: onnx.ModelProto, types: dict[str, int]):
        self.model = model
        self.view = GraphView(model)
        self.types = types
        self.behind: dict[str, str] = {}        # output of a no-op Cast/Identity -> its input
        self.see_through: list[str] = []
        self.edges: dict[Edge, Quantizer] = {}
        self.weights: dict[Edge, WeightQuantizer] = {}
        self.problems: list[Problem] = []
        self.replace: dict[str, str] = {}       # DQ output -> float tensor feeding its consumers
        self.removed: set[str] = set()          # Q/DQ node names dropped from the float model
        self.float_weights: list[onnx.TensorProto] = []   # detached: made from dequantized when needed
        self.dequantized: dict[str, Dequantized] = {}

    def problem(self, kind: ProblemKind, node: str, message: str) -> None:
        self.problems.append(Problem(kind, node, message))

    def find_no_ops(self) -> None:
        for node in self.view.nodes:
            if is_no_op(node, self.types) and not self.view.is_graph_output(node.output[0]):
                self.behind[node.output[0]] = node.input[0]
                self.replace[node.output[0]] = node.input[0]
                self.removed.add(node.name)
                self.see_through.append(node.name)

    def tensor_behind(self, tensor: str) -> str:
        while tensor in self.behind:
            tensor = self.behind[tensor]
        return tensor

    def readers(self, tensor: str) -> list[tuple[onnx.NodeProto, int]]:
        """Consumers of a tensor, reading through no-op Casts and Identities."""
        found = []
        for consumer, index in self.view.consumers(tensor):
            if consumer.name in self.removed and consumer.output and consumer.output[0] in self.behind:
                found += self.readers(consumer.output[0])
            else:
                found.append((consumer, index))
        return found

    def read(self) -> None:
        self.find_no_ops()
        for dq in self.view.nodes:
            if dq.op_type == DEQUANTIZE:
                self.read_dequantize(dq)
        for q in self.view.nodes:
            if q.op_type == QUANTIZE and q.name not in self.removed:
                self.problem(ProblemKind.Q_WITHOUT_DQ, q.name,
                             f"QuantizeLinear {q.name} does not feed a DequantizeLinear; "
                             "TensorRT needs Q/DQ pairs (remove it or add the DequantizeLinear)")
        per_channel = any(w.per_channel for w in self.weights.values())
        if per_channel and default_opset(self.model) < MIN_QDQ_OPSET:
            self.problem(ProblemKind.OPSET, "",
                         f"opset {default_opset(self.model)} is below {MIN_QDQ_OPSET}, which per-channel "
                         "weight DequantizeLinear needs; fix-residuals converts it")

    def read_dequantize(self, dq: onnx.NodeProto) -> None:
        x = dq.input[0]
        scale = _scalar_or_array(self.view, dq.input[1])
        zero = _scalar_or_array(self.view, dq.input[2]) if len(dq.input) > 2 else None
        if scale is None:
            self.problem(ProblemKind.DQ_WITHOUT_Q, dq.name, f"DequantizeLinear {dq.name} has a non-constant scale; "
                         "TensorRT needs constant scales")
            return
        zero_nonzero = zero is not None and bool(np.any(zero != 0))
        per_channel = scale.size > 1
        q = self.view.producer(x)
        if q is not None and q.op_type == QUANTIZE:
            source = self.tensor_behind(q.input[0])
            self.removed.update({q.name, dq.name})
            self.replace[dq.output[0]] = source
            if self.view.is_constant(source):
                self.record_weight(dq, source, q.name, per_channel, zero_nonzero)
            else:
                self.record_activation(dq, q, source, scale, zero, per_channel)
            return
        dims = self.view.constant_dims(x)
        if dims is not None:
            self.removed.add(dq.name)
            self.float_weights.append(detached_tensor(dq.output[0], onnx.TensorProto.FLOAT, dims))
            self.dequantized[dq.output[0]] = Dequantized(x, dq.input[1], dq.input[2] if len(dq.input) > 2 else "",
                                                         _axis(dq) if per_channel else None)
            self.record_weight(dq, dq.output[0], None, per_channel, zero_nonzero)
            return
        self.problem(ProblemKind.DQ_WITHOUT_Q, dq.name,
                     f"DequantizeLinear {dq.name} reads {x}, which no QuantizeLinear "
                     "produces; TensorRT needs Q/DQ pairs (quantize the tensor with a QuantizeLinear first)")

    def record_weight(self, dq, tensor: str, q_name: str | None, per_channel: bool, zero_nonzero: bool) -> None:
        axis = _axis(dq) if per_channel else None
        for consumer, index in self.readers(dq.output[0]):
            self.weights[(consumer.name, index)] = WeightQuantizer(tensor, dq.name, q_name, axis, per_channel,
                                                                   zero_nonzero)
        if zero_nonzero:
            self.problem(ProblemKind.ZERO_POINT, dq.name,
                         f"weight DequantizeLinear {dq.name} has a non-zero zero point; "
                         "TensorRT takes symmetric weights only (re-quantize with symmetric weights)")

    def record_activation(self, dq, q, source: str, scale: np.ndarray, zero, per_channel: bool) -> None:
        zero_point = int(np.asarray(zero).ravel()[0]) if zero is not None else 0
        quantizer = Quantizer(source, float(np.max(scale)), zero_point, q.name, dq.name, source, per_channel)
        for consumer, index in self.readers(dq.output[0]):
            if consumer.op_type not in (QUANTIZE, DEQUANTIZE):
                self.edges[(consumer.name, index)] = quantizer
        for position, name in enumerate(self.view.output_names):
            if name == dq.output[0]:
                self.edges[(GRAPH_OUTPUT, position)] = quantizer
        if zero is not None and np.any(zero != 0):
            self.problem(ProblemKind.ZERO_POINT, dq.name,
                         f"{dq.name} quantizes {source} with zero point {zero_point}; TensorRT "
                         "takes symmetric int8 only (re-quantize with symmetric activations, zero point 0)")
        if per_channel:
            self.problem(ProblemKind.PER_CHANNEL_ACTIVATION, dq.name,
                         f"{dq.name} quantizes activation {source} per channel; "
                         "TensorRT takes per-tensor activation scales only (re-quantize per tensor)")


def _output_renames(reader: _Reader) -> dict[str, str]:
    """Float tensors that must take a graph output's name because the output was produced by a DQ."""
    view = reader.view
    protected = set(view.input_names) | set(view.initializers) | set(view.output_names)
    renames: dict[str, str] = {}
    for name in view.output_names:
        source = reader.replace.get(name)
        if source is not None and source not in protected and source not in renames:
            renames[source] = name
    return renames


def _build_float_model(reader: _Reader, renames: dict[str, str]) -> onnx.ModelProto:
    model = skeleton_copy(reader.model)   # weights the float model shares with the Q/DQ model stay detached too
    graph = model.graph

    def resolve(tensor: str) -> str:
        seen = 0
        while tensor in reader.replace and seen < 16:
            tensor, seen = reader.replace[tensor], seen + 1
        return renames.get(tensor, tensor)

    kept: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.name in reader.removed:
            continue
        for index, name in enumerate(node.input):
            if name:
                node.input[index] = resolve(name)
        for index, name in enumerate(node.output):
            node.output[index] = renames.get(name, name)
        kept.append(node)
    renamed_sources = set(renames.values())
    for output in graph.output:
        source = resolve(output.name)
        if source != output.name and output.name not in renamed_sources:
            kept.append(helper.make_node("Identity", [source], [output.name], name=f"{output.name}_Identity"))
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(reader.float_weights)
    drop_unread_tensors(graph)
    return model


def read_qdq(model: onnx.ModelProto) -> QdqView:
    """Parse a Q/DQ model. Refuses integer-kernel models (QLinear*, ConvInteger); other trouble goes to problems."""
    refuse_integer_kernels(model)
    named = model   # read only; copied only when its nodes need names
    if needs_node_names(model.graph):
        named = copy_model(model)
        log.info("%d nodes without a unique name were given one", name_nodes(named.graph))
    types = propagate_types(named.graph.node, inferred_types(named))
    reader = _Reader(named, types)
    reader.read()
    if reader.see_through:
        log.info("%d no-op Cast/Identity nodes read as the tensor behind them", len(reader.see_through))
    renames = _output_renames(reader)
    float_model = _build_float_model(reader, renames)
    add_value_info(float_model, {renames.get(name, name): kind for name, kind in types.items()})
    edges = {edge: _renamed(q, renames) for edge, q in reader.edges.items()}
    return QdqView(named, float_model, edges, dict(reader.weights), tuple(reader.problems), renames,
                   tuple(reader.see_through), dict(reader.dequantized))


def _renamed(quantizer: Quantizer, renames: dict[str, str]) -> Quantizer:
    name = renames.get(quantizer.tensor, quantizer.tensor)
    return quantizer if name == quantizer.tensor else replace(quantizer, tensor=name)


def strip_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float model behind a Q/DQ model (the FP32 reference): every Q/DQ pair removed, weights back in float."""
    return read_qdq(model).float_model
