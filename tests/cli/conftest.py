"""Fixtures shared by the CLI tests."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tiny


@pytest.fixture
def resnet(tmp_path):
    """(a float ResNet block saved as resnet.onnx, a folder of 6 .npy samples for it)."""
    path = tmp_path / "resnet.onnx"
    onnx.save(tiny.resnet_block(), path)
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        np.save(data / f"s{i}.npy", rng.standard_normal((1, 4, 8, 8)).astype(np.float32))
    return path, data
