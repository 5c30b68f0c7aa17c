"""Large models: weights held aside from the protobuf, and models written with their weights in a data file.

A protobuf message cannot be serialized past 2 GB, so a model whose weights are larger cannot be copied through
bytes, converted, shape-inferred or handed to ONNX Runtime as bytes. `detach_weights` moves the raw bytes of every
large initializer into a dictionary (the tensor is marked as external data meanwhile), which makes the proto small;
`attach_weights` puts them back by name, also into a model derived from the detached one (a converted copy).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx

DETACHED = "qdqtool-detached-weights"   # the external-data location of a tensor whose bytes are held aside
MIN_EXTERNAL_BYTES = 1024               # smaller tensors stay in the proto (onnx's own default threshold)
INLINE_LIMIT = 1_800_000_000            # weights above this go to a data file: a proto must stay below 2 GB
ALIGNMENT = 4096                        # data-file offsets: page aligned, so ONNX Runtime can map them

WeightStore = dict[str, bytes]


def weight_bytes(model: onnx.ModelProto) -> int:
    """Serialized bytes of the graph's initializers (ByteSize: no copy of the data is made)."""
    return sum(t.ByteSize() for t in model.graph.initializer)


def needs_external_data(model: onnx.ModelProto) -> bool:
    return weight_bytes(model) > INLINE_LIMIT


def _set_location(tensor: onnx.TensorProto, location: str, offset: int = 0, length: int = 0) -> None:
    del tensor.external_data[:]
    entries = {"location": location, **({"offset": str(offset), "length": str(length)} if length else {})}
    for key, value in entries.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.data_location = onnx.TensorProto.EXTERNAL


def detach_weights(model: onnx.ModelProto, min_bytes: int = MIN_EXTERNAL_BYTES) -> WeightStore:
    """Move the raw bytes of every initializer of at least min_bytes out of the proto (one tensor at a time)."""
    store: WeightStore = {}
    for tensor in model.graph.initializer:
        if tensor.HasField("raw_data") and tensor.ByteSize() >= min_bytes and tensor.name not in store:
            store[tensor.name] = tensor.raw_data
            tensor.ClearField("raw_data")
            _set_location(tensor, DETACHED)
    return store


def attach_weights(model: onnx.ModelProto, store: WeightStore) -> None:
    """Give every detached initializer of model its bytes back (a store may serve several derived models)."""
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL and tensor.name in store:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            if location == DETACHED:
                del tensor.external_data[:]
                tensor.ClearField("data_location")
                tensor.raw_data = store[tensor.name]


@contextmanager
def weights_detached(model: onnx.ModelProto) -> Iterator[WeightStore]:
    """The model without its large weights for the block (copy, convert, infer shapes cheaply); restored after."""
    store = detach_weights(model)
    try:
        yield store
    finally:
        attach_weights(model, store)


def write_with_external_data(model: onnx.ModelProto, path: Path, data_name: str) -> None:
    """Write model to path and its large initializers to data_name in the same folder; model is unchanged after.

    Deterministic: tensors in initializer order at page-aligned offsets, the proto serialized deterministically."""
    store = detach_weights(model)
    try:
        with open(path.parent / data_name, "wb") as data:
            for tensor in model.graph.initializer:
                if tensor.name not in store or any(e.value != DETACHED for e in tensor.external_data
                                                   if e.key == "location"):
                    continue
                offset = -(-data.tell() // ALIGNMENT) * ALIGNMENT
                data.write(b"\0" * (offset - data.tell()))
                data.write(store[tensor.name])
                _set_location(tensor, data_name, offset, len(store[tensor.name]))
            data.flush()
            os.fsync(data.fileno())
        with open(path, "wb") as handle:
            handle.write(model.SerializeToString(deterministic=True))
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        for tensor in model.graph.initializer:
            if tensor.name in store:
                _set_location(tensor, DETACHED)
        attach_weights(model, store)


def external_data_files(model: onnx.ModelProto, folder: Path) -> tuple[Path, ...]:
    """The data files a model loaded without its external data refers to (resolved, in first-use order)."""
    files: dict[Path, None] = {}
    for tensor in _all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            files[(folder / location).resolve()] = None
    return tuple(files)


def _all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    from onnx.external_data_helper import _get_all_tensors

    return iter(_get_all_tensors(model))
