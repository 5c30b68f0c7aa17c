"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages ending in
NUL on file descriptors 3 and 4), standard library only: open a file, wait for the page to say it is ready, read the
DOM with a script, take a screenshot, collect console errors and exceptions.

Debian's `chromium` package (`make browser`); `find_chromium()` is None where it is absent.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe")
READY = "document.body && document.body.dataset.state === 'ready'"
SKIP_REASON = "chromium not installed (Debian: apt-get install -y chromium, or `make browser`)"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One Chromium process, one page. Use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 900, executable: str | None = None):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise RuntimeError(SKIP_REASON)
        self.size = (width, height)
        self.errors: list[str] = []
        self._id = 0
        self._buffer = b""

    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="qdq-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:   # in the child: the pipe ends Chromium expects on fds 3 and 4 (inheritable dups)
            read_end, write_end = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self._process = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self._profile}",
             f"--window-size={self.size[0]},{self.size[1]}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=wire)  # close_fds would close 3 and 4 after wire()
        os.close(to_child_r)
        os.close(from_child_w)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(method, session=True)
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.size[0], "height": self.size[1],
                                                         "deviceScaleFactor": 1, "mobile": False}, session=True)
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.call("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for fd in (self._to_child, self._from_child):
            os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    # ---- protocol
    def call(self, method: str, params: dict | None = None, session: bool = False, timeout: float = 120) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(line)

    def _event(self, event: dict) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(params["entry"].get("text", "log error"))

    # ---- page
    def evaluate(self, expression: str, timeout: float = 120):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True, timeout=timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def open(self, path: Path, timeout: float = 120) -> float:
        """Navigate to a file and wait until the page says it is ready; the seconds from navigation to ready."""
        start = time.monotonic()
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=True)
        self.wait(READY, timeout)
        return time.monotonic() - start

    def run_before_scripts(self, source: str) -> str:
        """Run source in every page before its own scripts (e.g. to take a browser feature away); returns an id."""
        return self.call("Page.addScriptToEvaluateOnNewDocument", {"source": source}, session=True)["identifier"]

    def forget_script(self, identifier: str) -> None:
        self.call("Page.removeScriptToEvaluateOnNewDocument", {"identifier": identifier}, session=True)

    def wait(self, condition: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(f"!!({condition})"):
                return
            time.sleep(0.05)
        state = self.evaluate("document.body ? document.body.dataset.state : 'no body'")
        raise TimeoutError(f"not {condition} after {timeout} s (state {state}); errors: {self.errors}")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)
