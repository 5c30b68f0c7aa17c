"""Calibration samples from a folder: images (preprocessed) or .npy/.npz tensors, validated and loaded lazily."""

from __future__ import annotations

import logging
import os
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from qdqtool.errors import DataError, ModelError
from qdqtool.onnxgraph.shapes import format_shape
from qdqtool.samples.images import IMAGE_SUFFIXES, Preprocess, decode_image, image_to_array

logger = logging.getLogger("qdqtool")

TENSOR_SUFFIXES = frozenset({".npy", ".npz"})
DEFAULT_PREPROCESS = Preprocess()
CHANNEL_AXES = {"NCHW": (1, 2, 3), "NHWC": (3, 1, 2)}  # layout -> (channel, height, width) axis
Sample = dict[str, np.ndarray]
SOURCE_MARK = "__"   # NAME__SOURCE.ext: a sample cut from image SOURCE (write_augmented_crops names crops so)


def source_of(path: Path) -> str:
    """The image a sample file comes from: SOURCE of NAME__SOURCE.ext, else the file's own stem. Crops and flips of
    one photo share it, so that choices checked on samples they took no part in (auto's folds) keep them together."""
    stem = Path(path).stem
    return stem.rsplit(SOURCE_MARK, 1)[1] if SOURCE_MARK in stem else stem


@dataclass(frozen=True)
class InputSpec:
    """One graph input of the model (initializers excluded)."""

    name: str
    shape: tuple[int | None, ...]  # None for dynamic/symbolic dims
    dtype: np.dtype


def model_input_specs(model: onnx.ModelProto) -> list[InputSpec]:
    """The model's real inputs in graph order, with their shape (None = dynamic) and numpy dtype."""
    initializers = {t.name for t in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type if value.type.HasField("tensor_type") else None
        if tensor_type is None or tensor_type.elem_type == onnx.TensorProto.UNDEFINED:
            raise ModelError(f"model input '{value.name}' is not a typed tensor; "
                             "re-export the model with tensor inputs")
        if not tensor_type.HasField("shape"):
            raise ModelError(f"model input '{value.name}' has no shape (unknown rank); re-export it with a fixed rank")
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                      for d in tensor_type.shape.dim)
        specs.append(InputSpec(value.name, shape, np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))))
    return specs


def random_feed(model: onnx.ModelProto, rng: np.random.Generator, batch: int = 1,
                dynamic_dim: int | None = None) -> dict[str, np.ndarray]:
    """Random values for every model input: standard normal floats, integers in [0, 10) otherwise.

    A dynamic first dimension becomes `batch`; any other dynamic dimension `dynamic_dim` (default: `batch` too).
    """
    feed = {}
    for spec in model_input_specs(model):
        shape = [d if d is not None else (batch if i == 0 or dynamic_dim is None else dynamic_dim)
                 for i, d in enumerate(spec.shape)]
        values = rng.standard_normal(shape) if spec.dtype.kind == "f" else rng.integers(0, 10, shape)
        feed[spec.name] = values.astype(spec.dtype)
    return feed


def _shape_matches(actual: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(actual) == len(expected) and all(e is None or a == e for a, e in zip(actual, expected))


def _check_finite(array: np.ndarray, label: str, name: str) -> None:
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        raise DataError(f"sample {label} has NaN or Inf values for input '{name}'; fix or remove it")


def _usable_files(folder: Path) -> tuple[str, list[Path]]:
    """('images' | 'tensors', files sorted by name) after checking the folder."""
    if not folder.exists():
        raise DataError(f"data folder {folder} does not exist; give a folder of images or .npy/.npz files",
                        settings=("data",))
    if not folder.is_dir():
        raise DataError(f"data path {folder} is not a folder; give a folder of images or .npy/.npz files",
                        settings=("data",))
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name)
    if not files:
        raise DataError(f"data folder {folder} is empty; add images or .npy/.npz files")
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    tensors = [p for p in files if p.suffix.lower() in TENSOR_SUFFIXES]
    if images and tensors:
        raise DataError(f"data folder {folder} mixes {len(images)} images and {len(tensors)} tensor files; "
                        "keep one kind per folder")
    if not images and not tensors:
        suffix_counts = Counter(p.suffix.lower() for p in files)
        found = ", ".join(f"{suffix or '(none)'} x{n}" for suffix, n in suffix_counts.items())
        raise DataError(f"data folder {folder} has no usable files (found {found}); expected images "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))}) or .npy/.npz tensors")
    kept = set(images or tensors)
    skipped = [p.name for p in files if p not in kept]
    if skipped:  # said by default: a sample the user meant to give may be among them
        shown = ", ".join(skipped[:5]) + (f", ... (+{len(skipped) - 5})" if len(skipped) > 5 else "")
        logger.warning("skipping %d file(s) in %s that are neither images nor tensors: %s", len(skipped), folder,
                       shown)
    return ("images", images) if images else ("tensors", tensors)


