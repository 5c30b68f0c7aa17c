"""qdqtool's use of cuda-python, driven by a STAND-IN runtime module (tests/build/trt_standin.py): both module layouts,
error checking, the order of calls on one stream, the driver version. Proves our handling, not CUDA's behaviour."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from trt_standin import make_cuda_runtime

from qdqtool.build import cuda_device
from qdqtool.build.cuda_device import CudaError, CudaPythonDevice, driver_cuda_version, import_cuda_runtime


def _layout(monkeypatch, runtime, new_layout: bool) -> None:
    """Make `from cuda.bindings import runtime` (cuda-python >= 12.6.1) or only `from cuda import cudart` work."""
    cuda = types.ModuleType("cuda")
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    if new_layout:
        bindings = types.ModuleType("cuda.bindings")
        bindings.runtime = runtime
        cuda.bindings = bindings
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", runtime)
    else:
        cuda.cudart = runtime
        monkeypatch.setitem(sys.modules, "cuda.bindings", None)  # import of cuda.bindings raises ImportError
        monkeypatch.setitem(sys.modules, "cuda.cudart", runtime)
    monkeypatch.setitem(sys.modules, "cuda.bindings.utils", None)  # no get_cuda_native_handle: int() is used


@pytest.mark.parametrize("new_layout", [True, False])
def test_both_module_layouts_are_found(monkeypatch, new_layout):
    runtime = make_cuda_runtime()
    _layout(monkeypatch, runtime, new_layout)
    assert import_cuda_runtime() is runtime
    assert driver_cuda_version() == (12, 4)


def test_device_orders_fills_and_timing_on_its_stream_and_frees_everything(monkeypatch):
    runtime = make_cuda_runtime()
    _layout(monkeypatch, runtime, True)
    device = CudaPythonDevice(runtime)
    stream = device.stream_handle
    data = np.ones((2, 3), np.float32)
    zeros, feed = device.allocate(0), device.allocate(data.nbytes)
    device.fill(zeros, None, 16)
    device.fill(feed, data, data.nbytes)
    assert device.time_ms(lambda: runtime.calls.append(("run", ()))) == 0.25
    device.close()
    names = [name for name, _ in runtime.calls]
    assert names[:3] == ["cudaStreamCreate", "cudaEventCreate", "cudaEventCreate"]
    assert runtime.calls[3] == ("cudaMalloc", (1,))  # a zero-size tensor still gets a valid pointer
    memset = next(args for name, args in runtime.calls if name == "cudaMemsetAsync")
    memcpy = next(args for name, args in runtime.calls if name == "cudaMemcpyAsync")
    assert memset == (zeros, 0, 16, stream) and memcpy[0] == feed and memcpy[2:] == (24, 1, stream)
    assert names.index("cudaStreamSynchronize") < names.index("run")  # fills finish before the timed run
    timed = names[names.index("run") - 1:names.index("run") + 4]
    assert timed == ["cudaEventRecord", "run", "cudaEventRecord", "cudaEventSynchronize", "cudaEventElapsedTime"]
    assert names.count("cudaFree") == 2 and names.count("cudaEventDestroy") == 2 and names[-1] == "cudaStreamDestroy"


def test_a_failed_cuda_call_is_a_cuda_error_naming_it(monkeypatch):
    runtime = make_cuda_runtime(fail="cudaMalloc")
    _layout(monkeypatch, runtime, True)
    device = CudaPythonDevice(runtime)
    with pytest.raises(CudaError, match="CUDA cudaMalloc failed: cudaErrorMemoryAllocation"):
        device.allocate(1 << 30)


def test_driver_version_unreadable_is_none(monkeypatch):
    _layout(monkeypatch, make_cuda_runtime(fail="cudaDriverGetVersion"), True)
    assert driver_cuda_version() is None
    monkeypatch.setitem(sys.modules, "cuda", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    monkeypatch.setitem(sys.modules, "cuda.cudart", None)
    assert driver_cuda_version() is None


def test_without_cuda_python_or_torch_latency_says_what_to_install(monkeypatch):
    monkeypatch.setattr(cuda_device, "import_cuda_runtime", lambda: (_ for _ in ()).throw(ImportError("no cuda")))
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(cuda_device.BackendUnavailable, match=r"qdqtool\[trt\]"):
        cuda_device.open_cuda_device()
