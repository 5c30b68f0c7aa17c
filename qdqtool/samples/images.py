"""Image preprocessing for calibration samples: decode with Pillow, resize, reorder channels, normalise, lay out.

The pixel math, in order: decode -> gray or RGB -> resize to (height, width) -> channel order ->
``x * scale`` -> ``(x - mean) / std`` (mean/std listed in the *output* channel order) -> layout -> batch dim 1.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageEnhance, ImageOps, UnidentifiedImageError

from qdqtool.errors import DataError, OutputError
from qdqtool.fileio import write_bytes_atomically

logger = logging.getLogger("qdqtool")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
RESIZE_MODES = ("stretch", "letterbox")
CHANNEL_ORDERS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")
SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Augmentation ranges used by write_augmented_crops.
CROP_SIDE_FRACTION = (0.3, 1.0)
BRIGHTNESS_FACTOR = (0.8, 1.2)
FLIP_PROBABILITY = 0.5


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input. Values are validated on construction (DataError)."""

    size: tuple[int, int] | None = None  # (height, width); None = the model's static input shape
    resize: str = "stretch"  # "stretch" | "letterbox"
    pad_value: float = 114.0  # letterbox padding, in 0..255 pixel units
    scale: float = 1 / 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)  # applied after scale: (x*scale - mean) / std
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    channel_order: str = "RGB"  # "RGB" | "BGR"
    layout: str = "NCHW"  # "NCHW" | "NHWC"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.size is not None:
            object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        problem = _preprocess_problem(self)
        if problem:
            raise DataError(problem)


def _preprocess_problem(preprocess: Preprocess) -> str:
    checks = (
        (preprocess.resize in RESIZE_MODES, f"resize must be one of {RESIZE_MODES}, got {preprocess.resize!r}"),
        (preprocess.channel_order in CHANNEL_ORDERS,
         f"channel order must be one of {CHANNEL_ORDERS}, got {preprocess.channel_order!r}"),
        (preprocess.layout in LAYOUTS, f"layout must be one of {LAYOUTS}, got {preprocess.layout!r}"),
        (preprocess.size is None or (len(preprocess.size) == 2 and min(preprocess.size) > 0),
         f"size must be (height, width) with positive values, got {preprocess.size}; e.g. (640, 640)"),
        (0.0 <= preprocess.pad_value <= 255.0,
         f"pad value {preprocess.pad_value} is outside 0..255; give a pixel value"),
        (math.isfinite(preprocess.scale) and preprocess.scale > 0,
         f"scale must be a positive number, got {preprocess.scale}"),
        (len(preprocess.mean) in (1, 3) and all(math.isfinite(v) for v in preprocess.mean),
         f"mean needs 1 or 3 finite values, got {preprocess.mean}"),
        (len(preprocess.std) in (1, 3) and all(math.isfinite(v) and v != 0 for v in preprocess.std),
         f"std needs 1 or 3 finite non-zero values, got {preprocess.std}"),
    )
    return next((message for ok, message in checks if not ok), "")


PRESETS: dict[str, Preprocess] = {
    # Ultralytics YOLO: letterbox with grey 114 padding, RGB, pixels / 255.
    "yolo": Preprocess(resize="letterbox", pad_value=114.0),
    # torchvision/timm ImageNet classifiers: RGB, /255, ImageNet mean/std (stretched, no centre crop).
    "imagenet": Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    # PaddleOCR text detection (tools/infer/predict_det.py): cv2.imread gives BGR, NormalizeImage applies
    # scale 1/255 and the ImageNet mean/std *as listed* to that BGR array (0.485 goes to the blue channel),
    # then HWC -> CHW. PaddleOCR resizes to a multiple of 32 keeping aspect; here the size setting sets the shape.
    "paddle": Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, channel_order="BGR"),
    # RapidOCR >= 2 feeds the same det models BGR with mean = std = 0.5 (pixels in [-1, 1]).
    "rapidocr": Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), channel_order="BGR"),
    # Pixels / 255 only.
    "raw": Preprocess(),
}


class Placement(NamedTuple):
    """Where the resized image sits inside the (height, width) canvas."""

    left: int
    top: int
    width: int
    height: int


