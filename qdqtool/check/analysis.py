"""Per-edge and per-node facts of a Q/DQ model as TensorRT reads it: the scale each input arrives with, the scales
each tensor meets, which weighted ops run INT8, and the findings on Adds, Concats and commuting ops."""

from __future__ import annotations

from functools import cached_property

from qdqtool.check.findings import CheckReport, Finding
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.qdqview import GRAPH_OUTPUT, Edge, QdqView, Quantizer
from qdqtool.placement.plan import PlacementConfig
from qdqtool.trt.analysis import ResidualAdd, activation_inputs, concats_hoisted_onto, engine_residual, is_two_input_add
from qdqtool.trt.engine_model import EngineModel, LayerRole
from qdqtool.trt.kinds import Cause, Kind
from qdqtool.trt.rules import WEIGHTED_OPS, is_commuting
from qdqtool.trt.scales import same_scale

COMMUTING_WALK = 16   # how far a scale is followed through commuting ops (rule 5)


class Analysis:
    """Per-edge and per-node facts of a QdqView; `report()` turns them into findings."""

    def __init__(self, qdq: QdqView, config: PlacementConfig | None = None):
        self.qdq, self.config = qdq, config or PlacementConfig()
        self.view = GraphView(qdq.float_graph)
        self.edges = qdq.edges
        self._in: dict[Edge, float | None] = {}
        self.by_tensor: dict[str, list[tuple[Edge, Quantizer]]] = {}
        for edge, quantizer in qdq.edges.items():
            self.by_tensor.setdefault(quantizer.tensor, []).append((edge, quantizer))

    # --- edges and scales ----------------------------------------------------------------------------------
    def node(self, name: str):
        return self.view.by_name[name]

    def in_scale(self, node_name: str, index: int, depth: int = 0) -> float | None:
        """Scale an input arrives with: its own DQ, or a DQ TensorRT propagates forward through commuting ops."""
        key = (node_name, index)
        if key in self._in:
            return self._in[key]
        quantizer = self.edges.get(key)
        result = quantizer.scale if quantizer is not None else None
        if result is None and depth < COMMUTING_WALK and node_name != GRAPH_OUTPUT:
            producer = self.view.producer(self.node(node_name).input[index])
            if producer is not None and is_commuting(producer):
                result = self.in_scale(producer.name, 0, depth + 1)
        self._in[key] = result
        return result

    def out_scales(self, tensor: str, depth: int = 0) -> set[float]:
        """Scales of the Qs a tensor meets: on its consumers' edges, or behind commuting ops (Q moves backward)."""
        found = {q.scale for (node, _), q in self.by_tensor.get(tensor, []) if node == GRAPH_OUTPUT}
        for consumer, index in self.view.consumers(tensor):
            quantizer = self.edges.get((consumer.name, index))
            if quantizer is not None:
                found.add(quantizer.scale)
            elif index == 0 and is_commuting(consumer) and depth < COMMUTING_WALK:
                for out in consumer.output:
                    if out:
                        found |= self.out_scales(out, depth + 1)
        return found

    # --- weighted ops -----------------------------------------------------------------------------------------
    @cached_property
    def int8_weighted(self) -> dict[str, str]:
        """Weighted op name -> '' when INT8, else the reason it runs in float."""
        result = {}
        for node in self.view.nodes:
            spec = WEIGHTED_OPS.get(node.op_type)
            if spec is None or len(node.input) <= spec.weight_input:
                continue
            weight_edge = (node.name, spec.weight_input)
            act_ok = (node.name, spec.activation_input) in self.edges
            weight_ok = weight_edge in self.qdq.weights or weight_edge in self.edges
            missing = [what for what, ok in (("activation input", act_ok), ("weight", weight_ok)) if not ok]
            result[node.name] = "" if not missing else f"{' and '.join(missing)} not quantized (rule 1)"
        return result

    def is_int8_conv(self, name: str) -> bool:
        return self.int8_weighted.get(name) == ""

    def float_concat_behind(self, tensor: str) -> str | None:
        """The float Concat (no Q on its output) a Q on this float tensor would be hoisted onto (rules 4, 5), if any:
        placement leaves such a tensor float when the Concat is kept float for range spread (trt.analysis)."""
        for name in concats_hoisted_onto(self.view, tensor):
            if not self.out_scales(self.node(name).output[0]):
                return name
        return None

    def hoist_note(self, tensor: str) -> str:
        concat = self.float_concat_behind(tensor)
        return "" if concat is None else (
            f"; {tensor} comes from float Concat {concat}: a Q on it would be hoisted in front of {concat}'s inputs "
            "and make it INT8 at one scale (rules 4, 5), which placement avoids when their ranges differ too much")

    def weighted_finding(self, node) -> Finding:
        reason = self.int8_weighted[node.name]
        if not reason:
            return Finding(Kind.INT8_CONV, node.name, node.op_type, "activation and weight quantized (rule 1)",
                           (node.name,), Cause.QUANTIZED)
        act = node.input[WEIGHTED_OPS[node.op_type].activation_input]
        note = "" if (node.name, WEIGHTED_OPS[node.op_type].activation_input) in self.edges else self.hoist_note(act)
        return Finding(Kind.FLOAT_CONV, node.name, node.op_type, reason + note, (node.name,),
                       Cause.HOISTED_ONTO_FLOAT_CONCAT if note else Cause.NOT_QUANTIZED)

    # --- residual Adds -----------------------------------------------------------------------------------------
    def residual(self, add) -> ResidualAdd | None:
        """The residual shape of an Add with two activation inputs, when an INT8 convolution can host it (the conv
        TensorRT picks: trt.analysis.engine_residual)."""
        if not is_two_input_add(self.view, add):
            return None
        return engine_residual(self.view, add, self.is_int8_conv, self.edges.__contains__)

    def residual_finding(self, add, res: ResidualAdd) -> Finding:
        group = (res.conv, *reversed(res.chain.nodes), add.name)
        quantized_side = [e for e in res.conv_side_edges if e in self.edges]
        skip_tensor = add.input[res.skip_index]
        skip_scale = self.in_scale(add.name, res.skip_index)
        both_ok = (self.config.residual_mode == "both" and quantized_side == [(add.name, res.fused_index)]
                   and skip_scale is not None and same_scale(skip_scale, self.edges[quantized_side[0]].scale))
        if skip_scale is not None and (not quantized_side or both_ok):
            how = "both inputs at one scale" if both_ok else "skip input through DQ, nothing on the conv side"
            return Finding(Kind.FUSED_ADD, add.name, "Add", f"fuses into INT8 {res.conv} ({how}; rule 2)", group,
                           Cause.BOTH_ONE_SCALE if both_ok else Cause.SKIP_QUANTIZED, (skip_tensor,), (skip_scale,))
        if skip_scale is None:
            note = self.hoist_note(skip_tensor)
            reason = (f"fuses into INT8 {res.conv}, but its skip input {skip_tensor} arrives in float, so the group "
                      f"writes float (rule 2; {'quantize the skip input' if not note else 'left float'}){note}")
            return Finding(Kind.FLOAT_ADD, add.name, "Add", reason, group,
                           Cause.HOISTED_ONTO_FLOAT_CONCAT if note else Cause.FLOAT_SKIP, (skip_tensor,))
        quantizers = sorted({self.edges[e].q_node for e in quantized_side})
        dq_nodes = sorted({self.edges[e].dq_node for e in quantized_side})
        reason = (f"Q/DQ on the conv side ({', '.join(dq_nodes)}) splits the fusion of {res.conv} into the Add "
                  "(rule 2; remove it)")
        return Finding(Kind.FLOAT_ADD, add.name, "Add", reason, group, Cause.CONV_SIDE_QDQ,
                       tuple(sorted({self.edges[e].tensor for e in quantized_side})), quantizers=tuple(quantizers))

    def standalone_add_finding(self, add) -> Finding:
        ins = [self.in_scale(add.name, i) for i in range(2)]
        outs = self.out_scales(add.output[0])
        if all(s is not None for s in ins) and outs:
            return Finding(Kind.INT8_ADD, add.name, "Add", "standalone Add with DQ on both inputs and Q on the output "
                           "(rule 3)", (add.name,), Cause.ALL_QUANTIZED)
        if all(s is None for s in ins) and not outs:
            return Finding(Kind.FLOAT_REGION, add.name, "Add", "no fusible INT8 convolution and no Q/DQ around it: "
                           "float by design (rule 3)", (add.name,), Cause.NO_QDQ)
        missing = [f"input {i}" for i, s in enumerate(ins) if s is None] + ([] if outs else ["output"])
        note = next((n for n in (self.hoist_note(add.input[i]) for i, s in enumerate(ins) if s is None) if n), "")
        return Finding(Kind.FLOAT_ADD, add.name, "Add", f"no fusible INT8 convolution and {', '.join(missing)} not "
                       f"quantized: runs in float (rule 3){note}", (add.name,),
                       Cause.HOISTED_ONTO_FLOAT_CONCAT if note else Cause.PARTLY_QUANTIZED)

    # --- Concat -----------------------------------------------------------------------------------------------
    def concat_finding(self, node) -> Finding | None:
        inputs = activation_inputs(self.view, node)
        if not inputs:
            return None
        outs = self.out_scales(node.output[0])
        if not outs:
            dq = [t for i, t in inputs if self.in_scale(node.name, i) is not None]
            if not dq:
                return Finding(Kind.FLOAT_REGION, node.name, "Concat", "no Q/DQ on its inputs or output: float by "
                               "design (rule 4)", (node.name,), Cause.NO_QDQ)
            return Finding(Kind.FLOAT_CONCAT, node.name, "Concat", "output meets no Q: runs in float (rule 4); "
                           f"its DQ inputs ({', '.join(dq)}) are dequantized first", (node.name,), Cause.NO_OUTPUT_Q,
                           tuple(dq))
        target = max(outs)
        issues = [f"output quantized at {len(outs)} scales"] if len(outs) > 1 else []
        causes = [Cause.OUTPUT_SCALES] if len(outs) > 1 else []
        tensors: list[str] = []
        scales: list[float] = sorted(outs)
        quantizers: list[str] = []
        for index, tensor in inputs:
            scale = self.in_scale(node.name, index)
            if scale is not None and not same_scale(scale, target):
                issues.append(f"input {tensor} arrives at scale {scale:.4g}, the output's is {target:.4g}")
                causes.append(Cause.INPUT_SCALE_DIFFERS)
                tensors.append(tensor)
                scales.append(scale)
            elif scale is None:
                others = [(e, q) for e, q in self.by_tensor.get(tensor, []) if not same_scale(q.scale, target)]
                if others:
                    (consumer, _), quantizer = others[0]
                    issues.append(f"input {tensor} is also quantized at scale {quantizer.scale:.4g} for "
                                  f"{consumer or 'the graph output'}")
                    causes.append(Cause.INPUT_TWO_SCALES)
                    tensors.append(tensor)
                    scales.append(quantizer.scale)
                    quantizers.append(quantizer.q_node)
        if issues:
            return Finding(Kind.REQUANT_CONCAT, node.name, "Concat", "; ".join(issues) + ": TensorRT inserts "
                           "requantize/Reformat layers (rule 4; give inputs and output one scale)", (node.name,),
                           causes[0], tuple(tensors), tuple(scales), tuple(quantizers))
        return Finding(Kind.INT8_CONCAT, node.name, "Concat", "inputs and output share one scale: TensorRT removes "
                       "the Concat (rule 4)", (node.name,), Cause.ONE_SCALE, scales=(target,))

    # --- one tensor, one scale ----------------------------------------------------------------------------------
    def scales_needed(self, tensor: str) -> dict[str, float]:
        """Quantizer (Q node, or the Concat whose output Q TensorRT hoists onto this input) -> scale, for every
        quantizer that reads the tensor directly, through no-op Casts, through commuting ops or by Concat hoisting."""
        found = {q.q_node: q.scale for _, q in self.by_tensor.get(tensor, [])}
        for consumer, index in self.view.consumers(tensor):
            if (consumer.name, index) in self.edges:
                found[self.edges[(consumer.name, index)].q_node] = self.edges[(consumer.name, index)].scale
            elif consumer.op_type == "Concat" or (index == 0 and is_commuting(consumer)):
                for scale in self.out_scales(consumer.output[0]) if consumer.output else ():
                    found.setdefault(f"{consumer.name}@{scale:.6g}", scale)
        return found

    def two_scale_findings(self) -> list[Finding]:
        """Float tensors TensorRT would need at two scales: each costs a requantize layer (one tensor, one scale)."""
        candidates = dict.fromkeys(self.by_tensor)
        for node in self.view.nodes:
            if node.op_type == "Concat":
                candidates.update(dict.fromkeys(t for _, t in activation_inputs(self.view, node)))
        findings = []
        for tensor in candidates:
            needed = self.scales_needed(tensor)
            distinct = sorted(set(needed.values()))
            if not distinct or all(same_scale(s, distinct[-1]) for s in distinct):
                continue
            producer = self.view.producer(tensor)
            shown = ", ".join(f"{q} {s:.4g}" for q, s in sorted(needed.items(), key=lambda i: i[1]))
            findings.append(Finding(Kind.TWO_SCALES, producer.name if producer else tensor,
                                    producer.op_type if producer else "input",
                                    f"tensor {tensor} is read at {len(distinct)} scales ({shown}): TensorRT adds a "
                                    "requantize (one tensor, one scale; give its quantizers one scale)",
                                    (producer.name,) if producer else (), Cause.TWO_SCALES, (tensor,),
                                    tuple(needed.values()), tuple(needed)))
        return findings

    # --- commuting ops and Q/DQ that cannot fuse ---------------------------------------------------------------
    def commuting_finding(self, node) -> Finding | None:
        if not node.input or (node.name, 0) not in self.edges:
            return None
        scale = self.edges[(node.name, 0)].scale
        outs = set()
        for out in node.output:
            if out:
                outs |= self.out_scales(out)
        differ = sorted(s for s in outs if not same_scale(s, scale))
        if not differ:
            return None
        return Finding(Kind.SCALE_MISMATCH, node.name, node.op_type, f"input scale {scale:.4g} but output quantized "
                       f"at {', '.join(f'{s:.4g}' for s in differ)}: TensorRT cannot move Q/DQ through it and adds a "
                       "requantize (rule 5)", (node.name,), Cause.COMMUTING_SCALES, (node.input[0],),
                       (scale, *differ))

    def qdq_layer_findings(self, engine: EngineModel) -> list[Finding]:
        """The predicted engine's standalone Q/DQ layers (Reformats) and graph-input quantizers, one finding each."""
        kinds = {LayerRole.QUANTIZE: Kind.REFORMAT, LayerRole.DEQUANTIZE: Kind.REFORMAT,
                 LayerRole.INPUT_QUANTIZE: Kind.INPUT_QUANTIZE}
        findings = []
        for layer in engine.of_role(*kinds):
            findings.append(Finding(kinds[layer.role], layer.nodes[0], layer.op_types[0], layer.reason, layer.nodes,
                                    Cause(layer.cause),
                                    tuple(p.name for p in layer.inputs), tuple(s for _, s in layer.scales)))
        return findings

    def fused_output(self, found: Finding, engine: EngineModel) -> Finding:
        """A fused Add whose convolution writes float in the predicted engine (a float reader of its output) is
        a float Add: TensorRT fuses it but the group's output falls back to float (rule 2)."""
        layer = engine.layer_of_node().get(found.node)
        if found.kind != Kind.FUSED_ADD or layer is None or layer.precision == layer.precision.INT8:
            return found
        why = layer.reason.split(", writes float: ")[-1].removesuffix(" (rules 1, 2)")
        output = layer.outputs[0].name if layer.outputs else ""
        if self.view.is_graph_output(output):   # a graph output is float by design: nothing to quantize
            cause, advice = Cause.GRAPH_OUTPUT, "a graph output is float by design"
        else:
            cause, advice = Cause.FLOAT_READER, "quantize every reader of its output"
        return Finding(Kind.FLOAT_ADD, found.node, found.op_type, f"fuses into INT8 {found.nodes[0]} but the group "
                       f"writes float: {why} (rule 2; {advice})", found.nodes, cause, found.tensors, found.scales)

    def report(self, engine: EngineModel) -> CheckReport:
        findings: list[Finding] = []
        for node in self.view.nodes:
            if node.op_type in WEIGHTED_OPS and node.name in self.int8_weighted:
                findings.append(self.weighted_finding(node))
            elif is_two_input_add(self.view, node):
                res = self.residual(node)
                found = self.residual_finding(node, res) if res else self.standalone_add_finding(node)
                findings.append(self.fused_output(found, engine))
            elif node.op_type == "Concat":
                found = self.concat_finding(node)
                if found is not None:
                    findings.append(found)
            elif is_commuting(node):
                found = self.commuting_finding(node)
                if found is not None:
                    findings.append(found)
        findings += self.two_scale_findings()
        findings += self.qdq_layer_findings(engine)
        return CheckReport(tuple(findings), self.qdq.problems, engine)