def _image_geometry(spec: InputSpec, preprocess: Preprocess) -> tuple[tuple[int, int], int]:
    """((height, width), channels) an image must become for this input, or a DataError saying why it cannot."""
    if len(spec.shape) != 4:
        raise DataError(f"the model's input '{spec.name}' has shape {format_shape(spec.shape)}, not a 4-D image; "
                        "feed .npy/.npz tensors instead")
    channel_axis, height_axis, width_axis = CHANNEL_AXES[preprocess.layout]
    channels = spec.shape[channel_axis] or 3
    if channels not in (1, 3):
        other = "NHWC" if preprocess.layout == "NCHW" else "NCHW"
        fits_other = spec.shape[CHANNEL_AXES[other][0]] in (1, 3)
        hint = f"use the {other} layout" if fits_other else "feed .npy/.npz tensors"
        raise DataError(f"the model's input '{spec.name}' {format_shape(spec.shape)} has {channels} channels in "
                        f"{preprocess.layout} layout, images give 1 or 3; {hint}",
                        settings=("layout",) if fits_other else ("data",))
    height, width = spec.shape[height_axis], spec.shape[width_axis]
    if preprocess.size is None:
        if height is None or width is None:
            raise DataError(f"the model's input '{spec.name}' has dynamic height/width; give an image size HxW",
                            settings=("size",))
        return (height, width), channels
    wanted_h, wanted_w = preprocess.size
    if (height is not None and height != wanted_h) or (width is not None and width != wanted_w):
        raise DataError(f"image size {wanted_h}x{wanted_w} does not match the model's input '{spec.name}' "
                        f"{format_shape(spec.shape)}; give no size or one that matches the model", settings=("size",))
    return (wanted_h, wanted_w), channels


class Samples:
    """What every stage reads samples through: a fixed, validated sequence of feeds (input name -> array), loaded
    when asked for. SampleSet reads a folder; ArraySamples (qdqtool.samples.arrays) holds arrays given in code."""

    specs: list[InputSpec]
    kind: str

    def __len__(self) -> int:
        raise NotImplementedError

    def label(self, index: int) -> str:
        """How messages name sample `index` (a file name, 'array sample 3')."""
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Sample]:
        for index in range(len(self)):
            yield self.load(index)

    def samples_at(self, indices: Sequence[int]) -> list[Sample]:
        """The samples at these positions (in order), loaded now."""
        return [self.load(i) for i in indices]

    def sources(self) -> list[str]:
        """Which source image each sample comes from (auto's folds keep one source together); by default every
        sample is its own source."""
        return [self.label(i) for i in range(len(self))]

    @property
    def dynamic_batch(self) -> bool:
        """Whether every input's batch dimension is dynamic (samples may be concatenated into one run)."""
        return all(s.shape and s.shape[0] is None for s in self.specs)

    def batches(self, batch_size: int) -> Iterator[Sample]:
        """Samples concatenated along dim 0 when every input's batch dim is dynamic; else one run's worth each."""
        if batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {batch_size}")
        dynamic = self.dynamic_batch
        static_batch = self.specs[0].shape[0] if self.specs[0].shape else None
        if dynamic:
            group = batch_size
        elif self.kind == "images" and static_batch and static_batch > 1:
            group = static_batch  # images come one per array: stack them up to the model's fixed batch
        else:
            group = 1
        if not dynamic and batch_size != group:
            logger.info("the model's batch dimension is fixed: using batches of %d, not %d", group, batch_size)
        pending: list[tuple[str, Sample]] = []
        for index in range(len(self)):
            pending.append((self.label(index), self.load(index)))
            if len(pending) == group:
                yield _concatenate(pending)
                pending = []
        if pending and (dynamic or group == 1):
            yield _concatenate(pending)
        elif pending:
            logger.warning("dropping the last %d sample(s): the model needs batches of exactly %d", len(pending), group)


