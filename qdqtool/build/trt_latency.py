"""Timing a deserialised TensorRT engine with execute_async_v3. TensorRT objects come in as arguments (the module
never imports tensorrt); device memory comes from cuda_device. Every reason not to time is a LatencySkipped, so a
failed measurement can never cost the engine or the report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from qdqtool.build.cuda_device import CudaDevice, open_cuda_device
from qdqtool.build.latency import sample_latency
from qdqtool.build.shapes import ShapeProfile
from qdqtool.errors import QdqError
from qdqtool.onnxgraph.shapes import format_shape
from qdqtool.report.layers import Latency

log = logging.getLogger("qdqtool")


class LatencySkipped(QdqError):
    """Latency cannot be measured for this engine here; the message says why (it becomes a report note)."""


class ExecutionFailed(QdqError):
    """TensorRT's execute_async_v3 returned False: the engine did not run."""


@dataclass(frozen=True)
class IoTensor:
    name: str
    is_input: bool
    shape: tuple[int, ...]
    nbytes: int


def _itemsize(trt, dtype) -> int:
    """Bytes per element of a TensorRT DataType; LatencySkipped for types numpy cannot hold (BF16, FP8, INT4)."""
    try:
        return np.dtype(trt.nptype(dtype)).itemsize
    except TypeError:
        raise LatencySkipped(f"a tensor has data type {getattr(dtype, 'name', dtype)}, which numpy cannot "
                             "hold") from None


def plan_io(trt, engine, context, shapes: Mapping[str, ShapeProfile],
            feeds: Mapping[str, np.ndarray]) -> list[IoTensor]:
    """Set every input shape first (feed shape, else the profile's opt), then read every tensor's shape and size."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    for name in inputs:
        shape = tuple(engine.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            if name in feeds:
                shape = tuple(feeds[name].shape)
            elif name in shapes:
                shape = tuple(shapes[name].opt)
            else:
                raise LatencySkipped(f"input {name!r} is dynamic and has no shape profile")
        if not context.set_input_shape(name, shape):  # False: outside the profile
            raise LatencySkipped(f"TensorRT refused shape {format_shape(shape)} for input {name!r}")
    tensors = []
    for name in names:
        shape = tuple(context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise LatencySkipped(f"output {name!r} has a data-dependent shape ({format_shape(shape)}; e.g. NonZero "
                                 "or an NMS plugin), which needs an output allocator")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        tensors.append(IoTensor(name, name in inputs, shape, count * _itemsize(trt, engine.get_tensor_dtype(name))))
    return tensors


def _bind(context, device: CudaDevice, tensors: list[IoTensor], feeds: Mapping[str, np.ndarray]) -> None:
    for tensor in tensors:
        pointer = device.allocate(tensor.nbytes)
        if tensor.is_input:
            feed = feeds.get(tensor.name)
            device.fill(pointer, feed if feed is not None and feed.nbytes == tensor.nbytes else None, tensor.nbytes)
        if context.set_tensor_address(tensor.name, pointer) is False:
            raise LatencySkipped(f"TensorRT refused the buffer of tensor {tensor.name!r}")


def engine_latency(trt, engine, shapes: Mapping[str, ShapeProfile], feeds: Mapping[str, np.ndarray],
                   runs: int, warmup: int, open_device: Callable[[], CudaDevice] | None = None) -> Latency:
    """Median/p90/p99 of execute_async_v3 timed with CUDA events; LatencySkipped or ExecutionFailed otherwise."""
    context = engine.create_execution_context()
    if context is None:
        raise LatencySkipped("TensorRT could not create an execution context (out of device memory?)")
    tensors = plan_io(trt, engine, context, shapes, feeds)
    try:
        device = (open_device or open_cuda_device)()
    except QdqError as exc:
        raise LatencySkipped(str(exc)) from exc
    try:
        _bind(context, device, tensors, feeds)

        def run_once() -> None:
            if not context.execute_async_v3(device.stream_handle):
                raise ExecutionFailed("TensorRT's execute_async_v3 returned False: the engine did not run on this "
                                      "GPU (its log above says why); the engine file is written, the latency is not")

        log.debug("timing with %s buffers on stream %#x", device.name, device.stream_handle)
        return sample_latency(lambda: device.time_ms(run_once), runs, warmup)
    finally:
        device.close()
