"""Device buffers, a stream and event timing for timing a TensorRT engine: cuda-python (what TensorRT's own samples
use, installed by the `trt` extras), or torch when cuda-python is absent. The only module importing either.

cuda-python >= 12.6.1 has `cuda.bindings.runtime`; 13.x has only that; older 12.x has only `cuda.cudart`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np

from qdqtool.errors import BackendUnavailable

log = logging.getLogger("qdqtool")

CUDA_HINT = "pip install 'qdqtool[trt]' (cuda-python matching the TensorRT wheel's CUDA) or torch with CUDA"


class CudaError(BackendUnavailable):
    """A CUDA runtime call failed (out of memory, no device, driver too old for the runtime)."""


class CudaDevice(Protocol):
    """What timing an engine needs from CUDA; every call is ordered on `stream_handle`."""

    name: str
    stream_handle: int

    def allocate(self, nbytes: int) -> int: ...
    def fill(self, pointer: int, host: np.ndarray | None, nbytes: int) -> None: ...
    def time_ms(self, run: Callable[[], None]) -> float: ...
    def close(self) -> None: ...


def import_cuda_runtime():
    """cuda-python's runtime module in either layout; ImportError when cuda-python is absent."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime  # cuda-python < 12.6.1
    return runtime


class CudaPythonDevice:
    """cuda-python runtime API: cudaMalloc, cudaMemsetAsync/cudaMemcpyAsync and events on one stream."""

    name = "cuda-python"

    def __init__(self, runtime) -> None:
        self._rt = runtime
        self._pointers: list[int] = []
        self._stream = self._call("cudaStreamCreate", runtime.cudaStreamCreate())
        self._events = (self._call("cudaEventCreate", runtime.cudaEventCreate()),
                        self._call("cudaEventCreate", runtime.cudaEventCreate()))
        self.stream_handle = native_handle(self._stream)

    def _call(self, what: str, result):
        """cuda-python returns (cudaError_t, *values); raise CudaError unless cudaSuccess."""
        error, values = result[0], result[1:]
        if error != self._rt.cudaError_t.cudaSuccess:
            name = self._rt.cudaGetErrorName(error)[1]
            raise CudaError(f"CUDA {what} failed: {name.decode() if isinstance(name, bytes) else name}")
        return values[0] if len(values) == 1 else (values or None)

    def allocate(self, nbytes: int) -> int:
        pointer = int(self._call("cudaMalloc", self._rt.cudaMalloc(max(nbytes, 1))))
        self._pointers.append(pointer)
        return pointer

    def fill(self, pointer: int, host: np.ndarray | None, nbytes: int) -> None:
        """Copy host into the buffer (zeros without host), on the stream, and wait: host memory may go after this."""
        if host is None:
            self._call("cudaMemsetAsync", self._rt.cudaMemsetAsync(pointer, 0, nbytes, self._stream))
        else:
            host = np.ascontiguousarray(host)
            kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
            self._call("cudaMemcpyAsync", self._rt.cudaMemcpyAsync(pointer, host.ctypes.data, nbytes, kind,
                                                                   self._stream))
        self._call("cudaStreamSynchronize", self._rt.cudaStreamSynchronize(self._stream))

    def time_ms(self, run: Callable[[], None]) -> float:
        start, end = self._events
        self._call("cudaEventRecord", self._rt.cudaEventRecord(start, self._stream))
        run()
        self._call("cudaEventRecord", self._rt.cudaEventRecord(end, self._stream))
        self._call("cudaEventSynchronize", self._rt.cudaEventSynchronize(end))
        return float(self._call("cudaEventElapsedTime", self._rt.cudaEventElapsedTime(start, end)))

    def close(self) -> None:
        for pointer in self._pointers:
            self._rt.cudaFree(pointer)
        for event in self._events:
            self._rt.cudaEventDestroy(event)
        self._rt.cudaStreamDestroy(self._stream)
        self._pointers = []


def native_handle(cuda_object) -> int:
    """The address of a cuda-python object (int() is deprecated from cuda-bindings 13 on)."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(cuda_object)
    return int(get_cuda_native_handle(cuda_object))


class TorchDevice:
    """torch's CUDA allocator, one side stream for fills and runs, torch.cuda.Event timing (the fallback)."""

    name = "torch"

    def __init__(self, torch) -> None:
        self._torch = torch
        self._stream = torch.cuda.Stream()
        self._buffers: list = []
        self.stream_handle = int(self._stream.cuda_stream)

    def allocate(self, nbytes: int) -> int:
        buffer = self._torch.empty(max(nbytes, 1), dtype=self._torch.uint8, device="cuda")
        self._buffers.append(buffer)
        return int(buffer.data_ptr())

    def fill(self, pointer: int, host: np.ndarray | None, nbytes: int) -> None:
        buffer = next(b for b in self._buffers if int(b.data_ptr()) == pointer)
        with self._torch.cuda.stream(self._stream):
            if host is None:
                buffer.zero_()
            else:
                data = np.frombuffer(np.ascontiguousarray(host).tobytes(), dtype=np.uint8)
                buffer[:nbytes].copy_(self._torch.from_numpy(data.copy()))
        self._stream.synchronize()

    def time_ms(self, run: Callable[[], None]) -> float:
        start, end = (self._torch.cuda.Event(enable_timing=True) for _ in range(2))
        start.record(self._stream)
        run()
        end.record(self._stream)
        end.synchronize()
        return float(start.elapsed_time(end))

    def close(self) -> None:
        self._buffers = []


def open_cuda_device() -> CudaDevice:
    """cuda-python when installed, else torch with CUDA; BackendUnavailable saying what to install."""
    try:
        runtime = import_cuda_runtime()
    except ImportError:
        runtime = None
    if runtime is not None:
        return CudaPythonDevice(runtime)
    try:
        import torch
    except ImportError:
        raise BackendUnavailable(f"latency needs CUDA buffers: {CUDA_HINT}") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable("latency needs CUDA buffers: torch is installed but sees no CUDA device")
    log.info("cuda-python is not installed; timing with torch's CUDA buffers")
    return TorchDevice(torch)


def driver_cuda_version() -> tuple[int, int] | None:
    """The CUDA version the installed NVIDIA driver supports, e.g. (12, 4); None when it cannot be read."""
    try:
        runtime = import_cuda_runtime()
        error, version = runtime.cudaDriverGetVersion()
    except (ImportError, OSError, RuntimeError):
        return None
    if error != runtime.cudaError_t.cudaSuccess or not version:
        return None
    return version // 1000, (version % 1000) // 10
