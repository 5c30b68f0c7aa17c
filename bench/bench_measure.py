"""Does the output error measure rank calibrations the way task metrics do? Each real model, each --method.

Calibrate on some photos, compare on others (or on random crops), and print the headline error next to detection F1,
mask IoU or top-1 agreement, with the pairs of methods both figures order the same way (concordant pairs).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from itertools import combinations
from pathlib import Path
from typing import List, Tuple

from PIL import Image

from qdqtool.accuracy.compare import CompareConfig, compare_files
from qdqtool.accuracy.measure import MeasureConfig
from qdqtool.calibrate.observers import METHODS
from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, calibrate_file
from qdqtool.samples.images import PRESETS, write_augmented_crops

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "calib_data" / "images"
MODELS = ROOT / "calib_data" / "models"
WORK = ROOT / "bench_out" / "measure"

YOLO = dataclasses.replace(PRESETS["yolo"], size=(320, 320))
OCR = dataclasses.replace(PRESETS["rapidocr"], size=(640, 640))
CLS = PRESETS["imagenet"]


def folder(name: str, fill) -> Path:
    path = WORK / name
    if not path.is_dir():
        path.mkdir(parents=True)
        fill(path)
    return path


def copy(names, target: Path) -> None:
    for name in names:
        shutil.copy(PHOTOS / name, target / name)


def data_sets():
    names = sorted(p.name for p in PHOTOS.iterdir())
    even, odd = names[::2], names[1::2]
    calib = folder("calib_even", lambda p: copy(even, p))
    detect_eval = folder("eval_crops", lambda p: (write_augmented_crops(PHOTOS, p, 72, seed=7), copy(names, p)))
    text_calib = folder("text_calib", lambda p: (write_augmented_crops(_single("text.png"), p, 15, seed=1),
                                                 copy(["text.png"], p)))
    text_eval = folder("text_eval", lambda p: (write_augmented_crops(_single("page.png"), p, 8, seed=2),
                                               copy(["page.png"], p)))
    cls_eval = folder("cls_eval", lambda p: (copy(odd, p), _turned(p)))
    return calib, detect_eval, text_calib, text_eval, cls_eval


def _single(name: str) -> Path:
    path = WORK / f"only_{Path(name).stem}"
    if not path.is_dir():
        path.mkdir(parents=True)
        copy([name], path)
    return path


def _turned(target: Path) -> None:
    for name in ("page.png", "camera.png", "astronaut.png"):
        image = Image.open(PHOTOS / name).convert("RGB")
        for quarter in range(4):
            image.rotate(90 * quarter, expand=True).save(target / f"{Path(name).stem}_{90 * quarter}.png")


def concordant(rows: List[Tuple[str, float, float]]) -> Tuple[int, int, int]:
    """(pairs ordered the same way by error and task metric, pairs ordered oppositely, ties in the task metric)."""
    same = opposite = ties = 0
    for (_, e1, m1), (_, e2, m2) in combinations(rows, 2):
        if abs(m1 - m2) < 1e-9:
            ties += 1
        elif (e1 - e2) * (m2 - m1) > 0:
            same += 1
        else:
            opposite += 1
    return same, opposite, ties


def run_model(name: str, calib: Path, evaluate: Path, preprocess, task: str, threshold=None) -> List[str]:
    rows = []
    lines = [f"{name} --task {task}: calibrated on {calib.name}, compared on {evaluate.name} "
             f"({len(list(evaluate.iterdir()))} images)"]
    for method in METHODS:
        start = time.perf_counter()
        out = WORK / f"{name}_{method}.onnx"
        calibrate_file(MODELS / f"{name}.onnx", calib, CalibrationOutputs(model=out),
                       CalibrationConfig(method=method, preprocess=preprocess))
        config = CompareConfig(measure=MeasureConfig(threshold=threshold), task=task, preprocess=preprocess)
        result = compare_files(MODELS / f"{name}.onnx", out, evaluate, config)
        output = result.errors.outputs[result.errors.worst_output]
        rows.append((method, result.headline, result.task.value))
        lines.append(f"  {method:10s} headline {result.headline:.4f} (worst channel {output.worst_channel}) "
                     f"cosine {output.cosine:.5f} SQNR {output.sqnr_db:5.1f} dB | {result.task.metric} "
                     f"{result.task.value:.4f} (FP32 {result.task.reference_count}, INT8 "
                     f"{result.task.candidate_count})  [{time.perf_counter() - start:.0f} s]")
    same, opposite, ties = concordant(rows)
    lines.append(f"  pairs of methods ordered alike by headline and {result.task.metric}: {same}, "
                 f"oppositely: {opposite}, tied in the task metric: {ties}")
    return lines


def main() -> List[str]:
    calib, detect_eval, text_calib, text_eval, cls_eval = data_sets()
    lines = run_model("yolov8n_320", calib, detect_eval, YOLO, "detect")
    lines += run_model("ppocrv4_det", text_calib, text_eval, OCR, "segment", threshold=0.3)
    lines += run_model("orientation_cls", calib, cls_eval, CLS, "classify")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
