"""Shared fixtures: where the real assets and the TensorRT fixture files are, and skips when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

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


# Hypothesis profiles (tests/test_random_graphs.py): "ci" for make test (fixed seed, bounded), "fuzz" for make fuzz.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fuzz", max_examples=400, deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
