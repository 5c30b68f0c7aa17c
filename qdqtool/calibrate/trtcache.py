"""TensorRT's text calibration cache: a `TRT-<ver>-<Calibrator>` header, then `tensor: <big-endian float32 hex>` lines.

TensorRT <= 10 reads these caches for implicit INT8 (deprecated in 10.1, removed in 11); qdqtool writes them so a
calibration can also feed an implicit-quantization build, and reads them to reuse an existing calibration's scales
(calibrate from a cache). TensorRT writes each scale's float32 bits with std::hex, so a value may have fewer than
8 digits ("0"), and the version as NV_TENSORRT_VERSION: major*1000 + minor*100 + patch up to 9.x ("8501"),
major*10000 + minor*100 + patch from 10.0 ("100300").
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

from qdqtool.errors import QdqError
from qdqtool.fileio import read_text_file, write_text_atomically

DEFAULT_VERSION_TAG = "TRT-100300-EntropyCalibration2"
# the IInt8Calibrator kinds whose caches TensorRT (4 to 10) writes; its getAlgorithm() names them in the header
CALIBRATORS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
_HEADER = re.compile(r"^TRT-(\d{4,6})-(\w+)$")
_HINT = ("pass a TensorRT calibration cache (first line like 'TRT-100300-EntropyCalibration2', "
         "then 'tensor: 3c010a14' lines)")


@dataclass(frozen=True)
class CalibrationCache:
    """A parsed cache: its header's parts and {tensor name: scale} in file order."""

    header: str
    version: str        # the header's digits, e.g. "8501"
    calibrator: str     # one of CALIBRATORS
    scales: Dict[str, float]

    @property
    def tensorrt_version(self) -> str:
        """The TensorRT release the digits encode: "8501" -> "8.5.1", "100300" -> "10.3.0"."""
        number = int(self.version)
        if len(self.version) == 6:
            return f"{number // 10000}.{number // 100 % 100}.{number % 100}"
        return f"{number // 1000}.{number // 100 % 10}.{number % 100}"


def scale_to_hex(scale: float) -> str:
    """The 8 hex digits TensorRT writes for a scale: the float32's big-endian bytes."""
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    """Inverse of scale_to_hex; shorter strings are left-padded with zeros (some caches write '0')."""
    digits = text.strip().lower()
    if not digits or len(digits) > 8 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"{text!r} is not a float32 hex value")
    return struct.unpack(">f", bytes.fromhex(digits.zfill(8)))[0]


def split_header(header: str, source: str = "calibration cache") -> tuple[str, str]:
    """(version digits, calibrator) of a `TRT-<version>-<calibrator>` line; QdqError for any other line."""
    found = _HEADER.match(header)
    if found is None:
        raise QdqError(f"{source} does not start with a 'TRT-<version>-<calibrator>' header "
                       f"(found {header[:60]!r}); {_HINT}")
    if found.group(2) not in CALIBRATORS:
        raise QdqError(f"{source} header {header!r} names calibrator {found.group(2)!r}, which qdqtool does not "
                       f"know; TensorRT writes one of {', '.join(CALIBRATORS)}")
    return found.group(1), found.group(2)


def _scale_of(value: str) -> float:
    scale = hex_to_scale(value)
    if not math.isfinite(scale) or scale < 0 or math.copysign(1.0, scale) < 0:
        raise ValueError(f"{value.strip()!r} is {scale}, not a scale (finite, >= 0)")
    return scale


def parse_cache(text: str, source: str = "calibration cache") -> CalibrationCache:
    """The parsed cache; raises QdqError for an empty, cut-short or malformed cache, naming the first bad line."""
    if not text.strip():
        raise QdqError(f"{source} is empty; {_HINT}")
    lines = text.splitlines()
    header = lines[0].strip()
    version, calibrator = split_header(header, source)
    scales: Dict[str, float] = {}
    first_seen: Dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(":")
        last_cut = number == len(lines) and not text.endswith(("\n", "\r"))
        if last_cut and (not sep or not name or (len(value.strip()) < 8 and value.strip().strip("0"))):
            raise QdqError(f"{source} ends inside line {number} ({line[:80]!r}): the cache looks truncated; "
                           "copy it again from where TensorRT wrote it")
        try:
            if not sep or not name:
                raise ValueError("no 'name: value'")
            scale = _scale_of(value)
        except ValueError:
            raise QdqError(f"{source} line {number} is not 'tensor: <hex float32>' ({line[:80]!r}); {_HINT}") from None
        if name in first_seen:
            raise QdqError(f"{source} names tensor {name!r} twice (lines {first_seen[name]} and {number}); "
                           "give one calibration's cache, not several joined")
        first_seen[name] = number
        scales[name] = scale
    if not scales:
        raise QdqError(f"{source} has its header but no 'tensor: <hex>' entries (truncated?); {_HINT}")
    return CalibrationCache(header, version, calibrator, scales)


def read_cache(path) -> CalibrationCache:
    """Read a TensorRT text calibration cache (see parse_cache)."""
    text = read_text_file(path, "calibration cache", _HINT)
    return parse_cache(text, f"calibration cache {Path(path)}")


def read_calibration_cache(path) -> tuple[str, dict[str, float]]:
    """Read a TensorRT text calibration cache: (header, {tensor name: scale}) in file order."""
    cache = read_cache(path)
    return cache.header, cache.scales


def format_calibration_cache(scales: Mapping[str, float], version_tag: str = DEFAULT_VERSION_TAG) -> str:
    split_header(version_tag, "the calibration cache header to write")
    body = "".join(f"{name}: {scale_to_hex(float(scale))}\n" for name, scale in scales.items())
    return f"{version_tag}\n{body}"


def write_calibration_cache(path, scales: Mapping[str, float], version_tag: str = DEFAULT_VERSION_TAG) -> Path:
    """Write scales (tensor name -> scale, i.e. amax / 127) as a TensorRT text cache, atomically, in mapping order."""
    return write_text_atomically(path, format_calibration_cache(scales, version_tag))
