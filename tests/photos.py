"""Evaluation images made from the real photos for the integration tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

TURNED_DOCUMENTS = ("page.png", "camera.png")


def turned_copies(images_dir: Path, target: Path, names=TURNED_DOCUMENTS) -> Path:
    """Each photo turned by 0, 90, 180 and 270 degrees (four different answers for an orientation classifier)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        image = Image.open(images_dir / name).convert("RGB")
        for quarter in range(4):
            image.rotate(90 * quarter, expand=True).save(target / f"{Path(name).stem}_{90 * quarter}.png")
    return target
