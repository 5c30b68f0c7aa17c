"""Ctrl-C (SIGINT) and SIGTERM end a run with exit status 128 + signal (130, 143), one line and no traceback,
wherever they land: in the middle of the work, while an output is being written (the temp file is removed, a
previous output survives), or during a lazy import, where a C extension's initialisation turns the exception into
``ImportError: initialization failed`` (pybind11 does, for onnxruntime). The signal is remembered when it arrives,
so whatever exception it becomes on the way up, the exit status says what happened."""

from __future__ import annotations

import signal
from typing import Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)
NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
_received: list[int] = []


class Interrupted(BaseException):
    """Raised by the handler; a BaseException so that no `except Exception` in qdqtool or its dependencies
    swallows it, and not KeyboardInterrupt, which click would turn into 'Aborted!' and exit 1."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _handler(signum: int, frame) -> None:
    """The first signal unwinds the run (temp files are removed on the way); a repeated Ctrl-C while it unwinds
    is ignored, so that the clean-up itself is not cut short."""
    if _received:
        return
    _received.append(signum)
    raise Interrupted(signum)


def install() -> None:
    for signum in SIGNALS:
        signal.signal(signum, _handler)


def received() -> Optional[int]:
    """The signal that interrupted this run, if one did."""
    return _received[0] if _received else None


def signal_of(exc: BaseException) -> Optional[int]:
    """The signal behind exc: one the handler saw (whatever exception it became), or a KeyboardInterrupt raised
    without the handler (Ctrl-C before it was installed, or Python's own handler)."""
    if received() is not None:
        return received()
    if isinstance(exc, Interrupted):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    return None


def exit_status(signum: int) -> int:
    return 128 + signum


def message(signum: int) -> str:
    return f"qdqtool: interrupted ({NAMES.get(signum, signum)}); no partial output was written"
