"""Timing of fix-residuals (plan + apply) and check on generated QAT-shaped residual networks and the real models."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qdqtool.check.predict import check_model
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.repair.apply import apply_repairs
from qdqtool.repair.plan import plan_repairs

SIZES = (2_500, 5_000, 10_000)
MODELS = Path(__file__).resolve().parents[1] / "calib_data" / "models"
CHANNELS = 4


def residual_network(target_nodes: int, seed: int = 0) -> onnx.ModelProto:
    """A QAT-shaped ResNet chain: per block Q/DQ on both Conv inputs and weights, skip branch float (~16 nodes)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
                        numpy_helper.from_array(np.array(0, np.int8), "z"),
                        numpy_helper.from_array(np.full(CHANNELS, 0.01, np.float32), "ws"),
                        numpy_helper.from_array(np.zeros(CHANNELS, np.int8), "wz")]
    x = "x"
    block = 0
    while len(nodes) + 16 <= target_nodes:
        y = x
        for k in range(2):
            name = f"b{block}_c{k}"
            weight = rng.integers(-127, 128, (CHANNELS, CHANNELS, 3, 3)).astype(np.int8)
            inits.append(numpy_helper.from_array(weight, f"{name}_wq"))
            nodes += [helper.make_node("QuantizeLinear", [y, "s", "z"], [f"{name}_q"], name=f"{name}_Q"),
                      helper.make_node("DequantizeLinear", [f"{name}_q", "s", "z"], [f"{name}_dq"], name=f"{name}_DQ"),
                      helper.make_node("DequantizeLinear", [f"{name}_wq", "ws", "wz"], [f"{name}_w"],
                                       name=f"{name}_WDQ", axis=0),
                      helper.make_node("Conv", [f"{name}_dq", f"{name}_w"], [f"{name}_out"], name=name,
                                       pads=[1, 1, 1, 1])]
            y = f"{name}_out"
            if k == 0:
                nodes.append(helper.make_node("Relu", [y], [f"{name}_relu"], name=f"{name}_relu"))
                y = f"{name}_relu"
        nodes.append(helper.make_node("Add", [y, x], [f"b{block}_add"], name=f"b{block}_add"))
        nodes.append(helper.make_node("Relu", [f"b{block}_add"], [f"b{block}_out"], name=f"b{block}_out"))
        x = f"b{block}_out"
        block += 1
    graph = helper.make_graph(nodes, "residual_bench",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, 8, 8])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def time_model(model: onnx.ModelProto) -> tuple[float, float, int]:
    """(seconds for read + plan + apply, seconds for read + check, edits)."""
    start = time.perf_counter()
    qdq = read_qdq(model)
    plan = plan_repairs(qdq)
    apply_repairs(qdq, plan.edits)
    fix_seconds = time.perf_counter() - start
    start = time.perf_counter()
    check_model(read_qdq(model))
    return fix_seconds, time.perf_counter() - start, len(plan.edits)


def _ort_quantized(path: Path) -> onnx.ModelProto | None:
    """The real model quantized by ONNX Runtime (random calibration: timing only), or None if unavailable."""
    import tempfile

    from qdqtool.onnxgraph.prepare import constants_to_initializers

    try:
        from onnxruntime.quantization import QuantFormat, quantize_static
    except ImportError:
        return None
    model = onnx.load(str(path))
    constants_to_initializers(model.graph)
    shape = [1, 3, 320, 320]

    class Reader:
        def __init__(self):
            self.feeds = iter([{model.graph.input[0].name: np.random.default_rng(0).random(shape, np.float32)}])

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as folder:
        src, dst = Path(folder) / "f.onnx", Path(folder) / "q.onnx"
        onnx.save(model, str(src))
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        extra_options={"ActivationSymmetric": True})
        return onnx.load(str(dst))


def main() -> list[str]:
    lines = ["fix-residuals / check timing (read + plan + apply | read + check)"]
    previous = None
    for size in SIZES:
        model = residual_network(size)
        count = len(model.graph.node)
        fix_s, check_s, edits = time_model(model)
        growth = ""
        if previous is not None:
            growth = f", per-node time x{(fix_s / count) / (previous[0] / previous[1]):.2f} vs previous size"
        lines.append(f"  residual net {count:>6} nodes: fix {fix_s:.3f} s ({edits} edits), check {check_s:.3f} s"
                     f"{growth}")
        previous = (fix_s, count)
    for name in ("yolov8n_320.onnx", "ppocrv4_det.onnx"):
        path = MODELS / name
        model = _ort_quantized(path) if path.is_file() else None
        if model is None:
            lines.append(f"  {name}: skipped (model or onnxruntime.quantization missing)")
            continue
        fix_s, check_s, edits = time_model(model)
        lines.append(f"  {name} (ORT quantize_static, {len(model.graph.node)} nodes): fix {fix_s:.3f} s "
                     f"({edits} edits), check {check_s:.3f} s")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
