"""The quantizers of the accuracy bench, each run in its own process: wall time and peak RSS (os.wait4).

Rows: ONNX Runtime quantize_static (MinMax, Entropy), the MinMax one repaired by `qdqtool fix-residuals`;
`qdqtool calibrate` with every --method the installed CLI offers (read from its --help, so new methods appear by
themselves), and with --max-error when offered; NVIDIA ModelOpt's ONNX PTQ (max, entropy) when a peer venv has it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from bench import peak_rss

ROOT = Path(__file__).resolve().parents[1]
QDQTOOL = str(Path(sys.executable).with_name("qdqtool"))
PEER_VENVS = (ROOT / ".venv-peers", Path("/work/venvs/peers"))
MAX_ERROR = 0.05        # the --max-error row's target, when the CLI has the option


@dataclass(frozen=True)
class Row:
    name: str            # shown in the table
    tool: str            # "ort" | "fix" | "qdqtool" | "modelopt"
    option: str          # the method (or "MinMax"/"Entropy"); for "fix": the ORT row it repairs
    extra: Tuple[str, ...] = ()


@dataclass(frozen=True)
class RunResult:
    seconds: float
    peak_mib: float
    error: Optional[str]   # None when the run succeeded


def run_measured(command: Sequence[str], log: Path) -> RunResult:
    """Run one command in a fresh process (through bench.peak_rss); its wall time, peak RSS and last stderr line on
    failure."""
    with open(log, "wb") as sink:
        run = peak_rss.run_measured(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    error = None
    if run.code != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        killed = " (killed by SIGKILL: out of memory?)" if run.code == 128 + 9 else ""
        error = f"exit {run.code}{killed}: {lines[-1][:200] if lines else 'no output'}"
    return RunResult(run.seconds, run.peak_mib, error)


def qdqtool_options() -> Tuple[List[str], str, bool]:
    """(--method choices, the default method, whether --max-error exists) from `qdqtool calibrate --help`."""
    text = subprocess.run([QDQTOOL, "calibrate", "--help"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    choices = re.search(r"--method \[([^\]]+)\]", flat).group(1).split("|")
    default = re.search(r"--method \[[^\]]+\].*?\[default: (\w+)", flat)
    return choices, default.group(1) if default else choices[0], "--max-error" in flat


def peer_python() -> Tuple[Optional[Path], str]:
    """The ModelOpt venv's python and its versions, or (None, why not)."""
    for venv in PEER_VENVS:
        python = venv / "bin" / "python"
        if python.exists():
            probe = subprocess.run(
                [str(python), "-c", "import importlib.metadata as m; print(' '.join(f'{p}=={m.version(p)}' for p in "
                 "('nvidia-modelopt', 'torch', 'onnxruntime-gpu', 'onnx')))"], capture_output=True, text=True)
            if probe.returncode == 0:
                return python, probe.stdout.strip()
            return None, f"{venv} lacks nvidia-modelopt/torch ({probe.stderr.strip().splitlines()[-1:]})"
    return None, "no peer venv (.venv-peers or /work/venvs/peers): run `make bench-peers` for the ModelOpt rows"


def rows(methods: Sequence[str], has_max_error: bool, default: str, with_modelopt: bool) -> List[Row]:
    found = [Row(f"ORT quantize_static {m}", "ort", m) for m in ("MinMax", "Entropy")]
    found.append(Row("ORT MinMax + qdqtool fix-residuals", "fix", "MinMax"))
    found += [Row(f"qdqtool --method {m}{' (default)' if m == default else ''}", "qdqtool", m) for m in methods]
    if has_max_error:
        found.append(Row(f"qdqtool --method {default} --max-error {MAX_ERROR}", "qdqtool", default,
                         ("--max-error", str(MAX_ERROR))))
    if with_modelopt:
        found += [Row(f"ModelOpt int8 {m}", "modelopt", m) for m in ("max", "entropy")]
    return found


def command(row: Row, fp32: Path, feeds: Path, stacked: Path, out: Path, peer: Optional[Path],
            work: Path) -> List[str]:
    """The command line of one row; ModelOpt gets a private copy of the model (it rewrites its input in place)."""
    if row.tool == "ort":
        return [sys.executable, "-m", "bench.quantize_static_once", str(fp32), str(feeds), str(out), row.option]
    if row.tool == "fix":
        return [QDQTOOL, "fix-residuals", str(ort_output(work, row.option)), "-o", str(out), "--data", str(feeds)]
    if row.tool == "qdqtool":
        return [QDQTOOL, "calibrate", str(fp32), "--data", str(feeds), "-o", str(out), "--method", row.option,
                *row.extra]
    copy = work / "modelopt_input" / fp32.name
    copy.parent.mkdir(exist_ok=True)
    shutil.copy(fp32, copy)
    return [str(peer), "-m", "modelopt.onnx.quantization", "--onnx_path", str(copy), "--quantize_mode", "int8",
            "--calibration_method", row.option, "--calibration_data_path", str(stacked), "--calibration_eps", "cpu",
            "--high_precision_dtype", "fp32", "--output_path", str(out)]


def ort_output(work: Path, method: str) -> Path:
    return work / f"ort_{method}.onnx"


def output_path(row: Row, work: Path) -> Path:
    if row.tool == "ort":
        return ort_output(work, row.option)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", row.name).strip("_").lower()
    return work / f"{slug}.onnx"


def saved_output_path(row: Dict, work: Path) -> Path:
    """Where a saved result row's model was written (ORT's rows are named "ORT quantize_static METHOD")."""
    option = row["name"].split()[-1] if row["tool"] == "ort" else ""
    return output_path(Row(row["name"], row["tool"], option), work)
