"""Calibration data: folder validation, image pixel math, tensors, batching, laziness, augmentation, CLI options."""

from __future__ import annotations

import dataclasses
import re
import shutil
import tracemalloc
import weakref
from pathlib import Path

import click
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper
from PIL import Image
from qdqtool.cli.data_options import data_options

from qdqtool.errors import DataError, OutputError
from qdqtool.samples.images import PRESETS, Preprocess, letterbox_placement, write_augmented_crops
from qdqtool.samples.sets import InputSpec, SampleSet, model_input_specs

F32 = np.dtype(np.float32)
RAW = Preprocess()


def image_spec(height=8, width=8, channels=3, batch=1, dtype=F32, layout="NCHW", name="x") -> InputSpec:
    shape = (batch, channels, height, width) if layout == "NCHW" else (batch, height, width, channels)
    return InputSpec(name, shape, np.dtype(dtype))


def solid(path: Path, color, size=(6, 4), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def only(sample: dict) -> np.ndarray:
    (array,) = sample.values()
    return array


# --- model inputs ------------------------------------------------------------------------------------------------
def test_model_input_specs_skips_initializers_and_marks_dynamic_dims():
    weight = helper.make_tensor("w", TensorProto.FLOAT16, [1], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 3, 8, 8]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 4]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT16, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)], initializer=[weight])
    specs = model_input_specs(helper.make_model(graph))
    assert specs == [InputSpec("x", (None, 3, 8, 8), np.dtype(np.float16)),
                     InputSpec("ids", (1, 4), np.dtype(np.int64))]


# --- image pixel math --------------------------------------------------------------------------------------------
def test_stretch_puts_a_band_where_it_belongs(tmp_path):
    pixels = np.zeros((30, 10, 3), np.uint8)
    pixels[:10] = (0, 255, 0)  # top third green
    pixels[10:] = (0, 0, 255)  # rest blue
    Image.fromarray(pixels).save(tmp_path / "band.png")
    array = only(next(iter(SampleSet(tmp_path, [image_spec(12, 12)], RAW))))
    assert array.shape == (1, 3, 12, 12) and array.dtype == np.float32
    green_rows, blue_rows = array[0, :, :3], array[0, :, 5:]  # 10/30 of 12 rows = 4; skip the blended rows
    assert np.all(green_rows[1] == 1.0) and np.all(green_rows[[0, 2]] == 0.0)
    assert np.all(blue_rows[2] == 1.0) and np.all(blue_rows[[0, 1]] == 0.0)


