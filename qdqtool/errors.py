"""User-facing errors. Each message says what is wrong and what to do; the CLI prints it as one line."""

from __future__ import annotations

from typing import Optional


class QdqError(Exception):
    """Base of every error caused by the user's input or environment (not a bug in qdqtool)."""


class ModelError(QdqError):
    """The ONNX model cannot be used as given."""


class DataError(QdqError):
    """The calibration or evaluation data cannot be used as given."""


class OutputError(QdqError):
    """The output path is unusable (equal to the input, unwritable folder, ...)."""


class BackendUnavailable(QdqError):
    """An optional backend (TensorRT, a GPU provider) is missing."""


class RangeError(QdqError):
    """A quantizer needs a range that no source (existing scale, ranges file, data) provides."""


def first_line(exc: BaseException, max_chars: Optional[int] = None) -> str:
    """The first line of a (third-party) exception's message, cut to max_chars; its class name if it has none."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if max_chars is None else line[:max_chars]
