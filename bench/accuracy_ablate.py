"""Why two Q/DQ models of the same FP32 graph differ in accuracy: where they quantize, at what scales, and whether
the task-metric gap is larger than the noise of the held-out set.

    python -m bench.accuracy_ablate MODEL_KEY CANDIDATE.onnx [PEER.onnx] [strip=PATTERN,...] [jitter=N] [fp32=PATH]

- edges: the activation edges (tensor -> consumer node) each model quantizes, by FP32 tensor names, and the
  activation scales that differ; quantized weights compared after dequantization;
- strip=Add:*,Resize:* writes CANDIDATE.stripped.onnx without the activation Q/DQ on the edges whose
  "consumer op:consumer name:tensor" matches a pattern, and measures it too (group ablation);
- jitter=N measures each model N more times with every activation scale multiplied by a random factor in
  [0.995, 1.005]: a task-metric gap inside that band is noise of the held-out set, not a placement effect.

Measured on the accuracy bench's held-out feeds against the FP32 model (default bench_out/accuracy/KEY/fp32.onnx,
made by `make bench`); task metric as in
bench/accuracy_metrics.py, output error as qdqtool.accuracy.measure.
"""

from __future__ import annotations

import fnmatch
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple

import numpy as np
import onnx
from onnx import numpy_helper

from bench import accuracy_data as data
from bench.accuracy_metrics import task_scores
from bench.accuracy_models import MODELS
from bench.bench_accuracy import WORK, as_dicts
from qdqtool.accuracy.measure import headline_error
from qdqtool.runner import create_session

Edge = Tuple[str, str, int]           # (FP32 tensor, consumer node, input index)
JITTER = 0.005


def _producers(model: onnx.ModelProto) -> Dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def activation_scales(model: onnx.ModelProto) -> Dict[Edge, float]:
    """Every activation edge that reads a Q -> DQ pair, with its scale (tensor names of the FP32 graph)."""
    inits = {t.name: t for t in model.graph.initializer}
    producer = _producers(model)
    found: Dict[Edge, float] = {}
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in inits:
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear" or q.input[0] in inits or dq.input[1] not in inits:
                continue
            found[(q.input[0], node.name, index)] = float(numpy_helper.to_array(inits[dq.input[1]]).reshape(-1)[0])
    return found


def strip_edges(model: onnx.ModelProto, patterns: Sequence[str]) -> Tuple[onnx.ModelProto, int]:
    """A copy without the activation Q/DQ on matching edges ("op:node:tensor" globs); dead Q/DQ pruned."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    producer = _producers(out)
    ops = {node.name: node.op_type for node in out.graph.node}
    removed = 0
    for node in out.graph.node:
        for index, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is None or q.op_type != "QuantizeLinear":
                continue
            if any(fnmatch.fnmatchcase(f"{ops[node.name]}:{node.name}:{q.input[0]}", p) for p in patterns):
                node.input[index] = q.input[0]
                removed += 1
    while True:
        used = {t for node in out.graph.node for t in node.input} | {o.name for o in out.graph.output}
        dead = [n for n in out.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in used for o in n.output)]
        if not dead:
            return out, removed
        for node in dead:
            out.graph.node.remove(node)


def jittered(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """A copy whose activation scales are each multiplied by a random factor in [1 - JITTER, 1 + JITTER]."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in out.graph.initializer}
    done: Set[str] = set()
    for node in out.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits and node.input[1] not in done:
            done.add(node.input[1])
            tensor = inits[node.input[1]]
            value = numpy_helper.to_array(tensor) * rng.uniform(1 - JITTER, 1 + JITTER)
            tensor.CopyFrom(numpy_helper.from_array(value.astype(np.float32), tensor.name))
    return out


