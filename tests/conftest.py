"""Shared fixtures: where the real assets and the TensorRT fixture files are, and skips when they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "calib_data"
SHARED_TRT = ROOT.parent / "shared" / "fixtures" / "trt"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    folder = ASSETS / "models"
    if not (folder / "yolov8n_320.onnx").is_file():
        pytest.skip("real models not fetched: run `make assets` (python calib_data/fetch_assets.py)")
    return folder


@pytest.fixture(scope="session")
def images_dir() -> Path:
    folder = ASSETS / "images"
    if not (folder / "page.png").is_file():
        pytest.skip("real photos not fetched: run `make assets` (python calib_data/fetch_assets.py)")
    return folder


@pytest.fixture(scope="session")
def trt_fixtures() -> Path:
    if not SHARED_TRT.is_dir():
        pytest.skip(f"TensorRT layer-info fixtures not found at {SHARED_TRT} "
                    "(they live in ../shared, outside the project)")
    return SHARED_TRT
