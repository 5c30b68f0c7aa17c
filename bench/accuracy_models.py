"""The models of the accuracy bench: how each one's samples are made (.npy, its own pre-processing) and judged.

Shared assets follow tests/calibrate/test_calibrate_real.py (crops of the even-numbered photos calibrate, the
odd-numbered photos, page.png or turned documents evaluate). Extra models (bench/extra_models.py, never tuned on)
use their packages' own pre-processing; ppocrv3_det at a fixed 736x736 (its rule gives 736 on the short side:
one shape lets every tool's calibrator run).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
from PIL import Image

from bench import extra_models
from qdqtool.accuracy.tasks import Detection, detection_agreement, mask_iou, match_detections
from qdqtool.samples.images import PRESETS, decode_image, image_to_array

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "calib_data" / "images"
SHARED = ROOT / "calib_data" / "models"
EXTRA = ROOT / "bench_out" / "extra_models"

Array = np.ndarray


def preset_pre(name: str, size) -> Callable[[Path], Array]:
    preprocess = dataclasses.replace(PRESETS[name], size=size)

    def pre(path: Path) -> Array:
        return image_to_array(decode_image(path, 3), preprocess, size, np.dtype(np.float32))
    return pre


def own_pre(key: str, resize=None) -> Callable[[Path], Array]:
    def pre(path: Path) -> Array:
        image = Image.open(path).convert("RGB")
        if resize is not None:
            image = image.resize(resize, Image.BILINEAR)
        return extra_models.preprocess[key](np.asarray(image))[0].astype(np.float32)
    return pre


def detection_f1(references: Sequence[List[Array]], candidates: Sequence[List[Array]]) -> float:
    found = total = 0.0
    for ref, got in zip(references, candidates):
        f1, _, n_ref, n_cand = detection_agreement(ref[0][0], got[0][0])
        found, total = found + f1 * (n_ref + n_cand), total + n_ref + n_cand
    return found / total if total else 1.0


def yolox_f1(references: Sequence[List[Array]], candidates: Sequence[List[Array]]) -> float:
    """ddddocr's own decode (score > 0.1, NMS 0.45) on both, greedy one-to-one match at IoU 0.5."""
    def dets(outputs):
        return [Detection(tuple(box), 0, score) for _, score, box in extra_models.decode_ddddocr_yolox(outputs, 1.0)]
    matched = total = 0
    for ref, got in zip(references, candidates):
        a, b = dets(ref), dets(got)
        matched += len(match_detections(a, b)[0])
        total += len(a) + len(b)
    return 2 * matched / total if total else 1.0


def pooled_mask_iou(threshold: float) -> Callable:
    def metric(references, candidates) -> float:
        ref = np.concatenate([r[0].reshape(-1) > threshold for r in references])
        got = np.concatenate([c[0].reshape(-1) > threshold for c in candidates])
        return mask_iou(ref, got)
    return metric


def top1(references, candidates) -> float:
    return float(np.mean([int(np.argmax(r[0])) == int(np.argmax(c[0])) for r, c in zip(references, candidates)]))


@dataclass(frozen=True)
class BenchModel:
    key: str
    path: Path
    pre: Callable[[Path], Array]
    calib: str          # "crops" (of the even photos) | "text" (crops of text.png)
    evaluate: str       # "odd" photos | "page" | "turned" documents + odd photos
    metric_name: str
    metric: Callable


MODELS: Dict[str, BenchModel] = {m.key: m for m in (
    BenchModel("yolov8n_320", SHARED / "yolov8n_320.onnx", preset_pre("yolo", (320, 320)), "crops", "odd",
               "detection F1", detection_f1),
    BenchModel("orientation_cls", SHARED / "orientation_cls.onnx", preset_pre("imagenet", (224, 224)), "crops",
               "turned", "top-1 agreement", top1),
    BenchModel("ppocrv4_det", SHARED / "ppocrv4_det.onnx", preset_pre("rapidocr", (640, 640)), "text", "page",
               "mask IoU", pooled_mask_iou(0.3)),
    BenchModel("ppocrv3_det", EXTRA / "ppocrv3_det.onnx", own_pre("ppocrv3_det", (736, 736)), "crops", "odd",
               "mask IoU", pooled_mask_iou(0.3)),
    BenchModel("ddddocr_yolox", EXTRA / "ddddocr_yolox_det_416.onnx", own_pre("ddddocr_yolox"), "crops", "odd",
               "detection F1", yolox_f1),
    BenchModel("slider_yolov8", EXTRA / "slider_yolov8s_416.onnx", own_pre("slider_yolov8"), "crops", "odd",
               "detection F1", detection_f1),
)}


def photo_split(work: Path) -> Dict[str, Path]:
    """Folders of images: crops of the even photos (+ those photos), the odd photos, page.png, text crops,
    turned documents (page.png and camera.png at 0/90/180/270) + the odd photos."""
    from qdqtool.samples.images import write_augmented_crops

    folders = {name: work / name for name in ("even", "odd", "crops", "text", "page", "turned")}
    if all(f.exists() for f in folders.values()):
        return folders
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in PHOTOS.iterdir())
    for index, name in enumerate(names):
        Image.open(PHOTOS / name).save(folders["even" if index % 2 == 0 else "odd"] / Path(name).with_suffix(".png"))
    write_augmented_crops(folders["even"], folders["crops"], 32, seed=0)
    text_src = work / "text_src"
    text_src.mkdir(exist_ok=True)
    Image.open(PHOTOS / "text.png").save(text_src / "text.png")
    write_augmented_crops(text_src, folders["text"], 15, seed=1)
    Image.open(PHOTOS / "text.png").save(folders["text"] / "text.png")
    Image.open(PHOTOS / "page.png").save(folders["page"] / "page.png")
    for name in ("page.png", "camera.png"):
        image = Image.open(PHOTOS / name).convert("RGB")
        for quarter in range(4):
            image.rotate(90 * quarter, expand=True).save(folders["turned"] / f"{Path(name).stem}_{90 * quarter}.png")
    for photo in folders["odd"].iterdir():
        Image.open(photo).save(folders["turned"] / photo.name)
    return folders


def write_samples(model: BenchModel, images: Path, out: Path) -> Path:
    """Each image pre-processed by the model's own rule, saved as one .npy (the form every tool reads)."""
    out.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(sorted(images.iterdir())):
        target = out / f"{index:03d}_{path.stem}.npy"
        if not target.exists():
            np.save(target, model.pre(path))
    return out