def letterbox_placement(source_width: int, source_height: int, height: int, width: int) -> Placement:
    """Keep the aspect ratio, fit inside (height, width), centre (odd padding: the extra pixel goes right/bottom)."""
    ratio = min(height / source_height, width / source_width)
    new_width = min(width, max(1, round(source_width * ratio)))
    new_height = min(height, max(1, round(source_height * ratio)))
    return Placement((width - new_width) // 2, (height - new_height) // 2, new_width, new_height)


def decode_image(path: Path, channels: int = 3) -> Image.Image:
    """Open an image file as 'L' (channels=1) or 'RGB' (alpha dropped, palette expanded, EXIF rotation applied)."""
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path.name} ({exc}); remove or replace the file") from exc
    if image.mode in SIXTEEN_BIT_MODES:
        eight_bit = np.clip(np.asarray(image, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
        image = Image.fromarray(eight_bit, mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    return image.convert("L" if channels == 1 else "RGB")


def _resized_pixels(image: Image.Image, preprocess: Preprocess, height: int, width: int) -> np.ndarray:
    """HxWxC float32 pixels in 0..255 at the target size."""
    if preprocess.resize == "stretch":
        resized = image if image.size == (width, height) else image.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(resized, dtype=np.float32)
        return pixels[..., None] if pixels.ndim == 2 else pixels
    place = letterbox_placement(image.width, image.height, height, width)
    resized = image if image.size == (place.width, place.height) else image.resize(
        (place.width, place.height), Image.Resampling.BILINEAR)
    content = np.asarray(resized, dtype=np.float32)
    content = content[..., None] if content.ndim == 2 else content
    canvas = np.full((height, width, content.shape[2]), preprocess.pad_value, dtype=np.float32)
    canvas[place.top:place.top + place.height, place.left:place.left + place.width] = content
    return canvas


def per_channel(values: tuple[float, ...], channels: int, what: str) -> np.ndarray:
    """mean/std as a float32 vector of length `channels` (a single value is broadcast)."""
    if len(values) == channels or len(values) == 1:
        return np.broadcast_to(np.asarray(values, dtype=np.float32), (channels,))
    if channels == 1 and len(set(values)) == 1:
        return np.asarray(values[:1], dtype=np.float32)
    raise DataError(f"the model takes {channels} channel(s) but {what} has {len(values)} values {values}; "
                    f"pass --{what} with {channels} value(s)")


def image_to_array(image: Image.Image, preprocess: Preprocess, size: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """One decoded image -> a (1, C, H, W) or (1, H, W, C) array of `dtype`."""
    height, width = size
    pixels = _resized_pixels(image, preprocess, height, width)
    channels = pixels.shape[2]
    if channels == 3 and preprocess.channel_order == "BGR":
        pixels = pixels[..., ::-1]
    mean = per_channel(preprocess.mean, channels, "mean")
    std = per_channel(preprocess.std, channels, "std")
    pixels = (pixels * np.float32(preprocess.scale) - mean) / std
    if preprocess.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels[None], dtype=dtype)


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside folder, sorted by name (subfolders and hidden files ignored)."""
    path = Path(folder)
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist or is not a folder; pass a folder of photos")
    files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    if not files:
        raise DataError(f"image folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); add some photos")
    return files


def _augmented(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random crop (30-100% of each side), maybe mirrored, with a small brightness change."""
    width_fraction, height_fraction = rng.uniform(*CROP_SIDE_FRACTION, size=2)
    crop_width = max(1, round(image.width * width_fraction))
    crop_height = max(1, round(image.height * height_fraction))
    left = int(rng.integers(0, image.width - crop_width + 1))
    top = int(rng.integers(0, image.height - crop_height + 1))
    mirror = rng.random() < FLIP_PROBABILITY
    brightness = rng.uniform(*BRIGHTNESS_FACTOR)
    crop = image.crop((left, top, left + crop_width, top + crop_height))
    if mirror:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return ImageEnhance.Brightness(crop).enhance(brightness)


def write_augmented_crops(src_folder: str | os.PathLike, dest_folder: str | os.PathLike,
                          count: int, seed: int = 0) -> list[Path]:
    """Write `count` augmented RGB PNG crops of the photos in src_folder (cycled in name order) to dest_folder.

    The same (photos, count, seed) always gives the same files, named crop_00000__PHOTO.png, crop_00001__PHOTO.png,
    ... after the photo's stem, so a SampleSet knows which photo each crop comes from (sets.source_of).
    """
    sources = list_image_files(src_folder)
    if count < 1:
        raise DataError(f"crop count must be at least 1, got {count}")
    dest = Path(dest_folder)
    if dest.exists() and dest.resolve() == Path(src_folder).resolve():
        raise OutputError(f"crop folder {dest} is the photo folder; choose another folder (inputs are never modified)")
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for index in range(count):
        source = sources[index % len(sources)]
        crop = _augmented(decode_image(source), rng)
        buffer = io.BytesIO()
        crop.save(buffer, format="PNG")
        written.append(write_bytes_atomically(dest / f"crop_{index:05d}__{source.stem}.png", buffer.getvalue()))
    logger.info("wrote %d augmented crops of %d photos to %s (seed %d)", count, len(sources), dest, seed)
    return written
