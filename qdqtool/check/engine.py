"""The engine TensorRT will build from a Q/DQ model, predicted from its graph alone (docs/TRT_RULES.md).

One EngineModel (trt/engine_model.py): fused groups (INT8 conv + epilogue + the Add it hosts + activation, conv +
MaxPool), INT8 pooling, Concats and Adds, float layers, and every Q/DQ that cannot fuse as its own layer, each with
the precision of what it reads and writes and the reason. `check`'s findings, `report --compare` and the HTML page
read it. The rules, each held against the engines of ../shared/fixtures/trt/pairs:
- a layer writes INT8 only when every reader of its output is a quantizer (directly, or behind ops a Q moves back
  through: commuting ops, Concats); a fused Conv+Add also needs its skip input to arrive through a DQ;
- a Q fuses into the layer that writes its tensor INT8, else it runs standalone (a graph input's Q always does);
- a DQ fuses into the layers that read it in INT8, else it runs standalone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import onnx

from qdqtool.check.analysis import Analysis
from qdqtool.onnxgraph.qdqview import GRAPH_OUTPUT, Edge, QdqView, Quantizer
from qdqtool.placement.plan import PlacementConfig
from qdqtool.trt.analysis import is_two_input_add
from qdqtool.trt.engine_model import EngineLayer, EngineModel, LayerRole, Precision, TensorPort
from qdqtool.trt.kinds import Cause, Kind
from qdqtool.trt.rules import (
    CONV_POOLS,
    DEQUANTIZE,
    FUSIBLE_EPILOGUES,
    GATED_ACTIVATION_GATES,
    INT8_POOLS,
    QUANTIZE,
    SHAPE_OPS,
    SHAPE_READERS,
    WEIGHTED_OPS,
    constant_epilogue_input,
    is_commuting,
)
from qdqtool.trt.scales import same_scale

READER_WALK = 16     # how far "every reader is a quantizer" follows ops a Q moves back through
EPILOGUE_WALK = 12   # how many pointwise ops after a conv are followed into its group


@dataclass
class _Layer:
    """A layer being built: nodes in graph order; where it sorts among the others."""

    role: LayerRole
    nodes: list[str]
    op_types: list[str]
    inputs: list[TensorPort]
    outputs: list[TensorPort]
    reason: str
    position: float
    scales: dict[str, float] = field(default_factory=dict)
    fix: str = ""
    cause: str = ""

    def freeze(self) -> EngineLayer:
        return EngineLayer(" + ".join(self.nodes), self.role, tuple(self.nodes), tuple(self.op_types),
                           tuple(self.inputs), tuple(self.outputs), self.reason, tuple(self.scales.items()), self.fix,
                           self.cause)


def _precision(int8: bool) -> Precision:
    return Precision.INT8 if int8 else Precision.FLOAT


class _Predictor:
    def __init__(self, qdq: QdqView, analysis: Analysis):
        self.qdq, self.a, self.view = qdq, analysis, analysis.view
        self.edges = qdq.edges
        self.layers: list[_Layer] = []
        self.layer_of: dict[str, _Layer] = {}        # float-graph node -> its layer
        self.int8_tensors: set[str] = set()          # tensors an INT8 layer writes in INT8
        self.int8_edges: set[Edge] = set()           # inputs an INT8 layer reads in INT8 (their DQ fuses)
        self.moved_dq: dict[Edge, list[str]] = {}    # a DQ moved past a commuting op -> the float readers it feeds
        self.hosts = {}
        for node in self.view.nodes:
            if is_two_input_add(self.view, node):
                res = analysis.residual(node)
                if res is not None:
                    self.hosts[node.name] = res

    @cached_property
    def input_region(self) -> frozenset[str]:
        """Tensors computed from graph inputs alone by float pre-processing (no weighted op, no Q/DQ before them):
        a Q on one is the graph input's quantizer, run after that pre-processing."""
        found = set(self.view.input_names)
        for node in self.view.nodes:
            data = [t for t in node.input if t and not self.view.is_constant(t)]
            if node.op_type not in WEIGHTED_OPS and data and all(t in found for t in data) and not any(
                    (node.name, i) in self.edges for i in range(len(node.input))):
                found.update(t for t in node.output if t)
        return frozenset(found)

    def can_run_int8(self, node: onnx.NodeProto) -> bool:
        """An op TensorRT runs in INT8 when Q/DQ surround it: weighted ops, Adds, pools, Concats, commuting ops."""
        return (node.op_type in WEIGHTED_OPS or node.op_type in INT8_POOLS or node.op_type in ("Add", "Concat")
                or is_commuting(node))

    def some_reader_quantized(self, node: onnx.NodeProto) -> bool:
        return any((c.name, i) in self.edges for t in node.output if t for c, i in self.view.consumers(t)) or any(
            self.output_quantized(t) for t in node.output if t)

    # --- readers ---------------------------------------------------------------------------------------------
    def ends_in_quantizers(self, tensor: str, depth: int = 0) -> bool:
        """Every reader of the tensor is a quantizer, directly or behind ops a Q moves back through (commuting ops,
        Concats whose output is quantized): then its writer can write INT8."""
        readers = self.view.consumers(tensor)
        if (self.view.is_graph_output(tensor) and not self.output_quantized(tensor)) or not (
                readers or self.view.is_graph_output(tensor)):
            return False
        return all(self.reads_int8(consumer, index, depth) for consumer, index in readers)

    def reads_int8(self, consumer: onnx.NodeProto, index: int, depth: int = 0) -> bool:
        """The reader takes this input through a quantizer, or passes it on to quantizers only (a Q moves back)."""
        if (consumer.name, index) in self.edges or consumer.op_type in SHAPE_READERS:
            return True
        through = consumer.op_type == "Concat" or (index == 0 and is_commuting(consumer))
        return through and depth < READER_WALK and bool(consumer.output) and all(
            self.ends_in_quantizers(t, depth + 1) for t in consumer.output if t)

    def output_quantized(self, tensor: str) -> bool:
        """A graph output read through a Q/DQ pair (its Q fuses into the writer; the DQ makes the float output)."""
        return any(node == GRAPH_OUTPUT for (node, _), _q in self.a.by_tensor.get(tensor, []))

    def float_readers(self, tensor: str) -> list[str]:
        readers = [c.name for c, i in self.view.consumers(tensor) if not self.reads_int8(c, i)]
        float_output = self.view.is_graph_output(tensor) and not self.output_quantized(tensor)
        return readers + (["the graph output"] if float_output else [])

    def arrives_int8(self, node: onnx.NodeProto, index: int) -> bool:
        return (node.name, index) in self.edges or node.input[index] in self.int8_tensors

    # --- layers --------------------------------------------------------------------------------------------
    def add(self, layer: _Layer, float_nodes: list[onnx.NodeProto]) -> _Layer:
        self.layers.append(layer)
        for node in float_nodes:
            self.layer_of[node.name] = layer
        return layer

    def quantized_inputs(self, node: onnx.NodeProto, indices) -> dict[str, float]:
        """Marks the quantized inputs of node as read in INT8 (their DQ fuses into its layer); their scales."""
        scales = {}
        for index in indices:
            quantizer = self.edges.get((node.name, index))
            if quantizer is not None:
                self.int8_edges.add((node.name, index))
                scales[quantizer.tensor] = quantizer.scale
        return scales

    def epilogue_step(self, tensor: str, host_of: str, have_add: bool) -> tuple[list[onnx.NodeProto], str] | None:
        """The pointwise ops after `tensor` that fuse into the conv's layer (one step), and the tensor after them."""
        readers = self.view.consumers(tensor)
        if self.view.is_graph_output(tensor) or any((c.name, i) in self.edges for c, i in readers):
            return None
        if len(readers) == 2:   # Mul(x, gate(x)): SiLU, HardSwish written out (x * Clip(x + 3) / 6 ...)
            gated = self.gated_step(tensor, readers)
            return None if gated is None else (gated, gated[-1].output[0])
        if len(readers) != 1:
            return None
        consumer, index = readers[0]
        if (consumer.op_type in FUSIBLE_EPILOGUES and index == 0) or \
                constant_epilogue_input(consumer, self.view.is_constant) == index:
            return [consumer], consumer.output[0]
        res = self.hosts.get(consumer.name)
        if not have_add and res is not None and res.conv == host_of and res.fused_index == index:
            return [consumer], consumer.output[0]
        return None

    def pointwise_input(self, node: onnx.NodeProto) -> int | None:
        """The data input of a pointwise op TensorRT fuses into a conv's epilogue (None: not one)."""
        if node.op_type in FUSIBLE_EPILOGUES or node.op_type in GATED_ACTIVATION_GATES or node.op_type == "Clip":
            return 0
        return constant_epilogue_input(node, self.view.is_constant)

    def gated_step(self, tensor: str, readers) -> list[onnx.NodeProto] | None:
        """x read by Mul(x, g) and by a chain of pointwise ops that makes g (each read only by the next): the gate
        chain and the Mul, which fuse into the conv's pointwise epilogue (`Conv + PWN(PWN(Sigmoid, Mul), Add)`)."""
        mul = next((c for c, _ in readers if c.op_type == "Mul" and len(c.input) == 2), None)
        start = next(((c, i) for c, i in readers if c is not mul), None)
        if mul is None or start is None or tensor not in mul.input:
            return None
        gate = mul.input[1] if mul.input[0] == tensor else mul.input[0]
        chain, (node, index) = [], start
        for _ in range(EPILOGUE_WALK):
            if self.pointwise_input(node) != index or any((node.name, i) in self.edges for i in range(len(node.input))):
                return None
            chain.append(node)
            if node.output[0] == gate:
                return [*chain, mul] if self.view.fan_out(gate) == 1 else None
            after = self.view.consumers(node.output[0])
            if len(after) != 1 or self.view.is_graph_output(node.output[0]):
                return None
            node, index = after[0]
        return None

    def conv_group(self, conv: onnx.NodeProto) -> None:
        spec = WEIGHTED_OPS[conv.op_type]
        scales = self.quantized_inputs(conv, (spec.activation_input,))
        weight = self.qdq.weights.get((conv.name, spec.weight_input))
        members, tensor, add = [conv], conv.output[0], None
        for _ in range(EPILOGUE_WALK):
            step = self.epilogue_step(tensor, conv.name, add is not None)
            if step is None:
                break
            nodes, tensor = step
            members += nodes
            add = add or next((n for n in nodes if n.name in self.hosts), None)
        why = []
        skip_int8 = True
        inputs = [TensorPort(conv.input[spec.activation_input], Precision.INT8)]
        if add is not None:
            res = self.hosts[add.name]
            skip_edge = (add.name, res.skip_index)
            skip_int8 = self.a.in_scale(*skip_edge) is not None
            if not skip_int8:
                why.append(f"the skip input of {add.name} arrives in float")
            inputs.append(TensorPort(add.input[res.skip_index], _precision(skip_int8)))
        int8 = skip_int8 and self.ends_in_quantizers(tensor)
        if skip_int8 and not int8:
            readers = self.float_readers(tensor)
            why.append(f"{tensor} is read in float by {', '.join(readers)}" if readers else
                       f"{tensor} is not read by quantizers only")
        readers = self.view.consumers(tensor)
        if int8 and len(readers) == 1 and readers[0][0].op_type in CONV_POOLS and (readers[0][0].name, 0) \
                not in self.edges and self.ends_in_quantizers(readers[0][0].output[0]):
            members.append(readers[0][0])
            tensor = readers[0][0].output[0]
        if add is not None and int8:
            self.int8_edges.add(skip_edge)
            quantizer = self.edges.get(skip_edge)
            if quantizer is not None:
                scales[quantizer.tensor] = quantizer.scale
        if int8:
            self.int8_tensors.add(tensor)
        weight_nodes = [n for n in ((weight.q_node, weight.dq_node) if weight else ()) if n]
        reason = ("INT8 convolution" + (f" hosting {add.name}" if add is not None else "")
                  + (", writes INT8: every reader is a quantizer" if int8 else f", writes float: {'; '.join(why)}"))
        self.add(_Layer(LayerRole.FUSED, [*weight_nodes, *(n.name for n in members)],
                        [*([QUANTIZE, DEQUANTIZE][-len(weight_nodes):] if weight_nodes else []),
                         *(n.op_type for n in members)], inputs, [TensorPort(tensor, _precision(int8))],
                        reason + " (rules 1, 2)", self.view.order[conv.name], scales), members)

    def float_group(self, conv: onnx.NodeProto, reason: str) -> None:
        members, tensor = [conv], conv.output[0]
        for _ in range(EPILOGUE_WALK):
            step = self.epilogue_step(tensor, "", True)
            if step is None:
                break
            members += step[0]
            tensor = step[1]
        self.add(_Layer(LayerRole.FLOAT, [n.name for n in members], [n.op_type for n in members],
                        [TensorPort(conv.input[0], Precision.FLOAT)], [TensorPort(tensor, Precision.FLOAT)],
                        f"runs in float: {reason}", self.view.order[conv.name]), members)

    def single(self, node: onnx.NodeProto, int8: bool, reason: str, data_inputs) -> None:
        if int8:
            self.quantized_inputs(node, data_inputs)
            self.int8_tensors.update(t for t in node.output if t)
        role = LayerRole.OTHER if node.op_type in SHAPE_OPS else LayerRole.FUSED if int8 else LayerRole.FLOAT
        outputs = [TensorPort(t, _precision(int8) if self.view.is_float(t) else Precision.UNKNOWN)
                   for t in node.output if t]
        inputs = [TensorPort(node.input[i], _precision(self.arrives_int8(node, i))) for i in data_inputs]
        self.add(_Layer(role, [node.name], [node.op_type], inputs, outputs, reason, self.view.order[node.name]),
                 [node])

    def other_node(self, node: onnx.NodeProto) -> None:
        data = [i for i, t in enumerate(node.input) if t and not self.view.is_constant(t)]
        if node.op_type == "Concat":
            found = self.a.concat_finding(node)
            int8 = found is not None and found.kind in (Kind.INT8_CONCAT, Kind.REQUANT_CONCAT)
            self.single(node, int8, found.reason if found else "no activation inputs", data)
        elif is_two_input_add(self.view, node):
            found = self.a.standalone_add_finding(node)
            self.single(node, found.kind == Kind.INT8_ADD, found.reason, data)
        elif is_commuting(node) and data and (node.name, data[0]) in self.edges and self.some_reader_quantized(node):
            # a DQ moves forward through a commuting op (rule 5): the op runs INT8 for its quantized readers, and
            # the DQ, moved past it, runs standalone for its float readers, if any
            floats = [r for t in node.output if t for r in self.float_readers(t)]
            if floats:
                self.moved_dq[(node.name, data[0])] = floats
            self.single(node, True, "its input arrives through a DQ and a quantizer reads its output: runs INT8 "
                        "(rule 5)", data[:1])
        elif node.op_type in INT8_POOLS or is_commuting(node):
            int8 = bool(data) and self.arrives_int8(node, data[0]) and all(
                self.ends_in_quantizers(t) for t in node.output if t)
            reason = ("between INT8 input and quantized output: runs INT8 (rules 5, 7)" if int8 else
                      "input or output not quantized: runs in float")
            self.single(node, int8, reason, data[:1])
        else:
            floats = any(self.view.is_float(t) for t in node.output if t)
            self.single(node, False, "no Q/DQ around it: float" if floats else "not a float op", data)

    def predict(self) -> EngineModel:
        for node in self.view.nodes:
            if node.name in self.layer_of:
                continue
            reason = self.a.int8_weighted.get(node.name)
            if reason == "":
                self.conv_group(node)
            elif reason is not None:
                self.float_group(node, reason)
            else:
                self.other_node(node)
        self.place_quantizers()
        self.place_dequantizers()
        layers = sorted(self.layers, key=lambda layer: layer.position)
        return EngineModel("predicted", tuple(layer.freeze() for layer in layers),
                           ("precision 'float' is FP32 or FP16 as the builder flags decide",))

    # --- Q/DQ ----------------------------------------------------------------------------------------------
    def grouped(self, key) -> dict[str, list[tuple[Edge, Quantizer]]]:
        found: dict[str, list[tuple[Edge, Quantizer]]] = {}
        for edge, quantizer in self.edges.items():
            found.setdefault(key(quantizer), []).append((edge, quantizer))
        return found

    def quantizer_layers(self) -> list[tuple[list[str], Quantizer]]:
        """The Q nodes TensorRT runs as one: the Qs of one tensor at one scale are one layer (named after the
        first); a tensor quantized at two scales needs two (and a two-scales finding says so)."""
        found: list[tuple[list[str], Quantizer]] = []
        for q_node, uses in self.grouped(lambda q: q.q_node).items():
            quantizer = uses[0][1]
            twin = next((names for names, q in found
                         if q.tensor == quantizer.tensor and same_scale(q.scale, quantizer.scale)), None)
            if twin is None:
                found.append(([q_node], quantizer))
            else:
                twin.append(q_node)
        return found

    def place_quantizers(self) -> None:
        for q_nodes, quantizer in self.quantizer_layers():
            tensor = quantizer.tensor
            producer = self.view.producer(tensor)
            ports = ([TensorPort(tensor, Precision.FP32)], [TensorPort(tensor, Precision.INT8)])
            if tensor in self.input_region:
                after = "" if producer is None else f" after its float pre-processing ({producer.name})"
                self.layers.append(_Layer(LayerRole.INPUT_QUANTIZE, q_nodes, [QUANTIZE] * len(q_nodes), *ports,
                                          f"quantizes the graph input{after}: always its own layer, unavoidable",
                                          -1.0 if producer is None else self.view.order[producer.name] + 0.5,
                                          {tensor: quantizer.scale}, cause=Cause.GRAPH_INPUT))
                continue
            writer = self.layer_of.get(producer.name)
            if tensor in self.int8_tensors and writer is not None:
                writer.nodes += q_nodes
                writer.op_types += [QUANTIZE] * len(q_nodes)
                continue
            readers = self.float_readers(tensor)
            int8_writer = writer is not None and writer.role == LayerRole.FUSED
            float_only = [r for r in readers if r in self.view.by_name and not self.can_run_int8(self.view.by_name[r])]
            if not int8_writer:
                cause = Cause.FLOAT_BOUNDARY
                why = (f"{producer.name} runs in float ({writer.reason if writer else 'float'}): where a float "
                       "region meets an INT8 one, TensorRT runs the Q on its own wherever it stands")
            elif float_only:
                cause = Cause.FLOAT_BOUNDARY
                why = (f"{tensor} is also read by {', '.join(float_only)}, which cannot run INT8, so {producer.name} "
                       "writes float: where a float region meets an INT8 one, TensorRT runs the Q on its own")
            elif readers:
                cause = Cause.FLOAT_READER
                why = f"{tensor} is also read in float by {', '.join(readers)}, so {producer.name} writes float"
            else:
                cause = Cause.FLOAT_SKIP
                why = f"{producer.name}'s layer writes float ({writer.reason})"
            fix = {Cause.FLOAT_READER: f"quantize {tensor} for {', '.join(readers)} too (one scale), so "
                                       f"{producer.name} writes INT8",
                   Cause.FLOAT_SKIP: "quantize the skip input of the Add fused there"}.get(cause, "")
            self.layers.append(_Layer(LayerRole.QUANTIZE, q_nodes, [QUANTIZE] * len(q_nodes),
                                      [TensorPort(tensor, Precision.FLOAT)], ports[1],
                                      f"runs standalone (a Reformat): {why} (rules 2, 7)",
                                      self.view.order[producer.name] + 0.5, {tensor: quantizer.scale}, fix, cause))

    def place_dequantizers(self) -> None:
        for dq_node, uses in self.grouped(lambda q: q.dq_node).items():
            edges = [edge for edge, _ in uses]
            quantizer = uses[0][1]
            moved = [f"{r} (moved past {name}, rule 5)" for name, i in edges for r in self.moved_dq.get((name, i), [])]
            if moved:
                self.layers.append(_Layer(
                    LayerRole.DEQUANTIZE, [dq_node], [DEQUANTIZE], [TensorPort(quantizer.tensor, Precision.INT8)],
                    [TensorPort(quantizer.tensor, Precision.FLOAT)],
                    f"runs standalone (a Reformat): feeds {', '.join(moved)}, which reads it in float (rule 7)",
                    self.view.order[edges[0][0]] + 0.5, {quantizer.tensor: quantizer.scale}, "", Cause.FLOAT_CONSUMER))
                continue
            if all(edge in self.int8_edges for edge in edges):
                reader = self.layer_of[edges[0][0]]
                reader.nodes.insert(0, dq_node)
                reader.op_types.insert(0, DEQUANTIZE)
                continue
            floats = sorted({name or "the graph output" for name, _ in edges if (name, _) not in self.int8_edges})
            first = min((self.view.order[n] for n, _ in edges if n != GRAPH_OUTPUT), default=len(self.view.nodes))
            self.layers.append(_Layer(
                LayerRole.DEQUANTIZE, [dq_node], [DEQUANTIZE], [TensorPort(quantizer.tensor, Precision.INT8)],
                [TensorPort(quantizer.tensor, Precision.FLOAT)],
                f"runs standalone (a Reformat): feeds {', '.join(floats)}, which reads it in float (rule 7)",
                first - 0.5, {quantizer.tensor: quantizer.scale}, "remove this Q/DQ pair, or quantize the layer "
                "reading it" if len(floats) == len(edges) else "", Cause.FLOAT_CONSUMER))


def predict_engine(qdq: QdqView, config: PlacementConfig | None = None,
                   analysis: Analysis | None = None) -> EngineModel:
    """The engine TensorRT will build from a Q/DQ model, layer by layer, from the graph alone (source "predicted")."""
    return _Predictor(qdq, analysis or Analysis(qdq, config)).predict()
