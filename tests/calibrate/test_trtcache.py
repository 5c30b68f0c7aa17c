"""TensorRT text calibration caches: the two real caches (SOURCES.md counts), value decoding, byte-exact round trip."""

from __future__ import annotations

import struct

import pytest

from qdqtool.calibrate.trtcache import (
    hex_to_scale,
    read_calibration_cache,
    scale_to_hex,
    write_calibration_cache,
)
from qdqtool.errors import QdqError

YOLO11 = "yolo11s_trt10300_entropy2.cache"
RETINA = "retinaplate_trt8501_entropy2.cache"


def test_yolo11_cache(trt_fixtures):
    header, scales = read_calibration_cache(trt_fixtures / YOLO11)
    assert header == "TRT-100300-EntropyCalibration2"
    assert len(scales) == 343
    sigmoid = scales["/model.0/act/Sigmoid_output_0"]
    assert sigmoid == struct.unpack(">f", bytes.fromhex("3c010a14"))[0]
    assert sigmoid == pytest.approx(1 / 127, rel=1e-3)  # a Sigmoid's amax is 1
    assert any(name.startswith("ONNXTRT_Broadcast") for name in scales)
    assert next(iter(scales)) == "images"  # file order kept


def test_retinaplate_cache_with_numeric_names(trt_fixtures):
    header, scales = read_calibration_cache(trt_fixtures / RETINA)
    assert header == "TRT-8501-EntropyCalibration2"
    assert len(scales) == 126
    assert "532" in scales and "561" in scales
    assert all(value > 0 for value in scales.values())


@pytest.mark.parametrize("name", [YOLO11, RETINA])
def test_real_cache_rewrites_byte_exact(trt_fixtures, tmp_path, name):
    original = (trt_fixtures / name).read_bytes()
    header, scales = read_calibration_cache(trt_fixtures / name)
    written = write_calibration_cache(tmp_path / "out.cache", scales, version_tag=header)
    assert written.read_bytes() == original


def test_write_read_round_trip(tmp_path):
    scales = {"images": 1.0 / 127, "/model.0/conv/Conv_output_0": 0.23089, "532": 3.5e-3}
    path = write_calibration_cache(tmp_path / "c.cache", scales)
    header, back = read_calibration_cache(path)
    assert header == "TRT-100300-EntropyCalibration2"
    assert list(back) == list(scales)
    assert all(back[k] == struct.unpack(">f", struct.pack(">f", v))[0] for k, v in scales.items())
    again = write_calibration_cache(tmp_path / "d.cache", back, version_tag=header)
    assert again.read_bytes() == path.read_bytes()
    assert path.read_text().splitlines()[1] == f"images: {scale_to_hex(1.0 / 127)}"


def test_short_hex_and_bad_lines(tmp_path):
    assert hex_to_scale("0") == 0.0
    bad = tmp_path / "bad.cache"
    bad.write_text("TRT-8501-EntropyCalibration2\nx: nothex\n")
    with pytest.raises(QdqError, match="line 2"):
        read_calibration_cache(bad)
    bad.write_text("not a cache\n")
    with pytest.raises(QdqError, match="header"):
        read_calibration_cache(bad)
    with pytest.raises(QdqError, match="header"):
        write_calibration_cache(tmp_path / "e.cache", {"a": 1.0}, version_tag="nonsense")
