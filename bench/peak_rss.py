"""Wall time and peak RSS of one command, its peak measured from a small launcher process.

    python -m bench.peak_rss REPORT COMMAND...     runs COMMAND, writes its peak RSS (KiB) to REPORT, exits as it did

Why a launcher: Linux keeps, in a process's max RSS, the resident size of the memory it had before exec, i.e. of
its parent at fork time. A benchmark that holds models and outputs (hundreds of MiB) would floor every child's
reported peak at its own size. The launcher is a small interpreter, so the command it forks starts from ~10 MiB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mib: float
    code: int            # the command's exit status; 128 + N when signal N ended it


def run_measured(command: Sequence[str], cwd: Optional[Path] = None, stdout=None, stderr=None) -> Measured:
    """Run `command` through the launcher; its wall time, peak RSS and exit status."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "peak"
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", "bench.peak_rss", str(report), *command], cwd=cwd,
                               stdout=stdout, stderr=stderr)
        seconds = time.perf_counter() - start
        peak = int(report.read_text()) / 1024 if report.exists() else float("nan")
    return Measured(seconds, peak, code)


def main(argv: Sequence[str]) -> int:
    report, command = argv[0], list(argv[1:])
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    Path(report).write_text(str(usage.ru_maxrss))
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
