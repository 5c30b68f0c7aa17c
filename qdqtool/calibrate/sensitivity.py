"""Which quantizers hurt accuracy most: quantize one activation tensor at a time and measure the output change.

Some tensors cannot be represented well by one per-tensor int8 scale (a depthwise conv's input whose channels have
very different ranges, an early SiLU output with rare large values). TensorRT would quantize them the same way, so
the honest fix is to keep their consumers float; calibrate's keep_float = N does that for the N worst.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import onnx

from qdqtool.placement.apply import apply_plan, edges_by_tensor
from qdqtool.placement.plan import PlacementPlan
from qdqtool.runner import create_session


@dataclass(frozen=True)
class Sensitivity:
    tensor: str
    consumers: tuple          # node names whose input is this tensor's quantizer
    error: float              # mean over samples of the relative L2 change of the outputs


def output_change(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> float:
    """Sum over outputs of ||candidate - reference|| / ||reference||."""
    total = 0.0
    for ref, got in zip(reference, candidate):
        ref64, got64 = np.asarray(ref, np.float64), np.asarray(got, np.float64)
        total += float(np.linalg.norm(got64 - ref64) / (np.linalg.norm(ref64) + 1e-12))
    return total


Outputs = List[np.ndarray]


def model_outputs(model: onnx.ModelProto, feeds: Sequence[Dict[str, np.ndarray]]) -> List[Outputs]:
    """Every output of the model for each feed (the FP32 reference is run once and shared)."""
    session = create_session(model)
    return [session.run(None, feed) for feed in feeds]


def mean_output_change(model: onnx.ModelProto, feeds: Sequence[Dict[str, np.ndarray]],
                       references: Sequence[Outputs]) -> float:
    """Mean over feeds of output_change between the references and this model (0.0 without feeds)."""
    if not feeds:
        return 0.0
    return float(np.mean([output_change(ref, got) for ref, got in zip(references, model_outputs(model, feeds))]))


def measure_sensitivity(model: onnx.ModelProto, plan: PlacementPlan, tensor_amax: Mapping[str, float],
                        feeds: Sequence[Dict[str, np.ndarray]], references: Sequence[Outputs],
                        progress: Optional[Callable[[int], None]] = None) -> List[Sensitivity]:
    """Each quantized activation tensor alone, most harmful first. Weights stay float during the measurement."""
    results = []
    edges_of = edges_by_tensor(plan)
    for tensor in sorted(edges_of):
        edges = tuple(edges_of[tensor])
        single = apply_plan(model, replace(plan, inputs=edges, weights=()), tensor_amax)
        error = mean_output_change(single, feeds, references)
        results.append(Sensitivity(tensor, tuple(sorted({q.node for q in edges})), error))
        if progress is not None:
            progress(1)
    return sorted(results, key=lambda s: -s.error)


def keep_float_nodes(ranked: Sequence[Sensitivity], count: int) -> tuple:
    """(node, reason) pairs for the consumers of the `count` most harmful quantizers."""
    chosen = []
    for item in ranked[:count]:
        reason = (f"kept float: quantizing its input {item.tensor} alone changes the outputs by "
                  f"{100 * item.error:.1f}% (sensitivity ranking)")
        chosen.extend((node, reason) for node in item.consumers)
    return tuple(chosen)
