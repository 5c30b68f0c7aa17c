"""Accuracy of today's INT8 tools on the same data, same run: FP32, ONNX Runtime quantize_static (QDQ, per-channel,
symmetric; MinMax and Entropy), ORT's output repaired by fix-residuals, qdqtool per --method and auto, and NVIDIA
ModelOpt ONNX PTQ (max, entropy) when its venv exists (`make bench-peers`).

Columns: quantize wall time and peak RSS (each run in its own process), `check`'s gate counts and INT8 conv coverage,
the output error measure and the task metric vs FP32 on held-out samples. Writes bench_out/accuracy.{md,json}.

    python -m bench.bench_accuracy [MODEL ...] [--rows ROW,ROW]
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import onnx

from bench.accuracy_models import MODELS, BenchModel, photo_split, write_samples
from bench.quantize_once import peer_python
from qdqtool.accuracy.compare import measure_outputs
from qdqtool.check.predict import check_model
from qdqtool.errors import QdqError
from qdqtool.onnxgraph.prepare import load_model, prepare_float_model
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.runner import create_session, onnxruntime_version

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench_out" / "accuracy"
ROWS = ("qdqtool:auto", "qdqtool:max", "qdqtool:percentile", "qdqtool:entropy", "qdqtool:mse",
        "ort:minmax", "ort:entropy", "ortfix:minmax", "modelopt:max", "modelopt:entropy")
CHECK_GATES = ("float-add", "requant-concat", "float-conv")


def quantize(tool: str, model: BenchModel, calib: Path) -> Dict[str, object]:
    out = WORK / model.key / f"{tool.replace(':', '_')}.onnx"
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "bench.quantize_once", tool, str(model.path), str(calib),
                                str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    error = process.stderr.read().decode(errors="replace").strip().splitlines()[-1:] if process.stderr else []
    if os.waitstatus_to_exitcode(status) != 0:
        return {"row": tool, "failed": error[0] if error else "failed"}
    return {"row": tool, "path": str(out), "seconds": round(seconds, 1), "peak_mib": round(usage.ru_maxrss / 1024)}


def outputs(path, feeds) -> List[List[np.ndarray]]:
    session = create_session(path)
    return [session.run(None, feed) for feed in feeds]


def coverage(qdq_model: onnx.ModelProto) -> Dict[str, object]:
    report = check_model(read_qdq(qdq_model))
    kinds = report.kinds()
    convs = kinds.get("int8-conv", 0) + kinds.get("float-conv", 0)
    counts = report.counts()
    return {"check": {g: counts.get(g, 0) for g in CHECK_GATES},
            "int8_convs": f"{kinds.get('int8-conv', 0)}/{convs}"}


def evaluate(model: BenchModel, row: Dict[str, object], feeds, reference) -> Dict[str, object]:
    """The row's check counts, output error and task metric; a model that does not load is a failed row."""
    if "path" not in row:
        return row
    try:
        return _evaluate(model, row, feeds, reference)
    except QdqError as exc:
        return {**row, "failed": str(exc)[:200]}


def _evaluate(model: BenchModel, row: Dict[str, object], feeds, reference) -> Dict[str, object]:
    names = [o.name for o in onnx.load(str(model.path), load_external_data=False).graph.output]
    got = outputs(row["path"], feeds)
    error = measure_outputs(names, reference, got)
    qdq = load_model(row["path"])
    return {**row, **coverage(qdq), "headline_error": round(error.headline, 4),
            "task": round(model.metric(reference, got), 4)}


def bench_model(model: BenchModel, rows) -> List[Dict[str, object]]:
    folders = photo_split(WORK / "photos")
    calib = write_samples(model, folders[model.calib], WORK / model.key / f"calib_{model.calib}")
    held = write_samples(model, folders[model.evaluate], WORK / model.key / f"eval_{model.evaluate}")
    feeds = [{_input_name(model): np.load(f)} for f in sorted(held.glob("*.npy"))]
    prepared, _ = prepare_float_model(load_model(model.path), str(model.path))
    reference = outputs(prepared, feeds)
    results = [{"row": "fp32", "headline_error": 0.0, "task": 1.0}]
    for tool in rows:
        if tool.startswith("modelopt") and peer_python() is None:
            continue
        results.append(evaluate(model, quantize(tool, model, calib), feeds, reference))
        print(f"  {model.key} {results[-1]}", file=sys.stderr, flush=True)
    return results


def _input_name(model: BenchModel) -> str:
    return onnx.load(str(model.path), load_external_data=False).graph.input[0].name


def markdown(results: Dict[str, List[Dict[str, object]]]) -> List[str]:
    lines = ["| model | row | quantize s | peak MiB | INT8 convs | float-add / requant-concat / float-conv "
             "| output error | task metric |", "|---|---|---|---|---|---|---|---|"]
    for key, rows in results.items():
        metric = MODELS[key].metric_name
        for r in rows:
            if "failed" in r:
                lines.append(f"| {key} | {r['row']} | failed: {r['failed'][:60]} | | | | | |")
                continue
            check = r.get("check")
            gates = " / ".join(str(check[g]) for g in CHECK_GATES) if check else ""
            lines.append(f"| {key} | {r['row']} | {r.get('seconds', '')} | {r.get('peak_mib', '')} | "
                         f"{r.get('int8_convs', '')} | {gates} | {r['headline_error']} | {metric} {r['task']} |")
    return lines


def versions() -> Dict[str, str]:
    found = {"python": platform.python_version(), "onnxruntime": onnxruntime_version(), "onnx": onnx.__version__}
    python: Optional[Path] = peer_python()
    if python is not None:
        probe = subprocess.run([str(python), "-c", "import modelopt, torch; print(modelopt.__version__, "
                                "torch.__version__)"], capture_output=True, text=True)
        if probe.returncode == 0:
            found["modelopt"], found["torch"] = probe.stdout.split()
    return found


def main(argv: List[str]) -> List[str]:
    rows = ROWS
    if "--rows" in argv:
        at = argv.index("--rows")
        rows = tuple(argv[at + 1].split(","))
        argv = argv[:at] + argv[at + 2:]
    keys = argv or [k for k, m in MODELS.items() if m.path.exists()]
    results = {key: bench_model(MODELS[key], rows) for key in keys}
    WORK.mkdir(parents=True, exist_ok=True)
    lines = markdown(results)
    (WORK.parent / "accuracy.md").write_text("\n".join(lines) + "\n")
    (WORK.parent / "accuracy.json").write_text(json.dumps({"versions": versions(), "results": results}, indent=1))
    return lines


if __name__ == "__main__":
    print("\n".join(main(sys.argv[1:])))
