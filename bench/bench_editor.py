"""Which editor: today's raw-ModelProto helpers (qdqtool/onnxgraph/edit.py) against onnx_ir and onnx-graphsurgeon.

The same job for each: a Q/DQ pair (scale + zero-point initializers, QuantizeLinear, DequantizeLinear) on every
activation edge calibrate's placement plans for a generated residual network, consumers rewired, ModelProto in and
ModelProto out (every qdqtool stage holds ModelProtos). Also a >2 GB model written and read back. onnx_ir and
onnx_graphsurgeon are optional: `pip install onnx-ir onnx-graphsurgeon` to include them. Written up in docs/editor.md.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bench.bench_fix import residual_network
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.qdqview import strip_qdq
from qdqtool.placement.apply import apply_plan, edges_by_tensor
from qdqtool.placement.plan import plan_placement
from qdqtool.trt.scales import scale_from_amax

NODES = 40_000
BIG_BYTES = 2_200_000_000   # > 2 GiB: over protobuf's single-message limit


def _job(nodes: int):
    """A float residual network of about `nodes` nodes (the QAT-shaped generator's Q/DQ stripped) and its plan."""
    float_model = strip_qdq(residual_network(int(nodes * 2.2)))
    plan = plan_placement(GraphView(float_model))
    plan = replace(plan, weights=())          # activations only: weight quantization is numpy, not editing
    return float_model, plan, {t: 1.0 for t in plan.quantized_tensors()}


def _timed(action) -> tuple[float, object]:
    gc.collect()
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def edit_with_onnx_ir(model: onnx.ModelProto, plan, amax) -> onnx.ModelProto:
    import onnx_ir as ir

    graph_model = ir.from_proto(model)
    graph = graph_model.graph
    values = {v.name: v for node in graph for v in node.outputs}
    values.update({v.name: v for v in graph.inputs})
    nodes = {node.name: node for node in graph}
    for tensor, edges in edges_by_tensor(plan).items():
        source = values[tensor]
        scale = ir.Value(name=f"{tensor}_scale", const_value=ir.tensor(np.array(scale_from_amax(amax[tensor]),
                                                                                 np.float32)))
        zero = ir.Value(name=f"{tensor}_zero_point", const_value=ir.tensor(np.array(0, np.int8)))
        graph.register_initializer(scale)
        graph.register_initializer(zero)
        q = ir.node("QuantizeLinear", [source, scale, zero], name=f"{tensor}_QuantizeLinear")
        q.outputs[0].name = f"{tensor}_quantized"
        dq = ir.node("DequantizeLinear", [q.outputs[0], scale, zero], name=f"{tensor}_DequantizeLinear")
        dq.outputs[0].name = f"{tensor}_dequantized"
        producer = source.producer()
        if producer is None:
            graph.insert_before(next(iter(graph)), [q, dq])
        else:
            graph.insert_after(producer, [q, dq])
        for edge in edges:
            nodes[edge.node].replace_input_with(edge.input_index, dq.outputs[0])
    return ir.to_proto(graph_model)


def edit_with_graphsurgeon(model: onnx.ModelProto, plan, amax) -> onnx.ModelProto:
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(model)
    tensors = graph.tensors()
    nodes = {node.name: node for node in graph.nodes}
    for tensor, edges in edges_by_tensor(plan).items():
        source = tensors[tensor]
        scale = gs.Constant(f"{tensor}_scale", np.array(scale_from_amax(amax[tensor]), np.float32))
        zero = gs.Constant(f"{tensor}_zero_point", np.array(0, np.int8))
        quantized = gs.Variable(f"{tensor}_quantized", dtype=np.int8)
        dequantized = gs.Variable(f"{tensor}_dequantized", dtype=np.float32)
        graph.nodes.append(gs.Node("QuantizeLinear", f"{tensor}_QuantizeLinear", inputs=[source, scale, zero],
                                   outputs=[quantized]))
        graph.nodes.append(gs.Node("DequantizeLinear", f"{tensor}_DequantizeLinear",
                                   inputs=[quantized, scale, zero], outputs=[dequantized]))
        for edge in edges:
            nodes[edge.node].inputs[edge.input_index] = dequantized
    graph.toposort()
    return gs.export_onnx(graph)


def _check(model: onnx.ModelProto, expected_nodes: int) -> None:
    """The node count, and every node input known before the node reads it (topological order)."""
    assert len(model.graph.node) == expected_nodes, (len(model.graph.node), expected_nodes)
    known = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer} | {""}
    for node in model.graph.node:
        assert all(name in known for name in node.input), node.name
        known.update(node.output)


