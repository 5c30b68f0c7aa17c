"""Edit time per node: calibrate's apply (apply_plan) and fix-residuals' apply (apply_repairs) on generated
residual networks of 5k to 40k nodes. Linear editing shows as a flat time per node."""

from __future__ import annotations

import time

import onnx

from bench.bench_fix import residual_network
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.qdqview import read_qdq, strip_qdq
from qdqtool.placement.apply import apply_plan
from qdqtool.placement.plan import plan_placement
from qdqtool.repair.apply import apply_repairs
from qdqtool.repair.plan import plan_repairs

SIZES = (5_000, 10_000, 20_000, 40_000)


def _best_of(runs: int, action) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def time_calibrate_apply(qat: onnx.ModelProto) -> tuple[float, int]:
    """(seconds of apply_plan on the float version of qat, its node count)."""
    model = strip_qdq(qat)
    plan = plan_placement(GraphView(model))
    amax = {tensor: 1.0 for tensor in plan.quantized_tensors()}
    return _best_of(2, lambda: apply_plan(model, plan, amax)), len(model.graph.node)


def time_fix_apply(qat: onnx.ModelProto) -> tuple[float, int]:
    """(seconds of apply_repairs for fix-residuals' plan on qat, number of edits)."""
    qdq = read_qdq(qat)
    edits = plan_repairs(qdq).edits
    return _best_of(2, lambda: apply_repairs(qdq, edits)), len(edits)


def main() -> list[str]:
    lines = ["edit time per node (apply only; generated residual networks)",
             f"  {'nodes':>7}  {'calibrate apply':>22}  {'fix-residuals apply':>28}"]
    for size in SIZES:
        qat = residual_network(size)
        count = len(qat.graph.node)
        calib_s, calib_nodes = time_calibrate_apply(qat)
        fix_s, edits = time_fix_apply(qat)
        lines.append(f"  {count:>7}  {calib_s:7.3f} s {1e6 * calib_s / calib_nodes:6.1f} us/node  "
                     f"{fix_s:7.3f} s {1e6 * fix_s / count:6.1f} us/node ({edits} edits)")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
