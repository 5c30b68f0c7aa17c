"""The accuracy bench's data: one fixed split of the 18 photos, deterministic crops, and per-model .npy feeds.

Calibration: 9 photos (including text.png, so the text models see text) + augmented crops of them.
Held out: the 9 other photos (including page.png and astronaut.png, which hold the text and the faces), plus, when
fetched (bench/extra_models.py PHOTOS), Ultralytics' bus.jpg and zidane.jpg (people, a bus, faces: objects the
detectors know), + crops of them.
Each model's feeds are made once with its own pre-processing and saved as .npy, so every tool sees identical tensors.

`calib=N` (the first-try protocol): N whole photos, one feed each, the first N of CALIBRATION_POOL (12 photos, so
N <= 12), against the 6 other photos + the fetched ones + crops of them: no crop of a held-out photo is calibrated
on, and the held-out set is the same at every N.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
from PIL import Image

from qdqtool.samples.images import write_augmented_crops

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "calib_data" / "images"
CALIBRATION_PHOTOS = ("camera.png", "chelsea.png", "coins.png", "flower.jpg", "gravel.png", "ihc.png",
                      "motorcycle_left.png", "retina.jpg", "text.png")
HELD_OUT_PHOTOS = ("astronaut.png", "brick.png", "cell.png", "coffee.png", "color.png", "grass.png",
                   "hubble_deep_field.jpg", "moon.png", "page.png")
CALIBRATION_POOL = ("text.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "flower.jpg",
                    "motorcycle_left.png", "retina.jpg", "gravel.png", "ihc.png", "brick.png", "grass.png")
POOL_HELD_OUT = tuple(sorted(set(CALIBRATION_PHOTOS + HELD_OUT_PHOTOS) - set(CALIBRATION_POOL)))
CALIBRATION_CROPS = 7          # 9 photos + 7 crops = 16 calibration samples
HELD_OUT_CROPS = 25            # 11 photos + 25 crops = 36 held-out images (9 + 25 without the extra photos)
SEED = 0


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _images(sources: Sequence[Path], crops: int, work: Path, tag: str) -> List[np.ndarray]:
    folder = work / f"photos_{tag}_{len(sources)}"
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        target = folder / source.name
        if not target.exists():
            target.write_bytes(source.read_bytes())
    crop_folder = work / f"crops_{tag}_{len(sources)}"
    if len(list(crop_folder.glob("crop_*.png"))) != crops:
        write_augmented_crops(folder, crop_folder, crops, seed=SEED)
    return [_rgb(folder / s.name) for s in sources] + [_rgb(p) for p in sorted(crop_folder.glob("crop_*.png"))]


def source_names(sources: Sequence[Path], crops: int) -> List[str]:
    """The photo each image of _images(sources, crops, ...) comes from: the photos themselves, then the crops, which
    write_augmented_crops cuts from the photos cycled in name order. Feeds of one photo are correlated: the accuracy
    bench's intervals resample photos, not feeds."""
    by_name = sorted(s.name for s in sources)
    return [s.name for s in sources] + [by_name[index % len(by_name)] for index in range(crops)]


def held_out_names(extra_photos: Sequence[Path] = (), calib: Optional[int] = None) -> List[str]:
    """The source photo of each held-out image of photo_split, in its order."""
    return source_names(held_out_sources(extra_photos, calib), HELD_OUT_CROPS)


TURNED_PAGE_SOURCE = "page.png"


def turned_page() -> List[np.ndarray]:
    """page.png turned by 0/90/180/270 degrees: the orientation classifier's four real answers."""
    image = Image.open(PHOTOS / TURNED_PAGE_SOURCE).convert("RGB")
    return [np.asarray(image.rotate(90 * q, expand=True)) for q in range(4)]


def held_out_sources(extra_photos: Sequence[Path] = (), calib: Optional[int] = None) -> List[Path]:
    names = HELD_OUT_PHOTOS if calib is None else POOL_HELD_OUT
    return [PHOTOS / name for name in names] + [p for p in extra_photos if p.is_file()]


def calibration_sources(calib: Optional[int] = None) -> List[Path]:
    """The calibration photos: the fixed 9 (with crops), or the first `calib` of CALIBRATION_POOL."""
    if calib is not None and not 1 <= calib <= len(CALIBRATION_POOL):
        raise ValueError(f"calib must be between 1 and {len(CALIBRATION_POOL)}, got {calib}")
    return [PHOTOS / name for name in (CALIBRATION_PHOTOS if calib is None else CALIBRATION_POOL[:calib])]


def photo_split(work: Path, extra_photos: Sequence[Path] = (), calib: Optional[int] = None):
    """(calibration RGB images, their source photos, held-out RGB images), the same every run for the same extra
    photos and `calib`."""
    sources = calibration_sources(calib)
    crops = CALIBRATION_CROPS if calib is None else 0
    calibration = (_images(sources, CALIBRATION_CROPS, work, "calibration") if calib is None
                   else [_rgb(path) for path in sources])
    tag = "held_out" if calib is None else "held_out_pool"
    return (calibration, source_names(sources, crops),
            _images(held_out_sources(extra_photos, calib), HELD_OUT_CROPS, work, tag))


def write_feeds(images: List[np.ndarray], prepare: Callable, folder: Path, sources: Sequence[str] = ()
                ) -> List[np.ndarray]:
    """Each image through the model's pre-processing; every feed saved as feed_NNNN__PHOTO.npy (its source photo's
    stem: qdqtool keeps feeds of one photo together, qdqtool.samples.sets.source_of). Returns the feeds."""
    folder.mkdir(parents=True, exist_ok=True)
    feeds, names = [], []
    for index, rgb in enumerate(images):
        cut = [feed.astype(np.float32) for feed in prepare(rgb)]
        feeds += cut
        names += [Path(sources[index]).stem if sources else f"image{index:03d}"] * len(cut)
    for index, (feed, name) in enumerate(zip(feeds, names)):
        np.save(folder / f"feed_{index:04d}__{name}.npy", feed)
    return feeds



def write_stacked(feeds: List[np.ndarray], path: Path) -> Path:
    """All calibration feeds in one [N, ...] array (ModelOpt's --calibration_data_path)."""
    np.save(path, np.concatenate(feeds, 0))
    return path
