"""Which quantizer hurts: every quantized activation of a Q/DQ model, its FP32 tensor against its dequantized value.

Two views of blame. *Local*: running the FP32 model and the Q/DQ model side by side, the FP32 tensor against the
Q/DQ model's dequantized value of it (quantization of this tensor plus everything upstream). *Marginal*: the outputs
of the model with only that one quantizer active (every other Q/DQ pair removed, weights float) against the model
with none (the view calibrate's keep-float ranking uses). Statistics are running sums per tensor, one sample alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import onnx

from qdqtool.accuracy.measure import DEFAULT_MEASURE, MeasureConfig, headline_error
from qdqtool.onnxgraph.edit import Names, add_initializer, copy_model, insert_after_producers, qdq_nodes
from qdqtool.onnxgraph.qdqview import GRAPH_OUTPUT, QdqView, Quantizer
from qdqtool.runner import create_session
from qdqtool.trt.rules import DEQUANTIZE

_TINY = 1e-30


@dataclass(frozen=True)
class QuantizedTensor:
    """One activation quantizer of the Q/DQ model."""

    tensor: str                 # the float tensor the Q reads (its name in the FP32 model)
    dequantized: str            # the DQ output in the Q/DQ model
    q_node: str
    dq_node: str
    feeds: str                  # what the quantized value feeds: "Add skip", "Concat input", "Conv input", ...
    consumers: Tuple[str, ...]
    depth: int                  # position of the Q node in the Q/DQ graph (topological order)
    quantizer: Quantizer


@dataclass(frozen=True)
class TensorError:
    tensor: QuantizedTensor
    relative_error: float       # RMS(dequantized - FP32) / RMS(FP32)
    sqnr_db: float
    max_abs: float
    marginal_error: Optional[float] = None   # output headline error with only this quantizer active

    def as_dict(self) -> Dict[str, object]:
        t = self.tensor
        return {"tensor": t.tensor, "q_node": t.q_node, "dq_node": t.dq_node, "feeds": t.feeds,
                "consumers": list(t.consumers), "depth": t.depth, "relative_error": round(self.relative_error, 6),
                "sqnr_db": round(self.sqnr_db, 3), "max_abs": round(self.max_abs, 6),
                "marginal_error": None if self.marginal_error is None else round(self.marginal_error, 6)}


def _role(op_type: str, skip: bool) -> str:
    if op_type == "Add":
        return "Add skip" if skip else "Add input"
    return f"{op_type} input"


def quantized_tensors(qdq: QdqView, fp32_tensors: Iterable[str]) -> List[QuantizedTensor]:
    """The activation quantizers whose float tensor the FP32 model also has, in graph order."""
    available = set(fp32_tensors)
    nodes = {node.name: node for node in qdq.model.graph.node}
    position = {name: i for i, name in enumerate(nodes)}
    from_dq = {node.output[0] for node in nodes.values() if node.op_type == DEQUANTIZE}
    uses: Dict[str, List[Tuple[str, str]]] = {}
    by_q: Dict[str, Quantizer] = {}
    for (consumer, index), quantizer in qdq.edges.items():
        by_q[quantizer.q_node] = quantizer
        if consumer == GRAPH_OUTPUT:
            uses.setdefault(quantizer.q_node, []).append(("graph output", consumer))
            continue
        node = nodes[consumer]
        others_float = all(t not in from_dq for i, t in enumerate(node.input) if i != index)
        uses.setdefault(quantizer.q_node, []).append((_role(node.op_type, others_float), consumer))
    found = []
    for q_name, quantizer in by_q.items():
        if quantizer.source not in available:
            continue
        roles = sorted({role for role, _ in uses[q_name]})
        consumers = tuple(sorted({c for _, c in uses[q_name] if c}))
        found.append(QuantizedTensor(quantizer.source, nodes[quantizer.dq_node].output[0], q_name,
                                     quantizer.dq_node, ", ".join(roles), consumers, position[q_name], quantizer))
    return sorted(found, key=lambda t: t.depth)


class TensorErrorMeter:
    """Running sums per quantized tensor: fed the FP32 values and the Q/DQ model's dequantized values per sample."""

    def __init__(self, tensors: Sequence[QuantizedTensor]) -> None:
        self.tensors = list(tensors)
        count = len(self.tensors)
        self.err_sq, self.ref_sq, self.max_abs = np.zeros(count), np.zeros(count), np.zeros(count)

    def add(self, fp32: Mapping[str, np.ndarray], dequantized: Mapping[str, np.ndarray]) -> None:
        for i, tensor in enumerate(self.tensors):
            ref = np.asarray(fp32[tensor.tensor], np.float64)
            err = np.asarray(dequantized[tensor.dequantized], np.float64) - ref
            self.err_sq[i] += float((err * err).sum())
            self.ref_sq[i] += float((ref * ref).sum())
            self.max_abs[i] = max(self.max_abs[i], float(np.abs(err).max(initial=0.0)))

    def result(self, marginal: Optional[Mapping[str, float]] = None) -> List[TensorError]:
        """Worst first (largest relative error)."""
        results = []
        for i, tensor in enumerate(self.tensors):
            relative = float(np.sqrt(self.err_sq[i] / max(self.ref_sq[i], _TINY)))
            sqnr = float("inf") if self.err_sq[i] == 0 else float(10 * np.log10(max(self.ref_sq[i], _TINY)
                                                                                / self.err_sq[i]))
            margin = None if marginal is None else marginal.get(tensor.q_node)
            results.append(TensorError(tensor, relative, sqnr, float(self.max_abs[i]), margin))
        return sorted(results, key=lambda r: -r.relative_error)