def test_letterbox_keeps_aspect_and_pads_centrally(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    preprocess = Preprocess(resize="letterbox", pad_value=114.0)
    array = only(next(iter(SampleSet(tmp_path, [image_spec(32, 32)], preprocess))))[0]
    top = (32 - 20 * 32 // 40) // 2  # scaled to 32x16, centred vertically
    pad = np.float32(114.0) * np.float32(1 / 255.0)
    assert np.all(array[:, :top] == pad) and np.all(array[:, 32 - top:] == pad)
    content = array[:, top:32 - top]
    assert np.all(content[:, :, :14] == np.array([1, 0, 0], np.float32)[:, None, None])
    assert np.all(content[:, :, 18:] == np.array([0, 0, 1], np.float32)[:, None, None])


def test_letterbox_placement_odd_padding_goes_right_and_bottom():
    place = letterbox_placement(source_width=10, source_height=7, height=8, width=9)
    assert (place.width, place.height) == (9, round(7 * 0.9))
    assert place.left == 0 and place.top == (8 - place.height) // 2
    assert 8 - place.height - place.top >= place.top


def test_mean_std_bgr_and_nhwc(tmp_path):
    rgb = (200, 100, 50)
    solid(tmp_path / "a.png", rgb)
    preprocess = dataclasses.replace(PRESETS["imagenet"], channel_order="BGR", layout="NHWC")
    array = only(next(iter(SampleSet(tmp_path, [image_spec(4, 4, layout="NHWC")], preprocess))))
    assert array.shape == (1, 4, 4, 3)
    bgr = np.array(rgb[::-1], np.float64)
    expected = (bgr / 255.0 - np.array(preprocess.mean)) / np.array(preprocess.std)
    np.testing.assert_allclose(array[0, 2, 3], expected, rtol=1e-5)
    assert np.all(array == array[0, 0, 0])


def test_rgba_palette_and_gray_inputs_become_rgb(tmp_path):
    solid(tmp_path / "1_rgba.png", (10, 20, 30, 0), mode="RGBA")
    palette = Image.new("P", (5, 5), 1)
    palette.putpalette([0, 0, 0, 40, 50, 60] + [0] * 762)
    palette.save(tmp_path / "2_palette.png")
    solid(tmp_path / "3_gray.png", 77, mode="L")
    samples = [only(s)[0, :, 0, 0] * 255 for s in SampleSet(tmp_path, [image_spec(3, 3)], RAW)]
    np.testing.assert_allclose(samples, [[10, 20, 30], [40, 50, 60], [77, 77, 77]], atol=1e-3)


def test_one_channel_model_gets_gray(tmp_path):
    rgb = (200, 100, 50)
    solid(tmp_path / "a.jpg", rgb)
    array = only(next(iter(SampleSet(tmp_path, [image_spec(5, 7, channels=1)], Preprocess(scale=1.0)))))
    assert array.shape == (1, 1, 5, 7)
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    assert np.all(np.abs(array - luma) <= 2.5)  # JPEG + integer luma rounding
    with pytest.raises(DataError, match="1 channel"):
        SampleSet(tmp_path, [image_spec(5, 7, channels=1)], PRESETS["imagenet"])


def test_output_dtype_follows_the_model(tmp_path):
    solid(tmp_path / "a.png", (255, 128, 0))
    assert only(next(iter(SampleSet(tmp_path, [image_spec(dtype=np.float16)], RAW)))).dtype == np.float16
    raw_bytes = only(next(iter(SampleSet(tmp_path, [image_spec(dtype=np.uint8)], Preprocess(scale=1.0)))))
    assert raw_bytes.dtype == np.uint8 and raw_bytes[0, :, 0, 0].tolist() == [255, 128, 0]
    with pytest.raises(DataError, match="pixel scale 1") as raised:
        SampleSet(tmp_path, [image_spec(dtype=np.uint8)], RAW)
    assert raised.value.settings == ("scale", "mean", "std")


def test_dynamic_height_width_needs_size(tmp_path):
    solid(tmp_path / "a.png", (1, 2, 3))
    spec = InputSpec("images", (None, 3, None, None), F32)
    with pytest.raises(DataError, match="the model's input 'images' has dynamic height/width; give an image size HxW"
                       ) as raised:
        SampleSet(tmp_path, [spec], RAW)
    assert raised.value.settings == ("size",)
    assert only(next(iter(SampleSet(tmp_path, [spec], Preprocess(size=(16, 24)))))).shape == (1, 3, 16, 24)
    with pytest.raises(DataError, match="does not match"):
        SampleSet(tmp_path, [image_spec(8, 8)], Preprocess(size=(16, 16)))


def test_image_model_shape_refusals(tmp_path):
    solid(tmp_path / "a.png", (1, 2, 3))
    with pytest.raises(DataError, match="use the NHWC layout") as raised:
        SampleSet(tmp_path, [image_spec(8, 8, layout="NHWC")], RAW)
    assert raised.value.settings == ("layout",)
    with pytest.raises(DataError, match="not a 4-D image"):
        SampleSet(tmp_path, [InputSpec("x", (1, 3, 8), F32)], RAW)
    with pytest.raises(DataError, match="single-input"):
        SampleSet(tmp_path, [image_spec(name="a"), image_spec(name="b")], RAW)


def test_preprocess_rejects_bad_values():
    for bad in ({"resize": "crop"}, {"std": (0.0, 1.0, 1.0)}, {"mean": (1.0, 2.0)}, {"pad_value": 300.0},
                {"layout": "CHW"}, {"size": (0, 5)}, {"scale": -1.0}):
        with pytest.raises(DataError):
            Preprocess(**bad)


def test_presets():
    assert {"yolo", "imagenet", "paddle", "raw"} <= set(PRESETS)
    assert PRESETS["yolo"].resize == "letterbox" and PRESETS["yolo"].pad_value == 114.0
    assert PRESETS["paddle"].channel_order == "BGR" and PRESETS["paddle"].mean == PRESETS["imagenet"].mean


# --- tensors -----------------------------------------------------------------------------------------------------
def test_npy_adds_batch_dim_and_casts(tmp_path):
    tensor = np.random.default_rng(0).normal(size=(3, 4, 4))
    np.save(tmp_path / "s.npy", tensor)
    array = only(next(iter(SampleSet(tmp_path, [InputSpec("x", (1, 3, 4, 4), F32)]))))
    assert array.shape == (1, 3, 4, 4) and array.dtype == np.float32
    np.testing.assert_allclose(array[0], tensor, rtol=1e-6)
    with pytest.raises(DataError, match=r"expects shape \?x3x5x4, got 1x3x4x4"):
        SampleSet(tmp_path, [InputSpec("x", (None, 3, 5, 4), F32)])
    with pytest.raises(DataError, match=r"\.npz"):
        SampleSet(tmp_path, [InputSpec("x", (1, 3, 4, 4), F32), InputSpec("y", (1,), F32)])


def make_npz_folder(folder: Path, count: int) -> list:
    folder.mkdir()
    samples = []
    for index in range(count):
        sample = {"a": np.full((1, 2), index, np.float64), "b": np.arange(3, dtype=np.int32)[None] + index}
        np.savez(folder / f"s{index:02d}.npz", **sample)
        samples.append(sample)
    return samples


def test_npz_multi_input_and_batches(tmp_path):
    saved = make_npz_folder(tmp_path / "d", 5)
    specs = [InputSpec("a", (None, 2), F32), InputSpec("b", (None, 3), np.dtype(np.int64))]
    data = SampleSet(tmp_path / "d", specs)
    loaded = list(data)
    assert len(data) == 5 and all(s["a"].dtype == np.float32 and s["b"].dtype == np.int64 for s in loaded)
    batches = list(data.batches(2))
    assert [b["a"].shape[0] for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([b["b"] for b in batches]), np.concatenate([s["b"] for s in saved]))
    fixed = [InputSpec("a", (1, 2), F32), InputSpec("b", (1, 3), np.dtype(np.int64))]
    assert [b["a"].shape for b in SampleSet(tmp_path / "d", fixed).batches(4)] == [(1, 2)] * 5
    with pytest.raises(DataError, match=r"lacks input.*c.*expected keys: a, b, c"):
        SampleSet(tmp_path / "d", [*specs, InputSpec("c", (1,), F32)])


def test_image_batches_concatenate_when_batch_is_dynamic(tmp_path):
    for index in range(5):
        solid(tmp_path / f"{index}.png", (index * 40, 0, 0))
    data = SampleSet(tmp_path, [image_spec(batch=None)], RAW)
    batches = list(data.batches(2))
    assert [only(b).shape[0] for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([only(b) for b in batches]), np.concatenate([only(s) for s in data]))


# --- refusals ----------------------------------------------------------------------------------------------------
def test_folder_refusals(tmp_path):
    spec = [image_spec()]
    with pytest.raises(DataError, match="does not exist"):
        SampleSet(tmp_path / "missing", spec)
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DataError, match="not a folder"):
        SampleSet(tmp_path / "file.png", spec)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is empty"):
        SampleSet(tmp_path / "empty", spec)
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"no usable files.*\.txt"):
        SampleSet(tmp_path / "text", spec)
    solid(tmp_path / "mixed" / "a.png", (0, 0, 0))
    np.save(tmp_path / "mixed" / "b.npy", np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(DataError, match="mixes 1 images and 1 tensor"):
        SampleSet(tmp_path / "mixed", spec)
    with pytest.raises(DataError, match="at least 1"):
        SampleSet(tmp_path / "mixed", spec, max_samples=0)


def test_corrupt_image_is_named_at_construction_or_when_loaded(tmp_path):
    solid(tmp_path / "a.png", (0, 0, 0))
    good = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(good[: len(good) // 2])  # truncated
    (tmp_path / "c.jpg").write_bytes(b"not a jpeg at all")
    data = SampleSet(tmp_path, [image_spec()], RAW, max_samples=2)  # first file is fine
    with pytest.raises(DataError, match=re.escape("b.png")):
        list(data)
    (tmp_path / "a.png").unlink()
    with pytest.raises(DataError, match=re.escape("cannot read image b.png")):
        SampleSet(tmp_path, [image_spec()], RAW)
    (tmp_path / "b.png").unlink()
    with pytest.raises(DataError, match=re.escape("cannot read image c.jpg")):
        SampleSet(tmp_path, [image_spec()], RAW)


def test_nan_and_inf_are_refused_in_every_sample(tmp_path):
    spec = [InputSpec("x", (1, 4), F32)]
    np.save(tmp_path / "a.npy", np.zeros((1, 4)))
    np.save(tmp_path / "b.npy", np.array([[0, np.inf, 0, 0]]))
    with pytest.raises(DataError, match=re.escape("b.npy has NaN or Inf")):
        list(SampleSet(tmp_path, spec))
    np.save(tmp_path / "a.npy", np.array([[np.nan, 0, 0, 0]]))
    with pytest.raises(DataError, match=re.escape("a.npy has NaN or Inf")):
        SampleSet(tmp_path, spec)
    np.save(tmp_path / "a.npy", np.array([[1e300, 0, 0, 0]]))  # finite in float64, Inf once cast to float32
    with pytest.raises(DataError, match=re.escape("a.npy has NaN or Inf")):
        SampleSet(tmp_path, spec)


def test_pickled_object_arrays_are_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=re.escape("cannot read tensor file a.npy")):
        SampleSet(tmp_path, [InputSpec("x", (1,), F32)])


# --- order, laziness ---------------------------------------------------------------------------------------------
def test_sorted_order_max_samples_and_subfolders_ignored(tmp_path):
    for name, red in (("b.png", 20), ("c.bmp", 30), ("a.PNG", 10)):
        solid(tmp_path / name, (red, 0, 0))
    solid(tmp_path / "sub" / "0.png", (99, 0, 0))
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    data = SampleSet(tmp_path, [image_spec()], Preprocess(scale=1.0))
    assert [p.name for p in data.files] == ["a.PNG", "b.png", "c.bmp"]
    assert [float(only(s)[0, 0, 0, 0]) for s in data] == [10.0, 20.0, 30.0]
    assert [p.name for p in SampleSet(tmp_path, [image_spec()], RAW, max_samples=2).files] == ["a.PNG", "b.png"]


def test_iterating_200_samples_does_not_keep_them(tmp_path):
    first = solid(tmp_path / "000.png", (1, 2, 3), size=(64, 64))
    for index in range(1, 200):
        shutil.copyfile(first, tmp_path / f"{index:03d}.png")
    data = SampleSet(tmp_path, [image_spec(64, 64)], RAW)
    sample_bytes = 3 * 64 * 64 * 4
    alive = []
    tracemalloc.start()
    try:
        for sample in data:
            alive.append(weakref.ref(only(sample)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(alive) == 200
    assert sum(ref() is not None for ref in alive) <= 1
    assert peak < 20 * sample_bytes  # holding every sample would need 200x


# --- augmentation ------------------------------------------------------------------------------------------------
def test_write_augmented_crops_is_deterministic_and_bounded(tmp_path):
    src = tmp_path / "photos"
    rng = np.random.default_rng(3)
    src.mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), np.uint8)).save(src / "a.png")
    Image.fromarray(rng.integers(0, 255, (50, 30), np.uint8)).save(src / "b.png")
    solid(src / "c.png", (9, 9, 9, 9), size=(20, 20), mode="RGBA")
    sizes = {"a.png": (60, 40), "b.png": (30, 50), "c.png": (20, 20)}
    first = write_augmented_crops(src, tmp_path / "one", count=7, seed=1)
    again = write_augmented_crops(src, tmp_path / "two", count=7, seed=1)
    other = write_augmented_crops(src, tmp_path / "three", count=7, seed=2)
    assert [p.name for p in first] == [f"crop_{i:05d}__{'abc'[i % 3]}.png" for i in range(7)]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in other]
    for index, path in enumerate(first):
        with Image.open(path) as crop:
            source_w, source_h = sizes["abc"[index % 3] + ".png"]
            assert crop.mode == "RGB"
            assert 0.3 * source_w - 1 <= crop.width <= source_w and 0.3 * source_h - 1 <= crop.height <= source_h
    crops = SampleSet(tmp_path / "one", [image_spec(16, 16)], RAW)
    assert len(crops) == 7 and crops.sources() == ["abc"[i % 3] for i in range(7)]
    with pytest.raises(OutputError):
        write_augmented_crops(src, src, count=2)


