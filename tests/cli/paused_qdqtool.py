"""Run qdqtool's console script, pausing at one named point so that a test can send a signal exactly there.

    python paused_qdqtool.py POINT qdqtool-args...

POINT is one of
  import:MODULE     pause when MODULE is first imported (a Python module: the signal's exception goes up as is)
  extension:MODULE  the same, and the exception becomes ImportError("initialization failed"), as pybind11 makes of
                    any exception raised while a C extension (onnxruntime's) initialises
  log:TEXT          pause when the run logs a line containing TEXT (qdqtool's logger; give -v for INFO lines)
  call:MODULE:NAME  pause on the first call of MODULE.NAME (dotted NAME: an attribute of an attribute)
When paused it prints "paused at POINT" on stderr and sleeps until a signal ends the pause; a run that never
reaches POINT finishes normally (the test then sees no "paused at" line and fails).
"""

from __future__ import annotations

import importlib
import importlib.abc
import logging
import sys
import time

MARKER = "paused at"


def pause(point: str) -> None:
    sys.stderr.write(f"{MARKER} {point}\n")
    sys.stderr.flush()
    while True:
        time.sleep(0.01)


class PauseOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, point: str, module: str, extension: bool):
        self.point, self.module, self.extension, self.done = point, module, extension, False

    def find_spec(self, fullname, path, target=None):
        if fullname != self.module or self.done:
            return None
        self.done = True
        try:
            pause(self.point)
        except BaseException as exc:
            if self.extension:
                raise ImportError("initialization failed") from exc
            raise


class PauseOnLog(logging.Filter):
    def __init__(self, point: str, text: str):
        super().__init__()
        self.point, self.text = point, text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.text in record.getMessage():
            pause(self.point)
        return True


def pause_on_call(point: str, module: str, name: str) -> None:
    *owner_path, attribute = name.split(".")
    owner = importlib.import_module(module)
    for part in owner_path:
        owner = getattr(owner, part)
    original = getattr(owner, attribute)

    def paused(*args, **kwargs):
        setattr(owner, attribute, original)
        pause(point)
        return original(*args, **kwargs)

    setattr(owner, attribute, paused)


def arm(point: str) -> None:
    kind, _, what = point.partition(":")
    if kind in ("import", "extension"):
        sys.meta_path.insert(0, PauseOnImport(point, what, kind == "extension"))
    elif kind == "log":
        logging.getLogger("qdqtool").addFilter(PauseOnLog(point, what))
    elif kind == "call":
        pause_on_call(point, *what.split(":", 1))
    else:
        raise SystemExit(f"unknown pause point {point!r}")


if __name__ == "__main__":
    point = sys.argv[1]
    sys.argv = ["qdqtool", *sys.argv[2:]]
    from qdqtool.cli.main import main

    arm(point)
    main()
