"""The one way every stage opens its data: a folder (SampleSet) or arrays given in code (ArraySamples)."""

from __future__ import annotations

import os

import onnx

from qdqtool.samples.arrays import ArraySamples
from qdqtool.samples.images import Preprocess
from qdqtool.samples.sets import DEFAULT_PREPROCESS, Samples, SampleSet, model_input_specs


def open_samples(model: onnx.ModelProto, data, preprocess: Preprocess = DEFAULT_PREPROCESS,
                 max_samples: int | None = None) -> Samples:
    """The samples, shaped for the model's inputs (the one way every stage opens its data). data: a folder (images
    or .npy/.npz files), or in code a numpy array (samples along axis 0, for a one-input model), a dict of arrays
    (input name -> samples along axis 0) or an iterable of feed dicts (input name -> one sample's array)."""
    if isinstance(data, (str, os.PathLike)):
        return SampleSet(data, model_input_specs(model), preprocess, max_samples)
    return ArraySamples(data, model_input_specs(model), max_samples)
