"""Never a partial file: an exception, Ctrl-C (SIGINT) or SIGTERM in the middle of calibration or build leaves
neither a partial output nor a temp file, and a previous output at the same path survives intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def many_samples(folder: Path, count: int = 400) -> Path:
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


def qdqtool_process(args: list) -> subprocess.Popen:
    code = "from qdqtool.cli.main import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, "-v", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def interrupt_when(process: subprocess.Popen, marker: str, signum: int) -> str:
    """Send signum once stderr shows marker (the command is past loading, in the middle of its work)."""
    seen = []
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        for line in process.stderr:
            seen.append(line)
            if marker in line:
                process.send_signal(signum)
                break
            assert time.monotonic() < deadline, "the command never reached " + marker
        _, rest = process.communicate(timeout=WAIT_SECONDS)
    finally:
        if process.poll() is None:  # a failed test must not leave the command running
            process.kill()
            process.wait()
    return "".join(seen) + rest


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_calibration(tmp_path, signum):
    out = tmp_path / "out.onnx"
    out.write_bytes(PREVIOUS)
    process = qdqtool_process(["calibrate", slow_model(tmp_path), "--data", many_samples(tmp_path), "-o", out,
                               "--batch-size", "1"])
    stderr = interrupt_when(process, "observing", signum)
    assert process.returncode != 0, stderr
    assert "Traceback" not in stderr
    assert out.read_bytes() == PREVIOUS and not (tmp_path / "out.ranges.json").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_build(tmp_path, signum):
    model = tmp_path / "slow.qdq.onnx"
    onnx.save(tiny_qdq.qat(onnx.load(slow_model(tmp_path))), model)
    engine, report = tmp_path / "out.engine", tmp_path / "out.json"
    engine.write_bytes(PREVIOUS)
    report.write_bytes(PREVIOUS)
    process = qdqtool_process(["build", model, "--backend", "ort", "-o", engine, "--report", report,
                               "--runs", "100000", "--data", many_samples(tmp_path)])
    stderr = interrupt_when(process, "build backend", signum)
    assert process.returncode != 0, stderr
    assert "Traceback" not in stderr
    assert report.read_bytes() == PREVIOUS  # the report is written last
    assert engine.read_bytes() == PREVIOUS or onnx.load(str(engine)).graph.node  # old, or new and complete
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


def test_sigterm_handler_is_installed_by_main():
    code = ("import signal, sys; sys.argv = ['qdqtool', '--version']\n"
            "from qdqtool.cli import main\n"
            "try:\n    main.main()\nexcept SystemExit:\n    pass\n"
            "print(signal.getsignal(signal.SIGTERM) is main._terminated)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT_SECONDS,
                            env={**os.environ})
    assert result.stdout.strip().endswith("True"), result.stdout + result.stderr
