"""Bad inputs a new user (or a CI script) gives qdqtool, written into a folder at test time.

Each maker writes one file or folder under `root` and returns its path. tests/cli/test_bad_inputs.py runs every
command on them; tests/test_large_models.py reuses the external-data helpers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import tiny
import tiny_qdq
from onnx import TensorProto, helper, numpy_helper

GOOD_SAMPLE_SHAPE = (1, 4, 8, 8)   # tiny.resnet_block's input


def good_model(root: Path) -> Path:
    path = root / "good.onnx"
    if not path.exists():
        onnx.save(tiny.resnet_block(), path)
    return path


def good_qdq_model(root: Path) -> Path:
    path = root / "good.qdq.onnx"
    if not path.exists():
        onnx.save(tiny_qdq.qat(tiny.resnet_block()), path)
    return path


def good_data(root: Path) -> Path:
    folder = root / "data"
    if not folder.exists():
        folder.mkdir()
        rng = np.random.default_rng(0)
        for index in range(3):
            np.save(folder / f"s{index}.npy", rng.standard_normal(GOOD_SAMPLE_SHAPE).astype(np.float32))
    return folder


def missing(root: Path) -> Path:
    return root / "does-not-exist.onnx"


def directory(root: Path) -> Path:
    folder = root / "folder.onnx"
    folder.mkdir(exist_ok=True)
    return folder


def empty_file(root: Path) -> Path:
    path = root / "empty.onnx"
    path.write_bytes(b"")
    return path


def truncated(root: Path) -> Path:
    data = good_model(root).read_bytes()
    path = root / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def random_bytes(root: Path) -> Path:
    path = root / "random.onnx"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def not_a_model(root: Path) -> Path:
    """A valid protobuf message of another type (a TensorProto) saved as .onnx."""
    path = root / "tensor.onnx"
    path.write_bytes(numpy_helper.from_array(np.ones((3, 3), np.float32), "t").SerializeToString())
    return path


def _save(model: onnx.ModelProto, root: Path, name: str) -> Path:
    path = root / name
    onnx.save(model, path)
    return path


def checker_failure(root: Path) -> Path:
    """A Conv reading a tensor nothing produces: onnx.checker rejects the graph."""
    model = tiny.resnet_block()
    model.graph.node[0].input[0] = "nobody_makes_this"
    return _save(model, root, "unchecked.onnx")


def opset_too_old(root: Path) -> Path:
    """Opset 7 with an op removed since (Upsample, gone in opset 10): onnx's converter lifts it to Resize."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])
    node = helper.make_node("Upsample", ["x"], ["y"], scales=[1.0, 1.0, 2.0, 2.0], name="up")
    return _save(tiny.make_model(helper.make_graph([node], "old", [x], [y]), opset=7), root, "opset7.onnx")


def opset_11(root: Path) -> Path:
    """A convertible old model: opset 11 residual block (calibrate converts it)."""
    model = tiny.resnet_block()
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", 11))
    return _save(model, root, "opset11.onnx")


def with_subgraph(root: Path) -> Path:
    """An If whose branches hold a Conv each."""
    b = tiny.Builder()
    x = b.input("x", [1, 4, 8, 8])
    cond = b.const(np.array(True), "cond")
    weight = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w_branch")

    def branch(name: str) -> onnx.GraphProto:
        conv = helper.make_node("Conv", [x, "w_branch"], [f"{name}_out"], name=f"{name}_conv")
        out = helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, None)
        return helper.make_graph([conv], name, [], [out], [weight])

    b.nodes.append(helper.make_node("If", [cond], ["if_out"], name="if", then_branch=branch("then"),
                                    else_branch=branch("else")))
    return _save(b.model(["if_out"]), root, "subgraph.onnx")


def integer_kernels(root: Path) -> Path:
    """A DynamicQuantizeLinear (ONNX Runtime's dynamic quantization) in front of a Conv."""
    model = tiny.resnet_block()
    first = model.graph.node[0]
    dq = helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"], name="dyn")
    deq = helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["x_deq"], name="deq")
    first.input[0] = "x_deq"
    model.graph.node.insert(0, deq)
    model.graph.node.insert(0, dq)
    return _save(model, root, "integer.onnx")


def nonzero_zero_point(root: Path) -> Path:
    """A Q/DQ model with uint8 activations at zero point 128 on one edge and int8 elsewhere (a mix)."""
    model = onnx.load(good_qdq_model(root))
    for tensor in model.graph.initializer:
        if tensor.data_type == TensorProto.INT8 and not tensor.dims:
            tensor.CopyFrom(numpy_helper.from_array(np.array(128, np.uint8), tensor.name))
            break
    return _save(model, root, "zero-point.onnx")


def dynamic_spatial(root: Path) -> Path:
    """A 3-channel image model whose height and width are symbolic."""
    b = tiny.Builder()
    x = b.input("x", [1, 3, "height", "width"])
    return _save(b.model([b.op("Relu", [b.conv(x, 3, 4, "conv")])]), root, "dynamic.onnx")