class SampleSet(Samples):
    """A deterministic, validated list of samples from a folder.

    Images feed single-input 4-D models through `preprocess`; .npy files feed single-input models and
    .npz files (keyed by input name) any model. Files are sorted by name and loaded one at a time.
    """

    def __init__(self, folder: str | os.PathLike, specs: Sequence[InputSpec],
                 preprocess: Preprocess = DEFAULT_PREPROCESS, max_samples: int | None = None):
        self.folder = Path(folder)
        self.specs: list[InputSpec] = list(specs)
        self.preprocess = preprocess
        if not self.specs:
            raise ModelError("the model has no inputs to feed; check the model file")
        if max_samples is not None and max_samples < 1:
            raise DataError(f"max samples must be at least 1, got {max_samples}")
        self.kind, files = _usable_files(self.folder)
        self.files: list[Path] = files[:max_samples]
        self.image_size: tuple[int, int] | None = None
        self._channels = 3
        if self.kind == "images":
            self._check_image_model()
        elif len(self.specs) > 1 and any(p.suffix.lower() == ".npy" for p in self.files):
            raise DataError(f"the model has {len(self.specs)} inputs ({self._names()}); .npy feeds one input, "
                            "save .npz files keyed by input name instead")
        self._load(self.files[0])
        logger.info("%d %s from %s%s", len(self.files), "image(s)" if self.kind == "images" else "tensor file(s)",
                    self.folder,
                    f" at {self.image_size[0]}x{self.image_size[1]}" if self.image_size else "")

    def _names(self) -> str:
        return ", ".join(s.name for s in self.specs)

    def _check_image_model(self) -> None:
        if len(self.specs) > 1:
            raise DataError(f"images can feed only single-input models, this one has {len(self.specs)} inputs "
                            f"({self._names()}); save .npz files keyed by input name instead")
        spec = self.specs[0]
        self.image_size, self._channels = _image_geometry(spec, self.preprocess)
        raw_pixels = self.preprocess.scale == 1 and not any(self.preprocess.mean) and set(self.preprocess.std) == {1.0}
        if spec.dtype.kind not in "f" and not raw_pixels:
            raise DataError(f"the model's input '{spec.name}' is {spec.dtype}, not float; use pixel scale 1 "
                            "(and no mean/std) to feed raw pixels", settings=("scale", "mean", "std"))

    def __len__(self) -> int:
        return len(self.files)

    def label(self, index: int) -> str:
        return self.files[index].name

    def load(self, index: int) -> Sample:
        return self._load(self.files[index])

    def sources(self) -> list[str]:
        """The source image of each sample (source_of), in file order."""
        return [source_of(path) for path in self.files]

    # --- loading -----------------------------------------------------------------------------------------------
    def _load(self, path: Path) -> Sample:
        if self.kind == "images":
            spec = self.specs[0]
            array = image_to_array(decode_image(path, self._channels), self.preprocess, self.image_size, spec.dtype)
            _check_finite(array, path.name, spec.name)
            return {spec.name: array}
        arrays = self._read_tensors(path)
        return {spec.name: conform(array, spec, path.name) for spec, array in zip(self.specs, arrays)}

    def _read_tensors(self, path: Path) -> list[np.ndarray]:
        try:
            if path.suffix.lower() == ".npy":
                return [np.load(path, allow_pickle=False)]
            with np.load(path, allow_pickle=False) as archive:
                missing = [s.name for s in self.specs if s.name not in archive.files]
                if missing:
                    raise DataError(f"{path.name} lacks input(s) {', '.join(missing)}; expected keys: {self._names()} "
                                    f"(found: {', '.join(archive.files) or 'none'})")
                return [archive[s.name] for s in self.specs]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"cannot read tensor file {path.name} ({exc}); re-save it with numpy.save/savez") from exc


def conform(array: np.ndarray, spec: InputSpec, label: str) -> np.ndarray:
    """One input's array in the model's shape and type (a missing batch dimension of 1 added); DataError naming the
    sample (label) when it cannot be."""
    if array.dtype.kind not in "biuf":
        raise DataError(f"{label}: input '{spec.name}' holds {array.dtype} data; save numbers ({spec.dtype})")
    if array.ndim == len(spec.shape) - 1 and spec.shape and spec.shape[0] in (None, 1):
        array = array[None]
    if not _shape_matches(array.shape, spec.shape):
        raise DataError(f"{label}: input '{spec.name}' expects shape {format_shape(spec.shape)}, got "
                        f"{format_shape(array.shape)}; give the tensor in the model's shape")
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become Inf: refused just below
        array = np.ascontiguousarray(array, dtype=spec.dtype)
    _check_finite(array, label, spec.name)
    return array


def _concatenate(pending: list[tuple[str, Sample]]) -> Sample:
    if len(pending) == 1:
        return pending[0][1]
    batch = {}
    for name in pending[0][1]:
        arrays = [sample[name] for _, sample in pending]
        shapes = {a.shape[1:] for a in arrays}
        if len(shapes) > 1:
            raise DataError(f"cannot batch samples {pending[0][0]}..{pending[-1][0]}: input '{name}' has "
                            f"shapes {sorted(shapes)}; use batch size 1 or give all samples one shape")
        batch[name] = np.concatenate(arrays, axis=0)
    return batch
