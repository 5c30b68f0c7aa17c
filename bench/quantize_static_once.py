"""ONNX Runtime's quantize_static in its own process (so its peak memory is its own), on a folder of .npy feeds.

    python -m bench.quantize_static_once MODEL FEEDS_DIR OUTPUT {MinMax|Entropy}

QDQ format, per-channel weights, symmetric int8 activations and weights: the settings TensorRT wants.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(model: Path, feeds: Path, output: Path, method: str) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from bench.accuracy_models import input_name

    name = input_name(model)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.files = iter(sorted(feeds.glob("*.npy")))

        def get_next(self):
            path = next(self.files, None)
            return None if path is None else {name: np.load(path)}

    quantize_static(str(model), str(output), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method),
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
