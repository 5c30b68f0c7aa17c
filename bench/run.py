"""`make bench`: every benchmark, each printing ratios against peers measured in the same run."""

from __future__ import annotations

import logging
import sys

from . import bench_accuracy, bench_calibrate, bench_fix


def main(argv) -> int:
    logging.disable(logging.WARNING)   # ONNX Runtime's quantizer logs advice on the root logger
    options = [a for a in argv if "=" in a]           # e.g. models=yolov8n_320,centerface (accuracy)
    chosen = {a for a in argv if "=" not in a} or {"calibrate", "fix", "accuracy"}
    if "fix" in chosen:
        print("\n".join(bench_fix.main()), flush=True)
    if "calibrate" in chosen:
        print("\n".join(bench_calibrate.main()), flush=True)
    if "accuracy" in chosen:
        print("\n".join(bench_accuracy.main(options)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
