"""`make bench`: every benchmark, each printing ratios against peers measured in the same run."""

from __future__ import annotations

import logging
import sys

from . import (
    bench_accuracy,
    bench_apply,
    bench_auto_time,
    bench_calibrate,
    bench_engine_page,
    bench_fix,
    bench_large,
    bench_measure,
    bench_qat,
    bench_scope_all,
)


def main(argv) -> int:
    logging.disable(logging.WARNING)   # ONNX Runtime's quantizer logs advice on the root logger
    options = [a for a in argv if "=" in a]           # e.g. models=yolov8n_320,centerface (accuracy)
    # measure (how the headline orders calibrations against task metrics, ~3 min), auto-time and large run only when
    # named: the default set is what a fresh clone runs in under 40 minutes (38.5 with measure, 2026-11-30)
    chosen = {a for a in argv if "=" not in a} or {"apply", "calibrate", "fix", "qat", "scope-all", "accuracy"}
    if "apply" in chosen:
        print("\n".join(bench_apply.main()), flush=True)
    if "fix" in chosen:
        print("\n".join(bench_fix.main()), flush=True)
    if "qat" in chosen:
        print("\n".join(bench_qat.main([])), flush=True)
    if "scope-all" in chosen:
        print("\n".join(bench_scope_all.main()), flush=True)
    if "calibrate" in chosen:
        print("\n".join(bench_calibrate.main()), flush=True)
    if "measure" in chosen:   # the headline against task metrics over 4 methods on 3 models (~3 min)
        print("\n".join(bench_measure.main()), flush=True)
    if "engine-page" in chosen:   # issue 23's targets: the HTML page at 2,000 and 10,000 layers (~2 min)
        print("\n".join(bench_engine_page.main()), flush=True)
    if "auto-time" in chosen:   # issue 10's time target: auto vs percentile at 32 samples (~10 min)
        print("\n".join(bench_auto_time.main()), flush=True)
    if "accuracy" in chosen:
        print("\n".join(bench_accuracy.main(options)), flush=True)
    if "large" in chosen:   # a >2 GB model: needs ~8 GiB of free memory and ~6 GiB of disk for a few minutes
        print("\n".join(bench_large.main()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
