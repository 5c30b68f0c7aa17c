"""A model over 2 GB (weights in external data, as exporters write them) through calibrate, fix-residuals, check
and build --backend ort: wall time and peak RSS of each command in its own process, against the model's size.

The model is generated here (a chain of MatMul+Relu layers, random weights written straight to the data file, so
this process never holds them) and everything is deleted afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Tuple

import numpy as np
from onnx import TensorProto, helper

from bench.peak_rss import run_measured

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench_out" / "large"
WIDTH = 8192                 # MatMul layers of WIDTH x WIDTH float32: 256 MiB each
LAYERS = 8                   # 8 x 256 MiB + the head: just over 2 GiB, past protobuf's limit
HEAD = 1024
TARGET_RATIO = 2.0           # issue 11: peak memory within about twice the model's size


def write_model(folder: Path) -> Tuple[Path, int]:
    """(model path, weight bytes): MatMul+Relu x LAYERS and a MatMul head, weights in model.onnx.data."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    nodes, inits, offset = [], [], 0
    x = "x"
    with open(folder / "model.onnx.data", "wb") as data:
        for index, cols in enumerate([WIDTH] * LAYERS + [HEAD]):
            name = f"w{index}"
            for _ in range(0, WIDTH, 1024):  # 1024 rows at a time: this process stays small
                block = (rng.standard_normal((1024, cols), dtype=np.float32) / np.sqrt(WIDTH)).astype(np.float32)
                data.write(block.tobytes())
            length = WIDTH * cols * 4
            tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[WIDTH, cols])
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", "model.onnx.data"), ("offset", str(offset)), ("length", str(length))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            inits.append(tensor)
            offset += length
            y = f"mm{index}"
            nodes.append(helper.make_node("MatMul", [x, name], [y], name=f"matmul{index}"))
            if cols == WIDTH:
                nodes.append(helper.make_node("Relu", [y], [f"relu{index}"], name=f"relu{index}"))
                y = f"relu{index}"
            x = y
    graph = helper.make_graph(nodes, "large", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, HEAD])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    return folder / "model.onnx", offset


def samples(folder: Path, count: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for index in range(count):
        np.save(folder / f"s{index}.npy", rng.standard_normal((1, WIDTH)).astype(np.float32))
    return folder


def run(args: List[str]) -> Tuple[float, float, int]:
    """(wall seconds, peak RSS in MiB, exit status) of one qdqtool command in its own process."""
    with tempfile.TemporaryFile() as errors:
        run = run_measured([sys.executable, "-c", "from qdqtool.cli.main import main; main()", *args], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=errors)
        errors.seek(0)
        stderr = errors.read().decode(errors="replace").strip()
    if run.code not in (0, 3):
        print(f"  {' '.join(args[:1])} failed ({run.code}): {stderr.splitlines()[-1] if stderr else ''}", flush=True)
    return run.seconds, run.peak_mib, run.code


def size_of(*paths: Path) -> int:
    return sum(p.stat().st_size for p in paths if p.exists())


def main() -> List[str]:
    shutil.rmtree(WORK, ignore_errors=True)
    try:
        model, weights = write_model(WORK / "in")
        data = samples(WORK / "data")
        out = WORK / "out"
        out.mkdir()
        qdq, fixed, engine = out / "model.qdq.onnx", out / "model.fixed.onnx", out / "model.engine"
        steps = [
            ("calibrate", ["calibrate", str(model), "--data", str(data), "-o", str(qdq)]),
            ("fix-residuals", ["fix-residuals", str(qdq), "-o", str(fixed), "--data", str(data)]),
            ("check", ["check", str(fixed)]),
            ("build --backend ort", ["build", str(fixed), "--backend", "ort", "-o", str(engine), "--data", str(data),
                                     "--runs", "3", "--warmup", "1"]),
        ]
        gib = weights / 2**30
        lines = [f"large model: {LAYERS + 1} MatMul layers, {gib:.2f} GiB of float32 weights in external data"]
        for label, args in steps:
            seconds, peak, code = run(args)
            lines.append(f"  {label:<20} {'ok' if code in (0, 3) else 'FAILED'}  {seconds:6.1f} s  peak RSS "
                         f"{peak / 1024:5.2f} GiB ({peak / 1024 / gib:.2f}x the model; target <= {TARGET_RATIO:.1f}x)")
            print(lines[-1], flush=True)
        lines.append(f"  written: Q/DQ model {size_of(qdq, qdq.with_name(qdq.name + '.data')) / 2**30:.2f} GiB, "
                     f"fixed {size_of(fixed, fixed.with_name(fixed.name + '.data')) / 2**30:.2f} GiB, engine "
                     f"{size_of(engine, engine.with_name(engine.name + '.data')) / 2**30:.2f} GiB")
        return lines
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    print("\n".join(main()))
