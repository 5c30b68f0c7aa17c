"""TensorRT text calibration caches: the two real caches (SOURCES.md counts), value decoding, byte-exact round trip."""

from __future__ import annotations

import re
import struct

import pytest

from qdqtool.calibrate.trtcache import (
    hex_to_scale,
    parse_cache,
    read_cache,
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


@pytest.mark.parametrize("header,version,calibrator", [
    ("TRT-5105-EntropyCalibration2", "5.1.5", "EntropyCalibration2"),
    ("TRT-7000-EntropyCalibration", "7.0.0", "EntropyCalibration"),
    ("TRT-8602-MinMaxCalibration", "8.6.2", "MinMaxCalibration"),
    ("TRT-8401-LegacyCalibration", "8.4.1", "LegacyCalibration"),
    ("TRT-100900-EntropyCalibration2", "10.9.0", "EntropyCalibration2"),
    ("TRT-101300-MinMaxCalibration", "10.13.0", "MinMaxCalibration"),
])
def test_every_calibrator_and_version_form_parses(header, version, calibrator):
    cache = parse_cache(f"{header}\ndata: 3c008912\nconv1: 0\n")
    assert (cache.calibrator, cache.tensorrt_version) == (calibrator, version)
    assert cache.scales == {"data": struct.unpack(">f", bytes.fromhex("3c008912"))[0], "conv1": 0.0}


def test_real_cache_versions(trt_fixtures):
    assert read_cache(trt_fixtures / YOLO11).tensorrt_version == "10.3.0"
    assert read_cache(trt_fixtures / RETINA).tensorrt_version == "8.5.1"


@pytest.mark.parametrize("text,phrase", [
    ("", "is empty"),
    ("\n\n", "is empty"),
    ("TRT-8501-EntropyCalibration2\n", "has its header but no"),
    ("TRT-8501-PercentileCalibration\na: 3c010a14\n", "names calibrator 'PercentileCalibration'"),
    ("TRT-85-EntropyCalibration2\na: 3c010a14\n", "does not start with a 'TRT-<version>-<calibrator>' header"),
    ("a: 3c010a14\n", "does not start with"),
    ("TRT-8501-EntropyCalibration2\na: 3c010a14\nb: 3c01", "ends inside line 3"),
    ("TRT-8501-EntropyCalibration2\na: 3c010a14\n/model.0/co", "ends inside line 3"),
    ("TRT-8501-EntropyCalibration2\na: 0.0078\n", "line 2 is not 'tensor: <hex float32>'"),
    ("TRT-8501-EntropyCalibration2\na: 3c010a14ff\n", "line 2"),
    ("TRT-8501-EntropyCalibration2\na: bc010a14\n", "line 2"),       # negative
    ("TRT-8501-EntropyCalibration2\na: 7fc00000\n", "line 2"),       # NaN
    ("TRT-8501-EntropyCalibration2\na: 3c010a14\na: 3c010a15\n", "names tensor 'a' twice (lines 2 and 3)"),
])
def test_bad_caches_are_refused_with_what_is_wrong(text, phrase):
    with pytest.raises(QdqError, match=re.escape(phrase)):
        parse_cache(text, "calibration cache c.cache")


def test_a_last_line_without_line_end_is_fine_when_whole():
    assert parse_cache("TRT-8501-EntropyCalibration2\na: 3c010a14").scales == {"a": pytest.approx(1 / 127, rel=1e-3)}
    assert parse_cache("TRT-8501-EntropyCalibration2\na: 0").scales == {"a": 0.0}


def test_names_with_colons_keep_them():
    """tf2onnx models name tensors 'input_1:0'; the value is after the last colon."""
    cache = parse_cache("TRT-8601-EntropyCalibration2\ninput_1:0: 3c010a14\nStatefulPartitionedCall/x:0: 0\n")
    assert list(cache.scales) == ["input_1:0", "StatefulPartitionedCall/x:0"]
