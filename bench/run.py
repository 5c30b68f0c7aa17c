"""`make bench`: every benchmark, each printing ratios against peers measured in the same run."""

from __future__ import annotations

import logging
import sys

from . import bench_calibrate, bench_fix, bench_large


def main(argv) -> int:
    logging.disable(logging.WARNING)   # ONNX Runtime's quantizer logs advice on the root logger
    chosen = set(argv) or {"calibrate", "fix", "large"}
    if "fix" in chosen:
        print("\n".join(bench_fix.main()), flush=True)
    if "calibrate" in chosen:
        print("\n".join(bench_calibrate.main()), flush=True)
    if "large" in chosen:   # a >2 GB model: needs ~8 GiB of free memory and ~6 GiB of disk for a few minutes
        print("\n".join(bench_large.main()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