def external_data_outside(root: Path) -> Path:
    """A model whose external-data location climbs out of its folder."""
    model = tiny.resnet_block()
    folder = root / "escape"
    folder.mkdir(exist_ok=True)
    onnx.save(model, folder / "m.onnx", save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    model = onnx.load(folder / "m.onnx", load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    path = folder / "escape.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def external_data_missing(root: Path) -> Path:
    folder = root / "nodata"
    folder.mkdir(exist_ok=True)
    onnx.save(tiny.resnet_block(), folder / "m.onnx", save_as_external_data=True, location="m.onnx.data",
              size_threshold=0)
    os.remove(folder / "m.onnx.data")
    return folder / "m.onnx"


def external_data_short(root: Path) -> Path:
    """A model whose external data file ends before its weights do (a copy cut short)."""
    folder = root / "shortdata"
    folder.mkdir(exist_ok=True)
    onnx.save(tiny.resnet_block(), folder / "m.onnx", save_as_external_data=True, location="m.onnx.data",
              size_threshold=0)
    os.truncate(folder / "m.onnx.data", 100)
    return folder / "m.onnx"


# --- data folders (for calibrate and fix-residuals --data) ------------------------------------------------------
def _data_folder(root: Path, name: str, arrays: dict[str, object]) -> Path:
    folder = root / name
    folder.mkdir(exist_ok=True)
    for file_name, value in arrays.items():
        if isinstance(value, bytes):
            (folder / file_name).write_bytes(value)
        else:
            np.save(folder / file_name, value, allow_pickle=True)
    return folder


def data_empty(root: Path) -> Path:
    return _data_folder(root, "data-empty", {})


def data_unreadable(root: Path) -> Path:
    return _data_folder(root, "data-garbage", {"a.npy": b"\x93NUMPY garbage"})


def data_wrong_shape(root: Path) -> Path:
    return _data_folder(root, "data-shape", {"a.npy": np.zeros((1, 3, 8, 8), np.float32)})


def data_wrong_dtype(root: Path) -> Path:
    return _data_folder(root, "data-dtype", {"a.npy": np.array(["a"] * 256).reshape(GOOD_SAMPLE_SHAPE)})


def data_nan(root: Path) -> Path:
    value = np.ones(GOOD_SAMPLE_SHAPE, np.float32)
    value[0, 0, 0, 0] = np.nan
    return _data_folder(root, "data-nan", {"a.npy": value})


def data_inf(root: Path) -> Path:
    value = np.ones(GOOD_SAMPLE_SHAPE, np.float32)
    value[0, 1, 2, 3] = np.inf
    return _data_folder(root, "data-inf", {"a.npy": value})


def data_pickled(root: Path) -> Path:
    return _data_folder(root, "data-pickle", {"a.npy": np.array([{"boom": 1}], dtype=object)})


def data_zeros(root: Path) -> Path:
    return _data_folder(root, "data-zeros", {"a.npy": np.zeros(GOOD_SAMPLE_SHAPE, np.float32),
                                             "b.npy": np.zeros(GOOD_SAMPLE_SHAPE, np.float32)})


def data_images_for_dynamic(root: Path) -> Path:
    from PIL import Image

    folder = root / "images"
    folder.mkdir(exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(folder / "a.png")
    return folder


# --- TensorRT calibration caches (for calibrate --from-cache) ---------------------------------------------------
def good_cache_text(root: Path) -> str:
    """A TensorRT 10.3 cache of good_model: every activation of it at scale 0.01 (3c23d70a)."""
    model = onnx.load(good_model(root))
    names = [i.name for i in model.graph.input] + [o for n in model.graph.node for o in n.output]
    return "TRT-100300-EntropyCalibration2\n" + "".join(f"{name}: 3c23d70a\n" for name in names)


def _cache(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.write_text(text)
    return path


def cache_other_model(root: Path) -> Path:
    """A real-looking cache of another network: YOLO tensor names, none of them good_model's."""
    lines = "".join(f"/model.{i}/conv/Conv_output_0: 3d{i:02x}0a14\n" for i in range(12))
    return _cache(root, "other-model.cache", "TRT-8501-EntropyCalibration2\nimages: 3c010a14\n" + lines)


def cache_empty(root: Path) -> Path:
    return _cache(root, "empty.cache", "")


def cache_header_only(root: Path) -> Path:
    return _cache(root, "header-only.cache", "TRT-8601-EntropyCalibration2\n")


def cache_truncated(root: Path) -> Path:
    """good_cache_text cut inside its last kept line (a copy that stopped early)."""
    text = good_cache_text(root)
    return _cache(root, "truncated.cache", text[: text.rindex(": 3c23d70a", 0, len(text) // 2) + 5])


def cache_unknown_header(root: Path) -> Path:
    return _cache(root, "unknown-header.cache", good_cache_text(root).replace("EntropyCalibration2", "Percentile99", 1))


def cache_no_header(root: Path) -> Path:
    return _cache(root, "no-header.cache", good_cache_text(root).split("\n", 1)[1])


def cache_non_hex(root: Path) -> Path:
    text = good_cache_text(root)
    return _cache(root, "non-hex.cache", text.replace("3c23d70a", "0.007874", 1))


def cache_missing_tensors(root: Path) -> Path:
    """good_model's cache without the Relu outputs the placement quantizes."""
    kept = [line for line in good_cache_text(root).splitlines() if "relu" not in line]
    return _cache(root, "missing.cache", "\n".join(kept) + "\n")
