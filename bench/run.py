"""`make bench`: every benchmark, each printing ratios against peers measured in the same run."""

from __future__ import annotations

import logging
import sys

from . import bench_accuracy, bench_calibrate, bench_fix, extra_models


def main(argv) -> int:
    logging.disable(logging.WARNING)   # ONNX Runtime's quantizer logs advice on the root logger
    chosen = set(argv) or {"calibrate", "fix", "accuracy"}
    if "fix" in chosen:
        print("\n".join(bench_fix.main()), flush=True)
    if "calibrate" in chosen:
        print("\n".join(bench_calibrate.main()), flush=True)
    if "accuracy" in chosen:
        extra_models.fetch(extra_models.ROOT / "bench_out" / "extra_models")
        print("\n".join(bench_accuracy.main([])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
