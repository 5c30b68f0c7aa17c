"""`fix-residuals --scope residuals` vs `--scope all` on ONNX Runtime's quantize_static output of the real models.

quantize_static (QDQ, per-channel, symmetric, MinMax) calibrates on a few photos; both scopes repair its output;
`check`'s counts and the accuracy against FP32 on held-out images (YOLOv8n: detection F1 on the odd-numbered photos;
PP-OCRv4 det: text-mask IoU on page.png) are printed for the input and both outputs, with what --scope all removed
by kind and whether a second --scope all run is byte-identical.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from qdqtool.accuracy.tasks import detection_agreement, mask_iou
from qdqtool.check.predict import check_model
from qdqtool.onnxgraph.prepare import constants_to_initializers, upgrade_opset
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.repair.pipeline import DataConfig, fix_file
from qdqtool.repair.plan import FixConfig
from qdqtool.runner import create_session
from qdqtool.samples.images import PRESETS, write_augmented_crops
from qdqtool.samples.sets import SampleSet, model_input_specs
from qdqtool.trt.rules import MIN_QDQ_OPSET

ROOT = Path(__file__).resolve().parents[1]
MODELS, IMAGES = ROOT / "calib_data" / "models", ROOT / "calib_data" / "images"
CALIBRATION_IMAGES = 4
GATES = ("float-add", "requant-concat", "reformat")


class _Reader:
    def __init__(self, samples):
        self.samples = iter(samples)

    def get_next(self):
        return next(self.samples, None)


def ort_quantize(model_path: Path, samples, folder: Path) -> Path:
    """quantize_static in QDQ format: per-channel symmetric int8 weights, symmetric int8 activations, MinMax."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(model_path))
    constants_to_initializers(model.graph)
    src, dst = folder / f"{model_path.stem}.float.onnx", folder / f"{model_path.stem}.ort.onnx"
    onnx.save(model, str(src))
    quantize_static(str(src), str(dst), _Reader(samples), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return dst


def first_outputs(model_path: Path, samples) -> list[np.ndarray]:
    session = create_session(model_path, providers=["CPUExecutionProvider"])
    return [session.run(None, feed)[0] for feed in samples]


def yolo_f1(reference: list[np.ndarray], candidate: list[np.ndarray]) -> float:
    return float(np.mean([detection_agreement(r[0], c[0])[0] for r, c in zip(reference, candidate)]))


def text_iou(reference: list[np.ndarray], candidate: list[np.ndarray]) -> float:
    return float(np.mean([mask_iou(r > 0.3, c > 0.3) for r, c in zip(reference, candidate)]))


def folders(root: Path) -> dict[str, Path]:
    """Calibration photos (the first even-numbered ones), held-out photos (odd-numbered), text crops, page.png."""
    names = sorted(p.name for p in IMAGES.iterdir())
    made = {key: root / key for key in ("calib", "eval", "text", "text_crops", "page")}
    for folder in made.values():
        folder.mkdir()
    for index, name in enumerate(names):
        if index % 2 == 0 and index // 2 < CALIBRATION_IMAGES:
            shutil.copy(IMAGES / name, made["calib"] / name)
        elif index % 2 == 1:
            shutil.copy(IMAGES / name, made["eval"] / name)
    shutil.copy(IMAGES / "text.png", made["text"] / "text.png")
    write_augmented_crops(made["text"], made["text_crops"], CALIBRATION_IMAGES - 1, seed=1)
    shutil.copy(IMAGES / "text.png", made["text_crops"] / "text.png")
    shutil.copy(IMAGES / "page.png", made["page"] / "page.png")
    return made


CASES = (  # model, preprocess, calibration folder, evaluation folder, measure name, measure
    ("yolov8n_320.onnx", dataclasses.replace(PRESETS["yolo"], size=(320, 320)), "calib", "eval", "detection F1",
     yolo_f1),
    ("ppocrv4_det.onnx", dataclasses.replace(PRESETS["rapidocr"], size=(640, 640)), "text_crops", "page",
     "text-mask IoU", text_iou),
)


def counts(path: Path) -> str:
    found = check_model(read_qdq(onnx.load(str(path)))).counts()
    return ", ".join(f"{gate} {found[gate]}" for gate in GATES)


def bench_case(name, preprocess, calib, held_out, measure_name, measure, work: Path) -> list[str]:
    model_path = MODELS / name
    specs = model_input_specs(onnx.load(str(model_path)))
    start = time.perf_counter()
    ort = ort_quantize(model_path, SampleSet(calib, specs, preprocess), work)
    lines = [f"{name}: quantize_static on {CALIBRATION_IMAGES} images in {time.perf_counter() - start:.1f} s"]
    data = DataConfig(data_dir=calib, preprocess=preprocess)
    evaluation = list(SampleSet(held_out, specs, preprocess))
    reference = first_outputs(model_path, evaluation)
    runnable = work / f"{model_path.stem}.ort13.onnx"      # ONNX Runtime runs per-channel DQ from opset 13 only
    onnx.save(upgrade_opset(onnx.load(str(ort)), MIN_QDQ_OPSET), str(runnable))
    paths = {"input": runnable}
    for scope in ("residuals", "all"):
        paths[scope] = work / f"{model_path.stem}.{scope}.onnx"
        start = time.perf_counter()
        result = fix_file(ort, paths[scope], FixConfig(scope=scope), data)
        seconds = time.perf_counter() - start
        if scope == "all":
            removed = ", ".join(f"{cause} {n}" for cause, n in result.plan.causes("remove").items())
            lines.append(f"  --scope all ({seconds:.1f} s): {result.plan.kinds()}; removed by kind: {removed}")
    for label, path in paths.items():
        score = measure(reference, first_outputs(path, evaluation))
        lines.append(f"  {label:<9} check: {counts(path)}; {measure_name} vs FP32 {score:.3f}")
    again = work / f"{model_path.stem}.all.again.onnx"
    fix_file(paths["all"], again, FixConfig(scope="all"), data)
    lines.append(f"  second --scope all run byte-identical: {again.read_bytes() == paths['all'].read_bytes()}")
    return lines


def main() -> list[str]:
    lines = ["fix-residuals --scope residuals vs all on quantize_static output (accuracy vs FP32, held-out images)"]
    with tempfile.TemporaryDirectory() as folder:
        made = folders(Path(folder))
        for name, preprocess, calib, held_out, measure_name, measure in CASES:
            if not (MODELS / name).is_file():
                lines.append(f"  {name}: skipped (model not fetched)")
                continue
            lines += bench_case(name, preprocess, made[calib], made[held_out], measure_name, measure, Path(folder))
    return lines


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)   # ONNX Runtime's quantizer logs advice on the root logger
    print("\n".join(main()))
