"""Never a partial file: an exception, Ctrl-C (SIGINT) or SIGTERM in the middle of calibration or build leaves
neither a partial output nor a temp file, and a previous output at the same path survives intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import bad_inputs as bad
import numpy as np
import onnx
import pytest
import tiny
import tiny_qdq
from click.testing import CliRunner
from qdqtool.cli.main import cli

PREVIOUS = b"previous output, must survive"
WAIT_SECONDS = 120
PAUSED = Path(__file__).with_name("paused_qdqtool.py")
MARKER = "paused at"
ORT_EXTENSION = "onnxruntime.capi.onnxruntime_pybind11_state"


def slow_model(folder: Path) -> Path:
    """A few convolutions on 96x96 inputs: a calibration over many samples takes seconds, not milliseconds."""
    b = tiny.Builder(seed=5)
    x = b.input("x", [1, 3, 96, 96])
    y = b.op("Relu", [b.conv(x, 3, 16, "c1")], "r1")
    for index in range(2, 5):
        y = b.op("Relu", [b.op("Add", [b.conv(y, 16, 16, f"c{index}"), y], f"add{index}")], f"r{index}")
    path = folder / "slow.onnx"
    onnx.save(b.model([y]), path)
    return path


def many_samples(folder: Path, count: int = 8) -> Path:
    data = folder / "many"
    data.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        np.save(data / f"s{index:04d}.npy", rng.standard_normal((1, 3, 96, 96)).astype(np.float32))
    return data


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _default_sigint() -> None:
    """A job started in the background by a shell ignores SIGINT, and its children inherit that: undo it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def paused_qdqtool(point: str, args: list) -> subprocess.Popen:
    """qdqtool's console script, paused at point (see paused_qdqtool.py) until a signal arrives."""
    return subprocess.Popen([sys.executable, str(PAUSED), point, "-v", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def interrupt_at(process: subprocess.Popen, point: str, signum: int) -> str:
    """Send signum once the command says it is paused at point; its whole stderr."""
    seen = []
    try:
        for line in process.stderr:
            seen.append(line)
            if line.startswith(f"{MARKER} {point}"):
                process.send_signal(signum)
                break
        _, rest = process.communicate(timeout=WAIT_SECONDS)
    finally:
        if process.poll() is None:  # a failed test must not leave the command running
            process.kill()
            process.wait()
    stderr = "".join(seen) + rest
    assert f"{MARKER} {point}" in stderr, "the command never reached " + point + ":\n" + stderr
    return stderr


def assert_interrupted(process: subprocess.Popen, stderr: str, signum: int) -> None:
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and "qdqtool: error" not in stderr, stderr
    assert stderr.rstrip().endswith("no partial output was written"), stderr


def complete_model(path: Path) -> bool:
    return len(onnx.load(str(path)).graph.node) > 0


SIGNALS = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
# Where a calibration can be interrupted, from start-up to the last write: the first heavy import (numpy, a Python
# package), onnxruntime's C extension initialising (runner._ort: the exception becomes ImportError), the middle of
# the observation, and while the validated model is still a temp file.
CALIBRATION_POINTS = ["import:numpy", f"extension:{ORT_EXTENSION}", "log:observing",
                      "call:qdqtool.calibrate.pipeline:check_session_opens"]
# After the model is in place and before the ranges file: each output is the old one or a complete new one.
CALIBRATION_LATE_POINT = "call:qdqtool.calibrate.pipeline:save_ranges"


@SIGNALS
@pytest.mark.parametrize("point", CALIBRATION_POINTS)
def test_signal_during_calibration(tmp_path, signum, point):
    out = tmp_path / "out.onnx"
    out.write_bytes(PREVIOUS)
    process = paused_qdqtool(point, ["calibrate", slow_model(tmp_path), "--data", many_samples(tmp_path), "-o", out,
                                     "--batch-size", "1", "--method", "max"])
    assert_interrupted(process, interrupt_at(process, point, signum), signum)
    assert out.read_bytes() == PREVIOUS and not (tmp_path / "out.ranges.json").exists()
    assert leftovers(tmp_path) == []


@SIGNALS
def test_signal_between_calibration_outputs(tmp_path, signum):
    out, ranges = tmp_path / "out.onnx", tmp_path / "out.ranges.json"
    out.write_bytes(PREVIOUS)
    ranges.write_bytes(PREVIOUS)
    process = paused_qdqtool(CALIBRATION_LATE_POINT, ["calibrate", slow_model(tmp_path), "--data",
                                                      many_samples(tmp_path), "-o", out, "--method", "max"])
    assert_interrupted(process, interrupt_at(process, CALIBRATION_LATE_POINT, signum), signum)
    assert complete_model(out) and ranges.read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []


# A build: onnxruntime initialising, the backend chosen, ONNX Runtime writing its graph into the temp folder, and
# the latency runs after the engine file is in place (the report, written last, stays the old one throughout).
BUILD_POINTS = [f"extension:{ORT_EXTENSION}", "log:build backend", "call:qdqtool.build.ort_backend:create_session",
                "log:wrote"]


@SIGNALS
@pytest.mark.parametrize("point", BUILD_POINTS)
def test_signal_during_build(tmp_path, signum, point):
    model = tmp_path / "slow.qdq.onnx"
    onnx.save(tiny_qdq.qat(onnx.load(slow_model(tmp_path))), model)
    engine, report = tmp_path / "out.ort.onnx", tmp_path / "out.json"
    engine.write_bytes(PREVIOUS)
    report.write_bytes(PREVIOUS)
    process = paused_qdqtool(point, ["build", model, "--backend", "ort", "-o", engine, "--report", report,
                                     "--runs", "5", "--data", many_samples(tmp_path)])
    assert_interrupted(process, interrupt_at(process, point, signum), signum)
    assert report.read_bytes() == PREVIOUS  # the report is written last
    if point == "log:wrote":
        assert complete_model(engine)
    else:
        assert engine.read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []


class Boom(Exception):
    pass


def raise_after(target, exc: BaseException):
    """target's behaviour, then exc: the failure comes while a temp file exists."""

    def wrapped(*args, **kwargs):
        target(*args, **kwargs)
        raise exc

    return wrapped


@pytest.mark.parametrize("exc", [Boom("bug"), KeyboardInterrupt()], ids=["exception", "KeyboardInterrupt"])
def test_failure_while_writing_the_calibrated_model(tmp_path, monkeypatch, exc):
    from qdqtool.calibrate import pipeline

    out = tmp_path / "out.onnx"
    out.write_bytes(PREVIOUS)
    monkeypatch.setattr(pipeline, "check_session_opens", raise_after(pipeline.check_session_opens, exc))
    result = CliRunner().invoke(cli, ["calibrate", str(bad.good_model(tmp_path)), "--data",
                                      str(bad.good_data(tmp_path)), "-o", str(out)])
    assert result.exit_code != 0 and (isinstance(exc, KeyboardInterrupt) or result.exception is exc)
    assert out.read_bytes() == PREVIOUS and leftovers(tmp_path) == []


@pytest.mark.parametrize("exc", [Boom("bug"), KeyboardInterrupt()], ids=["exception", "KeyboardInterrupt"])
def test_failure_while_onnxruntime_writes_the_engine(tmp_path, monkeypatch, exc):
    from qdqtool.build import ort_backend

    engine = tmp_path / "out.engine"
    engine.write_bytes(PREVIOUS)
    monkeypatch.setattr(ort_backend, "create_session", raise_after(ort_backend.create_session, exc))
    result = CliRunner().invoke(cli, ["build", str(bad.good_qdq_model(tmp_path)), "--backend", "ort", "-o",
                                      str(engine)])
    assert result.exit_code != 0 and (isinstance(exc, KeyboardInterrupt) or result.exception is exc)
    assert engine.read_bytes() == PREVIOUS and leftovers(tmp_path) == []


def test_signal_handlers_are_installed_by_main():
    code = ("import signal, sys; sys.argv = ['qdqtool', '--version']\n"
            "from qdqtool.cli import main, interrupts\n"
            "try:\n    main.main()\nexcept SystemExit:\n    pass\n"
            "print(all(signal.getsignal(s) is interrupts._handler for s in (signal.SIGINT, signal.SIGTERM)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT_SECONDS,
                            env={**os.environ})
    assert result.stdout.strip().endswith("True"), result.stdout + result.stderr
