"""One calibration run in its own process (so peak memory is its own): qdqtool or ONNX Runtime's quantize_static.

    python -m bench.calibrate_once {qdqtool|ort} SAMPLES DATA_DIR OUT_DIR
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import onnx

from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, calibrate_file
from qdqtool.samples.images import PRESETS
from qdqtool.samples.opening import open_samples

MODEL = Path(__file__).resolve().parents[1] / "calib_data" / "models" / "yolov8n_320.onnx"
SIZE = 320
PREPROCESS = dataclasses.replace(PRESETS["yolo"], size=(SIZE, SIZE))


def run_qdqtool(samples: int, data: Path, out: Path) -> None:
    config = CalibrationConfig(method="entropy", max_samples=samples, preprocess=PREPROCESS)
    calibrate_file(MODEL, data, CalibrationOutputs(model=out / "qdqtool.onnx"), config)


def run_onnxruntime(samples: int, data: Path, out: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = onnx.load(MODEL)
    for dim in model.graph.input[0].type.tensor_type.shape.dim:   # ORT's calibrator wants static shapes
        if dim.dim_param:
            dim.dim_value = 1 if dim.dim_param == "batch" else SIZE
    fixed = out / "yolov8n_static.onnx"
    onnx.save(model, fixed)
    sample_set = open_samples(model, data, PREPROCESS, max_samples=samples)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.samples = iter(sample_set)

        def get_next(self):
            return next(self.samples, None)

    quantize_static(str(fixed), str(out / "ort.onnx"), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.Entropy,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


if __name__ == "__main__":
    tool, count, folder, target = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    target.mkdir(parents=True, exist_ok=True)
    (run_qdqtool if tool == "qdqtool" else run_onnxruntime)(count, folder, target)
