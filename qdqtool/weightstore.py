"""Large models: copies without the weights' bytes, and models written with their weights in a data file.

A protobuf message cannot be serialized past 2 GB, so a model whose weights are larger cannot be copied through
bytes, converted, shape-inferred or handed to ONNX Runtime as bytes. And protobuf's memory (an arena) only grows
while a message lives: clearing a field frees nothing. So qdqtool never strips and refills a big model; it works on
a *skeleton* (`skeleton_copy`: the model with every large initializer's bytes left out, marked as external data
meanwhile) and fills the bytes in from the source model by name (`fill_weights`) once the skeleton is final.
A skeleton can also be written without ever being filled: `write_with_external_data(..., weights=source)` asks for
one detached tensor's bytes at a time (a Q/DQ model's float weights are made that way, see QdqView.float_weight).
An input's external weights can also stay *on file* (`refer_to_files`: referred to by absolute path): copies of the
model carry the reference, and the bytes are read one tensor at a time when a weight is quantized (`tensor_array`)
or a model is written (calibrate never holds a large model's float weights itself).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import onnx

DETACHED = "qdqtool-detached-weights"   # the external-data location of a tensor whose bytes are held aside
MIN_EXTERNAL_BYTES = 1024               # smaller tensors stay in the proto (onnx's own default threshold)
INLINE_LIMIT = 1_800_000_000            # weights above this go to a data file: a proto must stay below 2 GB
ALIGNMENT = 4096                        # data-file offsets: page aligned, so ONNX Runtime can map them
PREPACK_LIMIT = 512_000_000             # float weights above this: ONNX Runtime makes no pre-packed second copy

def weight_bytes(model: onnx.ModelProto) -> int:
    """Serialized bytes of the graph's initializers (ByteSize: no copy of the data is made), detached ones counted
    at the size their bytes will have, ones on file at their length there."""
    return sum(_detached_bytes(t) if is_detached(t) else external_length(t) if is_on_file(t) else t.ByteSize()
               for t in model.graph.initializer)


def _detached_bytes(tensor: onnx.TensorProto, at_least: int = 1) -> int:
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count * max(at_least, onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize)


def float_weight_bytes(model: onnx.ModelProto) -> int:
    """The initializers' size as float32 (int8 weights count 4 bytes each: ONNX Runtime may dequantize them),
    from their shapes alone: a model loaded without its external data is measured as well."""
    return sum(_detached_bytes(t, 4) for t in model.graph.initializer)


def needs_lean_session(model: onnx.ModelProto) -> bool:
    """Whether ONNX Runtime should skip its pre-packed copies of the weights (which double their memory)."""
    return weight_bytes(model) > INLINE_LIMIT or float_weight_bytes(model) > PREPACK_LIMIT


def needs_external_data(model: onnx.ModelProto) -> bool:
    """Whether the model must be written with a data file: weights too large for one proto, or weights on file
    (their bytes are not in the proto: writing copies them into the new data file)."""
    return weight_bytes(model) > INLINE_LIMIT or any(is_on_file(t) for t in model.graph.initializer)


def _set_location(tensor: onnx.TensorProto, location: str, offset: int = 0, length: int = 0) -> None:
    del tensor.external_data[:]
    entries = {"location": location, **({"offset": str(offset), "length": str(length)} if length else {})}
    for key, value in entries.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.data_location = onnx.TensorProto.EXTERNAL


def _is_large(tensor: onnx.TensorProto, min_bytes: int) -> bool:
    return tensor.HasField("raw_data") and tensor.ByteSize() >= min_bytes


def _copy_fields(source, target, skip: frozenset = frozenset()) -> None:
    """Copy every set field of a protobuf message but those named in skip (no bytes copied for skipped fields)."""
    for field, value in source.ListFields():
        if field.name in skip:
            continue
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        if repeated:
            getattr(target, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)


def _skeleton_tensor(tensor: onnx.TensorProto, location: str, offset: int = 0, length: int = 0) -> onnx.TensorProto:
    copy = onnx.TensorProto()
    _copy_fields(tensor, copy, frozenset({"raw_data", "external_data", "data_location"}))
    _set_location(copy, location, offset, length)
    return copy


def skeleton_copy(model: onnx.ModelProto, min_bytes: int = MIN_EXTERNAL_BYTES) -> onnx.ModelProto:
    """A copy of model whose large initializers carry no bytes (marked DETACHED): cheap to copy, convert, infer
    shapes on; `fill_weights` gives it the bytes once it is final. The model itself is not touched."""
    skeleton = onnx.ModelProto()
    _copy_fields(model, skeleton, frozenset({"graph"}))
    _copy_fields(model.graph, skeleton.graph, frozenset({"initializer"}))
    for tensor in model.graph.initializer:
        if _is_large(tensor, min_bytes):
            skeleton.graph.initializer.append(_skeleton_tensor(tensor, DETACHED))
        else:
            skeleton.graph.initializer.add().CopyFrom(tensor)
    return skeleton


def detached_tensor(name: str, data_type: int, dims) -> onnx.TensorProto:
    """A tensor with no bytes yet (marked DETACHED): its bytes are made when needed (see write_with_external_data's
    weights, or fill_tensor)."""
    tensor = onnx.TensorProto(name=name, data_type=data_type, dims=list(dims))
    _set_location(tensor, DETACHED)
    return tensor


def detach(tensor: onnx.TensorProto) -> None:
    """Mark a tensor whose bytes are not loaded (external data left unread) DETACHED: reading it fails clearly
    instead of looking for its data file elsewhere."""
    _set_location(tensor, DETACHED)


def external_length(tensor: onnx.TensorProto) -> int:
    """The byte length an external tensor declares (its element count times its size when it declares none)."""
    length = next((e.value for e in tensor.external_data if e.key == "length"), "")
    return int(length) if length.isdigit() else _detached_bytes(tensor)


def is_detached(tensor: onnx.TensorProto) -> bool:
    return _location(tensor) == DETACHED


def refer_to_files(model: onnx.ModelProto, folder: Path) -> int:
    """Point the external initializers of model (loaded without its weights from a file in folder) at their data
    files by absolute path: the tensors are then *on file*, their bytes read when needed (`tensor_bytes`), one at a
    time, and copied with the proto at no cost. Returns how many. Other external tensors are left as they are."""
    count = 0
    for tensor in model.graph.initializer:
        location = _location(tensor)
        if not location or location == DETACHED or Path(location).is_absolute():
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        offset = int(entries.get("offset", "0") or 0)
        _set_location(tensor, str((folder / location).resolve()), offset, external_length(tensor))
        count += 1
    return count


def is_on_file(tensor: onnx.TensorProto) -> bool:
    """A tensor whose bytes are in a data file at an absolute path (see refer_to_files)."""
    location = _location(tensor)
    return bool(location) and location != DETACHED and Path(location).is_absolute()


def file_span(tensor: onnx.TensorProto) -> tuple[str, int, int]:
    """(data file, offset, length) of a tensor on file."""
    entries = {e.key: e.value for e in tensor.external_data}
    return entries["location"], int(entries.get("offset", "0") or 0), external_length(tensor)


def short_file(tensor: onnx.TensorProto) -> Optional[str]:
    """Why a tensor on file cannot be read whole (its data file ends before its bytes do), or None."""
    location, offset, length = file_span(tensor)
    if offset + length > os.path.getsize(location):
        return f"{location} ends before the {length} bytes of tensor {tensor.name}"
    return None


def tensor_bytes(tensor: onnx.TensorProto) -> bytes:
    """The bytes of a tensor on file (read from its data file; never written)."""
    location, offset, length = file_span(tensor)
    with open(location, "rb") as handle:
        handle.seek(offset)
        raw = handle.read(length)
    if len(raw) != length:
        raise OSError(short_file(tensor) or f"{location}: short read of tensor {tensor.name}")
    return raw


def tensor_array(tensor: onnx.TensorProto):
    """The tensor's values as a numpy array, read from its data file when it is on file."""
    import numpy as np
    from onnx import numpy_helper

    if not is_on_file(tensor):
        return numpy_helper.to_array(tensor)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    return np.frombuffer(tensor_bytes(tensor), dtype=dtype).reshape(tuple(tensor.dims))


