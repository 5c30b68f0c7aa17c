"""TensorRT's log into the `qdqtool` logger (stderr), never stdout: trt.Logger prints with std::cout, so JSON
output on stdout would carry `[TRT] [W] ...` lines. The qdqtool logger's level (INFO or DEBUG when the CLI is verbose)
decides which TensorRT severities show: VERBOSE at DEBUG, INFO at INFO, WARNING and errors by default."""

from __future__ import annotations

import logging
from collections import deque

log = logging.getLogger("qdqtool")

SEVERITY_LEVELS = {  # TensorRT ILogger.Severity name -> logging level
    "INTERNAL_ERROR": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "VERBOSE": logging.DEBUG,
}


def logging_level(severity) -> int:
    """The logging level of a TensorRT severity (an ILogger.Severity member, or its name)."""
    name = getattr(severity, "name", str(severity)).rsplit(".", 1)[-1]
    return SEVERITY_LEVELS.get(name, logging.WARNING)


def make_logger(trt, quiet: bool = False):
    """A trt.ILogger subclass instance forwarding to the qdqtool logger; it keeps the last error messages so
    exceptions can quote them. ILogger has no min_severity: TensorRT passes every message and the qdqtool
    logger's level filters them. quiet=True (the availability probe) logs everything at DEBUG only."""

    class QdqtoolTrtLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: deque[str] = deque(maxlen=5)

        def log(self, severity, msg) -> None:
            level = logging_level(severity)
            if level >= logging.ERROR:
                self.errors.append(str(msg))
            if quiet:
                level = logging.DEBUG
            if log.isEnabledFor(level):
                log.log(level, "TensorRT: %s", msg)

        def last_errors(self) -> str:
            return "; ".join(self.errors)

    return QdqtoolTrtLogger()