def with_one_quantizer(float_model: onnx.ModelProto, tensor: QuantizedTensor, qdq: QdqView) -> onnx.ModelProto:
    """The float model (no Q/DQ, weights float) with only this tensor's quantizer put back on its consumer edges."""
    model = copy_model(float_model)
    graph = model.graph
    names = Names(model)
    quantizer = tensor.quantizer
    zero_type = np.uint8 if quantizer.zero_point > 127 else np.int8
    scale = add_initializer(graph, names, np.array(quantizer.scale, np.float32), f"{quantizer.tensor}_single_scale")
    zero = add_initializer(graph, names, np.array(quantizer.zero_point, zero_type), f"{quantizer.tensor}_zp")
    pair, dequantized = qdq_nodes(names, quantizer.tensor, scale, zero, base=f"{quantizer.tensor}_single")
    nodes = {node.name: node for node in graph.node}
    for (consumer, index), other in qdq.edges.items():
        if other.q_node == tensor.q_node and consumer != GRAPH_OUTPUT and consumer in nodes:
            nodes[consumer].input[index] = dequantized
    insert_after_producers(graph, {quantizer.tensor: pair})
    return model


def marginal_errors(qdq: QdqView, tensors: Sequence[QuantizedTensor], feeds: Sequence[Mapping[str, np.ndarray]],
                    config: MeasureConfig = DEFAULT_MEASURE, progress=None) -> Dict[str, float]:
    """q_node -> output headline error with only that quantizer active, against the model with none."""
    if not feeds:
        return {}
    reference_session = create_session(qdq.float_model)
    references = [reference_session.run(None, dict(feed)) for feed in feeds]
    names = [o.name for o in reference_session.get_outputs()]
    reference_maps = [dict(zip(names, outs)) for outs in references]
    errors = {}
    for tensor in tensors:
        if tensor.feeds == "graph output":
            continue
        session = create_session(with_one_quantizer(qdq.float_model, tensor, qdq))
        candidates = [dict(zip(names, session.run(names, dict(feed)))) for feed in feeds]
        errors[tensor.q_node] = headline_error(reference_maps, candidates, config)
        if progress is not None:
            progress(1)
    return errors