def fill_tensor(tensor: onnx.TensorProto, raw: "bytes | memoryview") -> None:
    """Give a DETACHED tensor its bytes."""
    del tensor.external_data[:]
    tensor.ClearField("data_location")
    tensor.raw_data = raw if isinstance(raw, bytes) else bytes(raw)


def fill_weights(skeleton: onnx.ModelProto, source: onnx.ModelProto) -> None:
    """Give every DETACHED initializer of skeleton the bytes of source's initializer of that name (one at a time;
    a source that is a skeleton itself leaves them detached)."""
    detached = {t.name: t for t in skeleton.graph.initializer if _location(t) == DETACHED}
    for tensor in source.graph.initializer:
        target = detached.pop(tensor.name, None)
        if target is not None and tensor.HasField("raw_data"):
            fill_tensor(target, tensor.raw_data)


def _location(tensor: onnx.TensorProto) -> str:
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return ""
    return next((e.value for e in tensor.external_data if e.key == "location"), "")


WeightSource = Callable[[onnx.TensorProto], "bytes | memoryview"]   # a memoryview: of bytes (format "B")


def write_with_external_data(model: onnx.ModelProto, path: Path, data_name: str, durable: bool = True,
                             weights: Optional[WeightSource] = None) -> None:
    """Write model to path and its large initializers to data_name in the same folder; model is not touched.
    weights(tensor) gives the bytes of each DETACHED initializer (model may then be a skeleton: the bytes are made
    or read one tensor at a time, written and dropped); initializers on file are copied from their data file.

    Deterministic: tensors in initializer order at page-aligned offsets, the proto serialized deterministically.
    Memory: one tensor's bytes at a time beyond the model itself. durable=False skips fsync (scratch files)."""
    skeleton = onnx.ModelProto()
    _copy_fields(model, skeleton, frozenset({"graph"}))
    _copy_fields(model.graph, skeleton.graph, frozenset({"initializer"}))
    with open(path.parent / data_name, "wb") as data:
        for tensor in model.graph.initializer:
            raw = (weights(tensor) if weights is not None and is_detached(tensor)
                   else tensor_bytes(tensor) if is_on_file(tensor) else None)
            if raw is not None and len(raw) < MIN_EXTERNAL_BYTES:   # as small as a filled model keeps inline
                filled = skeleton.graph.initializer.add()
                filled.CopyFrom(tensor)
                fill_tensor(filled, raw)
                if _is_large(filled, MIN_EXTERNAL_BYTES):
                    skeleton.graph.initializer.pop()
                else:
                    continue
            elif raw is None and not _is_large(tensor, MIN_EXTERNAL_BYTES):
                skeleton.graph.initializer.add().CopyFrom(tensor)
                continue
            offset = -(-data.tell() // ALIGNMENT) * ALIGNMENT
            data.write(b"\0" * (offset - data.tell()))
            raw = tensor.raw_data if raw is None else raw
            data.write(raw)
            skeleton.graph.initializer.append(_skeleton_tensor(tensor, data_name, offset, len(raw)))
            del raw
        _sync(data, durable)
    with open(path, "wb") as handle:
        handle.write(skeleton.SerializeToString(deterministic=True))
        _sync(handle, durable)


def _sync(handle, durable: bool) -> None:
    handle.flush()
    if durable:
        os.fsync(handle.fileno())


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
