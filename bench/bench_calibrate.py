"""Calibration time and peak memory, qdqtool vs ONNX Runtime's quantize_static (entropy, QDQ), same data, same run.

Each measurement is a fresh process; peak memory is that process's max RSS (os.wait4), time is its wall time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from bench.peak_rss import run_measured
from qdqtool.samples.images import write_augmented_crops

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "calib_data" / "images"
WORK = ROOT / "bench_out"
SAMPLE_COUNTS = (32, 256)
TOOLS = ("qdqtool", "ort")


def crops(count: int) -> Path:
    """count augmented crops of the demo photos, made once and kept in bench_out/."""
    folder = WORK / f"crops_{count}"
    if len(list(folder.glob("crop_*.png"))) != count:
        write_augmented_crops(PHOTOS, folder, count, seed=0)
    return folder


def measure(tool: str, samples: int, data: Path) -> Tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one calibration in its own process."""
    run = run_measured([sys.executable, "-m", "bench.calibrate_once", tool, str(samples), str(data),
                        str(WORK / f"{tool}_{samples}")], cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if run.code != 0:
        raise RuntimeError(f"{tool} calibration on {samples} samples failed (exit {run.code})")
    return run.seconds, run.peak_mib


def main() -> List[str]:
    data = crops(max(SAMPLE_COUNTS))
    results: Dict[Tuple[str, int], Tuple[float, float]] = {}
    lines = ["calibration of yolov8n_320 (entropy, Q/DQ), augmented crops of the photos; one process per run"]
    for samples in SAMPLE_COUNTS:
        for tool in TOOLS:
            seconds, peak = measure(tool, samples, data)
            results[(tool, samples)] = (seconds, peak)
            per_sample = 1000 * seconds / samples
            lines.append(f"  {tool:8s} {samples:4d} samples: {seconds:7.1f} s ({per_sample:6.1f} ms/sample)"
                         f"  peak {peak:8.0f} MiB")
    small, large = SAMPLE_COUNTS
    growth = results[("qdqtool", large)][1] / results[("qdqtool", small)][1]
    ort_growth = results[("ort", large)][1] / results[("ort", small)][1]
    lines.append(f"  qdqtool peak memory {large} vs {small} samples: x{growth:.2f} (target <= 1.10); "
                 f"quantize_static: x{ort_growth:.2f}")
    for samples in SAMPLE_COUNTS:
        ratio = results[("qdqtool", samples)][0] / results[("ort", samples)][0]
        lines.append(f"  time per sample at {samples}: qdqtool / quantize_static = {ratio:.2f} (target <= 1.00)")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
