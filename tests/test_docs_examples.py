"""Every example in the README and docs/ runs, on the files `make demo` leaves, so none can go stale: each ```sh
block runs in bash (-e: every command must succeed, gates included) and each ```python block in this Python, in a
folder holding the demo's inputs and outputs. Syntax and output shown as ```text are not run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from qdqtool.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.S | re.M)
DEMO_DATA = ["--data", "calib_data/images", "--preset", "yolo", "--size", "320"]
TIMEOUT = 1800


def examples() -> list:
    found = []
    for page in PAGES:
        for index, match in enumerate(BLOCK.finditer(page.read_text())):
            found.append(pytest.param(match.group(1), match.group(2), id=f"{page.relative_to(ROOT)}#{index}"))
    return found


def test_the_pages_hold_examples_and_runnable_blocks_are_marked():
    """Unmarked ``` blocks would be skipped silently: every block says sh, python or text (or yaml/json shown)."""
    assert len(examples()) >= 8
    for page in PAGES:
        fences = re.findall(r"^```(\w*)$", page.read_text(), re.M)
        openers = fences[0::2]
        assert all(openers), f"{page.name}: a ``` block without a language (sh, python or text)"


@pytest.fixture(scope="module")
def demo(models_dir, images_dir, tmp_path_factory) -> Path:
    """The demo's files, made the quick way: calibrate (max, 8 photos) and an ONNX Runtime build with its report."""
    folder = tmp_path_factory.mktemp("demo")
    (folder / "calib_data").mkdir()
    (folder / "calib_data" / "models").symlink_to(models_dir)
    (folder / "calib_data" / "images").symlink_to(images_dir)
    (folder / "out").mkdir()
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        for args in (["calibrate", "calib_data/models/yolov8n_320.onnx", *DEMO_DATA, "--method", "max",
                      "--max-samples", "8", "-o", "out/yolov8n.qdq.onnx", "--cache", "out/yolov8n.calib.cache"],
                     ["build", "out/yolov8n.qdq.onnx", *DEMO_DATA, "--no-latency", "--backend", "ort",
                      "--report", "out/yolov8n.layers.json", "--show", "summary"]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(cwd)
    return folder


@pytest.mark.assets
@pytest.mark.slow
@pytest.mark.parametrize("language, code", examples())
def test_example_runs_on_the_demo_files(demo, language, code):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    argv = ["bash", "-e", "-o", "pipefail", "-c", code] if language == "sh" else [sys.executable, "-c", code]
    result = subprocess.run(argv, cwd=demo, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
