"""fix-residuals on real QAT exports (ModelOpt-torch): counts before/after, gates, inferred vs calibrated scales,
output cosine of fixed vs unfixed vs FP32 on real photos, idempotence and --dry-run.

    python -m bench.bench_qat [EXPORT.onnx ...] [--images DIR]

Without paths it measures tests/data/qat/*.onnx; full-size exports come from bench/qat_exports.py OUTDIR --full.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from itertools import islice
from pathlib import Path

import numpy as np
import onnx

from qdqtool.check.predict import check_model
from qdqtool.onnxgraph.qdqview import read_qdq, strip_qdq
from qdqtool.repair.pipeline import DataConfig, fix_file, fix_model
from qdqtool.repair.plan import FixConfig, plan_repairs
from qdqtool.runner import create_session
from qdqtool.samples.images import Preprocess
from qdqtool.samples.sets import SampleSet, model_input_specs
from qdqtool.trt.kinds import EditKind, Gate, Kind

ROOT = Path(__file__).resolve().parents[1]
QDQTOOL = [sys.executable, "-c", "from qdqtool.cli.main import main; main()"]


def counts(model: onnx.ModelProto) -> dict[str, int]:
    report = check_model(read_qdq(model))
    return {"float-add": report.counts()[Gate.FLOAT_ADD], "requant-concat": report.counts()[Gate.REQUANT_CONCAT],
            "two-scales": report.kinds().get(Kind.TWO_SCALES, 0), "fused-add": report.kinds().get(Kind.FUSED_ADD, 0)}


def gate_exit(path: Path) -> int:
    return subprocess.run([*QDQTOOL, "check", str(path), "--fail-on", "float-add,requant-concat"],
                          capture_output=True, check=False).returncode


def outputs(model: onnx.ModelProto, feeds: list[dict]) -> np.ndarray:
    session = create_session(model, providers=["CPUExecutionProvider"])
    name = session.get_outputs()[0].name
    return np.concatenate([session.run([name], feed)[0].ravel() for feed in feeds])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def scale_ratios(path: Path, images: Path) -> list[float]:
    """Inferred skip scale / scale calibrated on the photos, per inferred tensor."""
    model = onnx.load(path)
    inferred = {e.tensor: e.scale for e in plan_repairs(read_qdq(model)).edits
                if e.kind == EditKind.INSERT and e.source and e.source.startswith("inferred")}
    if not inferred:
        return []
    measured = fix_model(read_qdq(model), FixConfig(), DataConfig(data_dir=images, preprocess=Preprocess()))
    calibrated = {e.tensor: e.scale for e in measured.plan.edits if e.kind == EditKind.INSERT}
    return [inferred[t] / calibrated[t] for t in sorted(inferred) if calibrated.get(t)]


def measure(path: Path, images: Path, out_dir: Path) -> list[str]:
    fixed_path, again_path, dry_path = (out_dir / f"{path.stem}.{s}.onnx" for s in ("fixed", "again", "dry"))
    model = onnx.load(path)
    result = fix_file(path, fixed_path)
    fix_file(fixed_path, again_path)
    fix_file(path, dry_path, dry_run=True)
    fixed = onnx.load(fixed_path)
    samples = SampleSet(images, model_input_specs(model), Preprocess())
    feeds = list(islice(samples, 8, 16))   # not the first 8 photos (sorted), on which the exports were calibrated
    unfixed_out, fixed_out, fp32_out = (outputs(m, feeds) for m in (model, fixed, strip_qdq(model)))
    ratios = scale_ratios(path, images)
    before, after = counts(model), counts(fixed)
    sources = sorted({str(e.source) for e in result.plan.edits if e.source})
    return [
        f"{path.name}: {len(result.plan.edits)} edits (scale sources: {', '.join(sources) or '-'})",
        "  check before -> after: " + ", ".join(f"{k} {before[k]} -> {after[k]}" for k in before),
        f"  check --fail-on float-add,requant-concat exit: input {gate_exit(path)}, output {gate_exit(fixed_path)}",
        "  inferred / calibrated skip scale: " + (", ".join(f"{r:.3f}" for r in ratios) or "none inferred"),
        f"  cosine on {len(feeds)} photos: fixed vs unfixed {cosine(fixed_out, unfixed_out):.6f}, "
        f"fixed vs FP32 {cosine(fixed_out, fp32_out):.6f}, unfixed vs FP32 {cosine(unfixed_out, fp32_out):.6f}",
        f"  second run byte-identical: {fixed_path.read_bytes() == again_path.read_bytes()}; "
        f"--dry-run wrote nothing: {not dry_path.exists()}",
    ]


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", nargs="*", type=Path)
    parser.add_argument("--images", type=Path, default=ROOT / "calib_data" / "images")
    args = parser.parse_args(argv)
    exports = args.exports or sorted((ROOT / "tests" / "data" / "qat").glob("*.onnx"))
    lines = ["== fix-residuals on real QAT exports"]
    with tempfile.TemporaryDirectory() as tmp:
        for path in exports:
            lines += measure(path, args.images, Path(tmp))
    return lines


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    print("\n".join(main(sys.argv[1:])))
