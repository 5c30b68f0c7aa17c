"""Issue 10's time target: `--method auto` within 4x of `--method percentile` wall time on the shared models at 32
calibration samples, peak memory alongside. One process per run (bench/peak_rss.py); the two runs of a model are
back to back, so the ratio holds on a shared machine better than either time.

    make bench BENCH_ARGS=auto-time
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List, Sequence, Tuple

from bench.peak_rss import run_measured
from qdqtool.samples.images import write_augmented_crops

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "calib_data" / "images"
MODELS = ROOT / "calib_data" / "models"
WORK = ROOT / "bench_out" / "auto_time"
QDQTOOL = str(ROOT / ".venv" / "bin" / "qdqtool")
SAMPLES = 32
TARGET = 4.0
# model, its pre-processing flags (as in tests/calibrate/test_calibrate_real.py)
CASES: Tuple[Tuple[str, Sequence[str]], ...] = (
    ("yolov8n_320", ("--preset", "yolo", "--size", "320")),
    ("ppocrv4_det", ("--preset", "rapidocr", "--size", "640x640")),
    ("orientation_cls", ("--preset", "imagenet")),
)


def crops() -> Path:
    folder = WORK / f"crops_{SAMPLES}"
    if len(list(folder.glob("crop_*.png"))) != SAMPLES:
        write_augmented_crops(PHOTOS, folder, SAMPLES, seed=0)
    return folder


def timed(model: str, flags: Sequence[str], method: str, data: Path) -> Tuple[float, float]:
    out = WORK / f"{model}.{method}.onnx"
    for stale in (out, out.with_suffix(".ranges.json")):
        stale.unlink(missing_ok=True)
    run = run_measured([QDQTOOL, "-q", "calibrate", str(MODELS / f"{model}.onnx"), "--data", str(data), "-o",
                        str(out), "--method", method, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if run.code != 0:
        raise RuntimeError(f"calibrate {model} --method {method} failed (exit {run.code})")
    return run.seconds, run.peak_mib


def main() -> List[str]:
    WORK.mkdir(parents=True, exist_ok=True)
    data = crops()
    lines = [f"--method auto vs --method percentile, {SAMPLES} augmented crops of the photos, one process per run"]
    for model, flags in CASES:
        (base, base_peak), (auto, auto_peak) = (timed(model, flags, m, data) for m in ("percentile", "auto"))
        lines.append(f"  {model:16s} percentile {base:6.1f} s {base_peak:5.0f} MiB | auto {auto:6.1f} s "
                     f"{auto_peak:5.0f} MiB | x{auto / base:.2f} (target <= {TARGET:.0f})")
    return lines
