"""User-facing errors. Each message says what is wrong and what to do; the CLI prints it as one line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional


class QdqError(Exception):
    """Base of every error caused by the user's input or environment (not a bug in qdqtool).

    The message says what is wrong and what to do in the library's words; `settings` names the inputs or config
    fields that would fix it (e.g. "data", "shapes"), so a front end can point at its own spelling of them (the
    CLI renders them as its options). Messages never name CLI options themselves.
    """

    def __init__(self, message: str, *, settings: Sequence[str] = ()):
        super().__init__(message)
        self.settings: tuple[str, ...] = tuple(settings)


class ConfigError(QdqError):
    """A configuration value is invalid (unknown method, bad shape profile, ...)."""


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