def dequantized_weights(model: onnx.ModelProto) -> Dict[str, np.ndarray]:
    """node name -> its dequantized constant weight (input 1 through a DequantizeLinear, with or without a Q)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = _producers(model)
    found: Dict[str, np.ndarray] = {}
    for node in model.graph.node:
        dq = producer.get(node.input[1]) if len(node.input) > 1 else None
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in inits:
            continue
        q = producer.get(dq.input[0])
        source = q.input[0] if q is not None and q.op_type == "QuantizeLinear" else dq.input[0]
        if source not in inits:
            continue
        scale = inits[dq.input[1]].astype(np.float64)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        shape = [1] * inits[source].ndim
        if scale.ndim:
            shape[axis] = -1
        scale = scale.reshape(shape)
        value = inits[source].astype(np.float64)
        found[node.name] = (np.clip(np.round(value / scale), -128, 127) if source != dq.input[0] else value) * scale
    return found


def diff_lines(candidate: onnx.ModelProto, peer: onnx.ModelProto) -> List[str]:
    a, b = activation_scales(candidate), activation_scales(peer)
    lines = [f"activation edges: candidate {len(a)}, peer {len(b)}, shared {len(set(a) & set(b))}"]
    groups: Dict[str, List[Edge]] = defaultdict(list)
    for edge in sorted(set(b) - set(a)):
        groups[f"only in peer, consumer {edge[1].split('_')[0]}"].append(edge)
    for edge in sorted(set(a) - set(b)):
        groups[f"only in candidate, consumer {edge[1].split('_')[0]}"].append(edge)
    lines += [f"  {k}: {len(v)}: " + ", ".join(f"{t}->{n}" for t, n, _ in v) for k, v in sorted(groups.items())]
    differ = [(e, a[e] / b[e]) for e in sorted(set(a) & set(b)) if abs(a[e] / b[e] - 1) > 1e-3]
    lines += [f"  scale differs on {t}->{n}: candidate/peer {r:.3f}" for (t, n, _), r in differ]
    wa, wb = dequantized_weights(candidate), dequantized_weights(peer)
    shared = sorted(set(wa) & set(wb))
    apart = [n for n in shared if wa[n].shape != wb[n].shape or not np.allclose(wa[n], wb[n], rtol=0, atol=1e-6)]
    lines.append(f"quantized weights: candidate {len(wa)}, peer {len(wb)}; dequantized values differ on "
                 f"{len(apart)} of {len(shared)} shared: {', '.join(apart) or '-'}")
    return lines


def measure(key: str, model: onnx.ModelProto, feeds, reference, names) -> Tuple[Dict, float]:
    session = create_session(model)
    name = session.get_inputs()[0].name
    outputs = [session.run(None, {name: feed}) for feed in feeds]
    return (task_scores(MODELS[key], reference, outputs),
            headline_error(as_dicts(reference, names), as_dicts(outputs, names)))


def main(argv: Sequence[str]) -> List[str]:
    positional = [a for a in argv if "=" not in a]
    options = dict(a.split("=", 1) for a in argv if "=" in a)
    key, paths = positional[0], [Path(p) for p in positional[1:]]
    models = {p.name: onnx.load(str(p)) for p in paths}
    lines = diff_lines(*models.values()) if len(models) == 2 else []
    if "strip" in options:
        stripped, count = strip_edges(models[paths[0].name], options["strip"].split(","))
        models[f"{paths[0].stem}.stripped ({count} edges)"] = stripped
    fp32 = Path(options.get("fp32", WORK / key / "fp32.onnx"))
    _, _, held_out = data.photo_split(WORK)
    feeds = [feed for rgb in held_out for feed in MODELS[key].prepare(rgb)]
    reference_session = create_session(fp32)
    names = [o.name for o in reference_session.get_outputs()]
    input_name = reference_session.get_inputs()[0].name
    reference = [reference_session.run(None, {input_name: feed}) for feed in feeds]
    rounds = int(options.get("jitter", "0"))
    for label, model in models.items():
        scores, error = measure(key, model, feeds, reference, names)
        metric = next(k for k in ("f1", "mask_iou", "top1_agree") if k in scores)
        line = f"{label}: {metric} {scores[metric]:.3f}, output error {error:.4f}"
        if rounds:
            band = [measure(key, jittered(model, s), feeds, reference, names)[0][metric] for s in range(rounds)]
            line += f"; scales jittered +-{JITTER:.1%} ({rounds}x): {metric} {min(band):.3f}..{max(band):.3f}"
        lines.append(line)
    return lines


if __name__ == "__main__":
    print("\n".join(main(sys.argv[1:])))