# --- real photos -------------------------------------------------------------------------------------------------
def test_real_photos_with_yolo_preset(images_dir):
    spec = InputSpec("images", (None, 3, None, None), F32)
    data = SampleSet(images_dir, [spec], dataclasses.replace(PRESETS["yolo"], size=(320, 320)))
    assert len(data) == len([p for p in images_dir.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"}])
    for sample in data:
        array = only(sample)
        assert array.shape == (1, 3, 320, 320) and array.dtype == np.float32
        assert array.min() >= 0.0 and array.max() <= 1.0 and array.std() > 0


# --- CLI option group --------------------------------------------------------------------------------------------
def run_options(*args: str):
    seen = {}

    @click.command()
    @data_options
    def command(data, **kwargs):
        seen["options"] = data
        seen["rest"] = kwargs

    result = CliRunner().invoke(command, list(args))
    return result, seen.get("options"), seen.get("rest")


def test_cli_options_override_the_preset(tmp_path):
    result, options, rest = run_options("--data", str(tmp_path), "--max-samples", "3", "--preset", "imagenet",
                                        "--size", "640", "--resize", "letterbox", "--scale", "1/127.5", "--bgr",
                                        "--layout", "nhwc", "--std", "0.5")
    assert result.exit_code == 0, result.output
    assert rest == {} and options.folder == tmp_path and options.max_samples == 3
    expected = dataclasses.replace(PRESETS["imagenet"], size=(640, 640), resize="letterbox", scale=1 / 127.5,
                                   channel_order="BGR", layout="NHWC", std=(0.5,))
    assert options.preprocess == expected
    result, options, _ = run_options("--size", "480x640", "--mean", "1,2,3", "--rgb", "--preset", "paddle")
    assert options.preprocess.size == (480, 640) and options.preprocess.mean == (1.0, 2.0, 3.0)
    assert options.preprocess.channel_order == "RGB"
    _, defaults, _ = run_options()
    assert defaults.folder is None and defaults.preprocess == Preprocess()


@pytest.mark.parametrize("args, message", [
    (["--size", "0x5"], "positive"), (["--size", "big"], "HxW"), (["--scale", "1/0"], "not a number"),
    (["--scale", "-2"], "positive"), (["--mean", "1,2"], "give 1 or 3"), (["--std", "a,b,c"], "numbers"),
    (["--std", "0"], "non-zero"), (["--pad-value", "300"], "300"), (["--preset", "vgg"], "vgg"),
])
def test_cli_bad_values_are_bad_parameters(args, message):
    result, _, _ = run_options(*args)
    assert result.exit_code == 2 and message in result.output


def test_yolo_model_file_specs(models_dir):
    specs = model_input_specs(onnx.load(str(models_dir / "yolov8n_320.onnx"), load_external_data=False))
    assert len(specs) == 1 and specs[0].shape[1] == 3 and specs[0].dtype == np.float32


def test_skipped_files_are_said_by_default(tmp_path, caplog):
    """A file that is neither an image nor a tensor is skipped with a warning naming it (not only at INFO)."""
    np.save(tmp_path / "a.npy", np.zeros((1, 3, 8, 8), np.float32))
    (tmp_path / "notes.txt").write_text("not a sample")
    with caplog.at_level("WARNING", logger="qdqtool"):
        samples = SampleSet(tmp_path, [InputSpec("x", (1, 3, 8, 8), np.dtype(np.float32))])
    assert len(samples) == 1
    assert any(r.levelname == "WARNING" and "skipping 1 file(s)" in r.message and "notes.txt" in r.message
               for r in caplog.records)
