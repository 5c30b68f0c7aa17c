"""The benchmarks' peak-memory measurement: a child's peak is its own, not its (large) parent's."""

from __future__ import annotations

import sys

import numpy as np

from bench.peak_rss import run_measured


def test_a_small_child_of_a_large_parent_reports_its_own_peak():
    ballast = np.ones(400 * 2**20 // 8)   # 400 MiB resident in this (parent) process
    small = run_measured([sys.executable, "-c", "pass"])
    big = run_measured([sys.executable, "-c", "import numpy as np; a = np.ones(300 * 2**20 // 8); print(a.sum())"])
    assert ballast.sum() > 0 and small.code == 0 and big.code == 0
    assert small.peak_mib < 150, small      # a bare interpreter, not the 400 MiB parent
    assert 300 < big.peak_mib < 450, big


def test_the_exit_status_of_the_command_is_kept():
    assert run_measured([sys.executable, "-c", "import sys; sys.exit(3)"]).code == 3
    assert run_measured([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]).code == 137
