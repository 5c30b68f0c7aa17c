"""TensorRT's text calibration cache: a `TRT-<ver>-<Calibrator>` header, then `tensor: <big-endian float32 hex>` lines.

TensorRT <= 10 reads these caches for implicit INT8 (deprecated in 10.1, removed in 11); qdqtool writes them so a
calibration can also feed an implicit-quantization build, and reads them to reuse an existing calibration's scales.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from pathlib import Path

from qdqtool.errors import QdqError
from qdqtool.fileio import read_text_file, write_text_atomically

DEFAULT_VERSION_TAG = "TRT-100300-EntropyCalibration2"
_HEADER = re.compile(r"^TRT-\d+-\w+$")
_HINT = ("pass a TensorRT calibration cache (first line like 'TRT-100300-EntropyCalibration2', "
         "then 'tensor: 3c010a14' lines)")


def scale_to_hex(scale: float) -> str:
    """The 8 hex digits TensorRT writes for a scale: the float32's big-endian bytes."""
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    """Inverse of scale_to_hex; shorter strings are left-padded with zeros (some caches write '0')."""
    digits = text.strip().lower()
    if not digits or len(digits) > 8 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"{text!r} is not a float32 hex value")
    return struct.unpack(">f", bytes.fromhex(digits.zfill(8)))[0]


def parse_calibration_cache(text: str, source: str = "calibration cache") -> tuple[str, dict[str, float]]:
    """(header, {tensor name: scale}) from a cache's text; raises QdqError naming the first bad line."""
    lines = text.splitlines()
    header = lines[0].strip() if lines else ""
    if not _HEADER.match(header):
        raise QdqError(f"{source} does not start with a 'TRT-<version>-<calibrator>' header "
                       f"(found {header[:60]!r}); {_HINT}")
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError("no 'name: value'")
            scales[name] = hex_to_scale(value)
        except ValueError:
            raise QdqError(f"{source} line {number} is not 'tensor: <hex float32>' ({line[:80]!r}); {_HINT}") from None
    return header, scales


def read_calibration_cache(path) -> tuple[str, dict[str, float]]:
    """Read a TensorRT text calibration cache: (header, {tensor name: scale}) in file order."""
    text = read_text_file(path, "calibration cache", _HINT)
    return parse_calibration_cache(text, str(Path(path)))


def format_calibration_cache(scales: Mapping[str, float], version_tag: str = DEFAULT_VERSION_TAG) -> str:
    if not _HEADER.match(version_tag):
        raise QdqError(f"calibration cache header {version_tag!r} is not 'TRT-<version>-<calibrator>'; "
                       f"use e.g. {DEFAULT_VERSION_TAG!r}")
    body = "".join(f"{name}: {scale_to_hex(float(scale))}\n" for name, scale in scales.items())
    return f"{version_tag}\n{body}"


def write_calibration_cache(path, scales: Mapping[str, float], version_tag: str = DEFAULT_VERSION_TAG) -> Path:
    """Write scales (tensor name -> scale, i.e. amax / 127) as a TensorRT text cache, atomically, in mapping order."""
    return write_text_atomically(path, format_calibration_cache(scales, version_tag))
