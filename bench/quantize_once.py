"""One quantization in its own process (so its peak memory is its own), every tool on the same .npy samples.

    python -m bench.quantize_once TOOL MODEL CALIB_DIR OUT
    TOOL: qdqtool:<method> | ort:minmax | ort:entropy | ortfix:minmax | ortfix:entropy | modelopt:max | modelopt:entropy
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx

PEERS = (Path("/work/venvs/peers"), Path(__file__).resolve().parents[1] / ".venv-peers")


def peer_python() -> Path | None:
    """The ModelOpt venv's python (the shared one, or the repo-relative one `make bench-peers` creates)."""
    for root in PEERS:
        if (root / "bin" / "python").exists():
            return root / "bin" / "python"
    return None


def samples(calib: Path) -> list[dict[str, np.ndarray]]:
    files = sorted(calib.glob("*.npy"))
    return [np.load(f) for f in files]


def static_copy(model_path: Path, shape, out: Path) -> Path:
    """The model with its first input pinned to the samples' shape (ORT's and ModelOpt's calibrators want it)."""
    model = onnx.load(str(model_path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, size in zip(dims, shape):
        dim.ClearField("dim_param")
        dim.dim_value = int(size)
    fixed = out.with_name(out.stem + ".static.onnx")
    onnx.save(model, str(fixed))
    return fixed


def run_qdqtool(method: str, model: Path, calib: Path, out: Path) -> None:
    from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, calibrate_file
    calibrate_file(model, calib, CalibrationOutputs(model=out), CalibrationConfig(method=method))


def run_ort(method: str, model: Path, calib: Path, out: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    arrays = samples(calib)
    name = onnx.load(str(model), load_external_data=False).graph.input[0].name
    fixed = static_copy(model, arrays[0].shape, out)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(arrays)

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {name: item}

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy}
    quantize_static(str(fixed), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=methods[method],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


def run_ort_fixed(method: str, model: Path, calib: Path, out: Path) -> None:
    from qdqtool.repair.pipeline import DataConfig, fix_file
    raw = out.with_name(out.stem + ".ort.onnx")
    run_ort(method, model, calib, raw)
    fix_file(raw, out, data=DataConfig(data_dir=calib))


def run_modelopt(method: str, model: Path, calib: Path, out: Path) -> None:
    python = peer_python()
    if python is None:
        raise SystemExit("no ModelOpt venv")
    arrays = samples(calib)
    stacked = out.with_name(out.stem + ".calib.npy")
    np.save(stacked, np.concatenate(arrays))
    fixed = static_copy(model, arrays[0].shape, out)
    subprocess.run([str(python), "-m", "modelopt.onnx.quantization", "--onnx_path", str(fixed), "--quantize_mode",
                    "int8", "--calibration_method", method, "--calibration_data_path", str(stacked),
                    "--calibration_eps", "cpu", "--output_path", str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


RUNNERS = {"qdqtool": run_qdqtool, "ort": run_ort, "ortfix": run_ort_fixed, "modelopt": run_modelopt}

if __name__ == "__main__":
    tool, model_path, calib_dir, target = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    kind, _, variant = tool.partition(":")
    target.parent.mkdir(parents=True, exist_ok=True)
    RUNNERS[kind](variant, model_path, calib_dir, target)