def edit_times(nodes: int = NODES) -> list[str]:
    model, plan, amax = _job(nodes)
    expected = len(model.graph.node) + 2 * len(plan.quantized_tensors())
    lines = [f"Q/DQ on {len(plan.inputs)} planned edges ({len(plan.quantized_tensors())} tensors), "
             f"{len(model.graph.node)}-node float model, ModelProto in and out:"]
    editors = [("raw ModelProto (onnxgraph/edit.py)", None, apply_plan),
               ("onnx_ir", "onnx_ir", edit_with_onnx_ir),
               ("onnx-graphsurgeon", "onnx_graphsurgeon", edit_with_graphsurgeon)]
    for name, module, editor in editors:
        imported = ""
        if module is not None:
            try:
                import_s, _ = _timed(lambda m=module: __import__(m))
            except ImportError:
                lines.append(f"  {name:<36} not installed")
                continue
            imported = f"  (import {import_s:.2f} s, not counted)"
        seconds, result = _timed(lambda e=editor: e(model, plan, amax))
        _check(result, expected)
        lines.append(f"  {name:<36} {seconds:7.2f} s  {1e6 * seconds / len(model.graph.node):6.1f} us/node"
                     f"{imported}")
    return lines


def _big_model(folder: Path) -> onnx.ModelProto:
    """A Conv chain whose weights add up to more than 2 GiB (external data: one file per model)."""
    channels, count = 1024, max(1, BIG_BYTES // (1024 * 1024 * 9 * 4) + 1)
    nodes, inits, x = [], [], "x"
    for i in range(count):
        weight = np.full((channels, channels, 3, 3), 0.001 * (i + 1), np.float32)
        inits.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes.append(helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]))
        x = f"c{i}"
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 4, 4])]
    outputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, channels, 4, 4])]
    graph = helper.make_graph(nodes, "big", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def big_round_trip(say=print) -> list[str]:
    """qdqtool's own writer and reader (fileio.save_model_atomically, prepare.load_model) and onnx_ir's; each line
    is also passed to say() as soon as it is measured. Needs about 5 GB of free memory."""
    from qdqtool.fileio import save_model_atomically
    from qdqtool.onnxgraph.prepare import load_model

    lines = [f"> 2 GiB model (Conv weights, {BIG_BYTES / 2**30:.2f} GiB) written and read back:"]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as name:
        folder = Path(name)
        model = _big_model(folder)
        size = sum(t.ByteSize() for t in model.graph.initializer)
        try:
            import onnx_ir as ir

            ir_path = folder / "ir.onnx"
            seconds, ir_model = _timed(lambda: ir.from_proto(model))
            save_s, _ = _timed(lambda: ir.save(ir_model, str(ir_path), external_data="ir.onnx.data"))
            load_s, back = _timed(lambda: ir.load(str(ir_path)))
            lines.append(f"  onnx_ir: from_proto {seconds:.1f} s, save {save_s:.1f} s, load {load_s:.1f} s "
                         f"(weights stay on disk until read), {len(back.graph.initializers)} initializers")
            say(lines[-1])
            ir_model = back = None
            gc.collect()
        except ImportError:
            lines.append("  onnx_ir not installed")
        try:
            model.SerializeToString()
            lines.append("  one serialised ModelProto: ok")
        except Exception as exc:  # noqa: BLE001  (protobuf's EncodeError; ValueError in other builds)
            lines.append(f"  one serialised ModelProto: fails ({type(exc).__name__}: {str(exc)[:40]})")
        say(lines[-1])
        path = folder / "raw.onnx"
        seconds, _ = _timed(lambda: save_model_atomically(model, path))
        load_s, loaded = _timed(lambda: load_model(path))
        same = sum(t.ByteSize() for t in loaded.graph.initializer) >= size * 0.99
        lines.append(f"  qdqtool save_model_atomically (external data) {seconds:.1f} s, load_model {load_s:.1f} s, "
                     f"weights intact: {same}")
        say(lines[-1])
    return lines


def main() -> list[str]:
    return ["editor comparison (docs/editor.md)", *edit_times(), *big_round_trip(say=lambda line: None)]


if __name__ == "__main__":
    print("editor comparison (docs/editor.md)", flush=True)
    print("\n".join(edit_times()), flush=True)
    big_round_trip(lambda line: print(line, flush=True))
