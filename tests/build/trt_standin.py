"""STAND-IN for the `tensorrt` module and for a CUDA device. It is not TensorRT and proves nothing about TensorRT:
it gives the answers TensorRT can give (warnings on its logger, a builder that cannot start, a None engine, -1 output
dims, a BF16 tensor, False from execute_async_v3) so tests can check how qdqtool *handles* them.

Only the calls qdqtool makes exist, with the signatures of TensorRT 10/11's Python API (docs and pyCore.cpp).
Install with `install(monkeypatch, script)`: it puts the stand-in in sys.modules['tensorrt'] and a stand-in CUDA
device in place of cuda-python.
"""

from __future__ import annotations

import enum
import json
import sys
import types
from dataclasses import dataclass, field

import numpy as np

STANDIN_LAYER_INFO = json.dumps({"Layers": [{
    "Name": "conv + relu", "LayerType": "CaskConvolution",
    "Inputs": [{"Name": "xq", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}],
    "Outputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32"}],
    "TacticName": "standin_tactic"}], "Bindings": ["x", "y"]})


class Severity(enum.Enum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class DataType(enum.Enum):
    FLOAT = "float32"
    HALF = "float16"
    INT8 = "int8"
    INT32 = "int32"
    BF16 = "bf16"
    FP8 = "fp8"


class TensorIOMode(enum.Enum):
    INPUT = 1
    OUTPUT = 2


@dataclass
class Tensor:
    name: str
    mode: TensorIOMode
    shape: tuple[int, ...]                  # the engine's shape (-1: dynamic)
    dtype: DataType = DataType.FLOAT
    runtime_shape: tuple[int, ...] | None = None   # what the context reports for an output (-1: data-dependent)


@dataclass
class Script:
    """What the stand-in answers, and what it records."""

    version: str = "10.16.1.11"
    builder_raises: bool = False            # Builder() raises TypeError, as pybind11 does on a nullptr builder
    build_returns_none: bool = False
    engine_none: bool = False
    execute_ok: bool = True
    layer_info: str = STANDIN_LAYER_INFO
    tensors: list[Tensor] = field(default_factory=lambda: [
        Tensor("x", TensorIOMode.INPUT, (1, 3, 32, 32)),
        Tensor("y", TensorIOMode.OUTPUT, (1, 8, 32, 32))])
    build_messages: tuple[tuple[Severity, str], ...] = ()
    builds: list[dict] = field(default_factory=list)     # one per build_serialized_network
    calls: list[tuple] = field(default_factory=list)     # context calls in order
    fills: list[tuple] = field(default_factory=list)     # device fills: (pointer, had host data, nbytes)
    parsed: list[str] = field(default_factory=list)      # model paths given to the parser
    inspectors: list = field(default_factory=list)        # engine inspectors handed out
    parser_errors: tuple[tuple[str, str, str], ...] = ()  # (node name, operator, description): parsing fails
    profile_invalid: bool = False           # add_optimization_profile returns -1
    shape_refused: bool = False             # set_input_shape returns False


def version_enums(version: str) -> tuple[type[enum.IntEnum], type[enum.IntEnum]]:
    """NetworkDefinitionCreationFlag and BuilderFlag with TensorRT's own values (include/NvInfer.h of TensorRT
    10.16 and 11.1): TensorRT 10 has EXPLICIT_BATCH = 0 (deprecated) and STRONGLY_TYPED = 1, BuilderFlag FP16 = 0,
    INT8 = 1; TensorRT 11 has STRONGLY_TYPED = 0 (deprecated, ignored) and no FP16/INT8 builder flags. TF32 = 6 in
    both, enabled by default."""
    eleven = version.split(".")[0] == "11"
    network = enum.IntEnum("NetworkDefinitionCreationFlag",
                           {"STRONGLY_TYPED": 0} if eleven else {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1})
    builder = enum.IntEnum("BuilderFlag", {"DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "TF32": 6} if eleven else
                           {"FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "TF32": 6})
    return network, builder


def make_tensorrt(script: Script) -> types.ModuleType:
    module = types.ModuleType("tensorrt", "STAND-IN for tensorrt (tests only)")
    module.__version__ = script.version

    class ILogger:
        Severity = Severity

        def __init__(self) -> None:
            pass

    for member in Severity:
        setattr(ILogger, member.name, member)

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.num_inputs = sum(t.mode is TensorIOMode.INPUT for t in script.tensors)

        def get_input(self, index: int):
            tensor = [t for t in script.tensors if t.mode is TensorIOMode.INPUT][index]
            return types.SimpleNamespace(name=tensor.name, shape=tensor.shape)

    class BuilderConfig:
        def __init__(self) -> None:
            self.flags, self.cleared, self.profiles, self.pool = [], [], [], None   # flags set / cleared, by name
            self.profiling_verbosity = None

        def set_flag(self, flag) -> None:
            self.flags.append(flag.name)
            self.cleared = [f for f in self.cleared if f != flag.name]

        def clear_flag(self, flag) -> None:
            self.flags = [f for f in self.flags if f != flag.name]
            self.cleared.append(flag.name)

        def set_memory_pool_limit(self, pool, size: int) -> None:
            self.pool = size

        def add_optimization_profile(self, profile) -> int:
            """The profile's index, or -1 when TensorRT finds it invalid (IBuilderConfig::addOptimizationProfile)."""
            if script.profile_invalid:
                return -1
            self.profiles.append(profile)
            return len(self.profiles) - 1

    class Profile:
        def __init__(self) -> None:
            self.shapes = {}

        def set_shape(self, name, low, opt, high) -> None:
            self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

    class Builder:
        def __init__(self, logger) -> None:
            if script.builder_raises:
                logger.log(Severity.ERROR, "[standin] CUDA initialization failure with error: 35")
                raise TypeError("pybind11::init(): factory function returned nullptr")
            self.logger = logger

        def create_network(self, flags: int) -> Network:
            return Network(flags)

        def create_builder_config(self) -> BuilderConfig:
            return BuilderConfig()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, settings: BuilderConfig):
            for severity, message in script.build_messages:
                self.logger.log(severity, message)
            script.builds.append({"network_flags": network.flags, "builder_flags": list(settings.flags),
                                  "cleared_flags": list(settings.cleared),
                                  "workspace": settings.pool, "verbosity": settings.profiling_verbosity,
                                  "profiles": [p.shapes for p in settings.profiles], "model": script.parsed[-1]})
            if script.build_returns_none:
                self.logger.log(Severity.ERROR, "[standin] no implementation for a layer")
                return None
            return b"standin-engine"

    class ParserError:
        def __init__(self, node: str, operator: str, description: str) -> None:
            self.node_name, self.node_operator = (lambda: node), (lambda: operator)
            self.desc = lambda: description

    class OnnxParser:
        num_errors = len(script.parser_errors)

        def __init__(self, network, logger) -> None:
            pass

        def parse_from_file(self, path: str) -> bool:
            script.parsed.append(path)
            return not script.parser_errors

        def get_error(self, index: int) -> ParserError:
            return ParserError(*script.parser_errors[index])

    class Context:
        def __init__(self) -> None:
            self.shapes = {}

        def set_input_shape(self, name, shape) -> bool:
            """False when the shape is outside the profile (IExecutionContext::setInputShape)."""
            script.calls.append(("set_input_shape", name))
            if script.shape_refused:
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            script.calls.append(("get_tensor_shape", name))
            tensor = next(t for t in script.tensors if t.name == name)
            if tensor.mode is TensorIOMode.INPUT:
                return self.shapes[name]
            return tensor.runtime_shape or tensor.shape

        def set_tensor_address(self, name, pointer: int) -> bool:
            script.calls.append(("set_tensor_address", name))
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            script.calls.append(("execute_async_v3", stream_handle))
            return script.execute_ok

    class Engine:
        num_io_tensors = len(script.tensors)

        def get_tensor_name(self, index: int) -> str:
            return script.tensors[index].name

        def _tensor(self, name):
            return next(t for t in script.tensors if t.name == name)

        def get_tensor_mode(self, name):
            return self._tensor(name).mode

        def get_tensor_shape(self, name):
            return self._tensor(name).shape

        def get_tensor_dtype(self, name):
            return self._tensor(name).dtype

        def create_execution_context(self) -> Context:
            return Context()

        def create_engine_inspector(self):
            inspector = types.SimpleNamespace(execution_context=None)
            script.inspectors.append(inspector)
            inspector.get_engine_information = lambda fmt: script.layer_info
            return inspector

    class Runtime:
        def __init__(self, logger) -> None:
            pass

        def deserialize_cuda_engine(self, serialized):
            return None if script.engine_none else Engine()

    def nptype(dtype: DataType):
        if dtype.value in ("bf16", "fp8"):
            raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype. {dtype}")
        return np.dtype(dtype.value).type

    module.ILogger = ILogger
    module.Builder, module.OnnxParser, module.Runtime = Builder, OnnxParser, Runtime
    module.DataType, module.TensorIOMode, module.nptype = DataType, TensorIOMode, nptype
    module.NetworkDefinitionCreationFlag, module.BuilderFlag = version_enums(script.version)
    module.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    module.ProfilingVerbosity = types.SimpleNamespace(DETAILED="DETAILED")
    module.LayerInformationFormat = types.SimpleNamespace(JSON="JSON")
    return module


class StandinDevice:
    """Stand-in for a CUDA device (cuda_device.CudaDevice): pointers are counters, a timed run takes 1 ms."""

    name = "stand-in"
    stream_handle = 0x5747

    def __init__(self, script: Script) -> None:
        self._script, self._next, self.closed = script, 0x1000, False

    def allocate(self, nbytes: int) -> int:
        self._next += max(nbytes, 1)
        return self._next

    def fill(self, pointer: int, host, nbytes: int) -> None:
        self._script.fills.append((pointer, host is not None, nbytes))

    def time_ms(self, run) -> float:
        run()
        return 1.0

    def close(self) -> None:
        self.closed = True


def install(monkeypatch, script: Script) -> types.ModuleType:
    """Put the stand-in where `import tensorrt` and the CUDA device lookup find it (undone after the test)."""
    from qdqtool.build import trt_latency

    module = make_tensorrt(script)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    monkeypatch.setattr(trt_latency, "open_cuda_device", lambda: StandinDevice(script))
    return module


def make_cuda_runtime(fail: str = "", driver_version: int = 12040) -> types.ModuleType:
    """STAND-IN for cuda-python's runtime module (`cuda.bindings.runtime` / `cuda.cudart`): each call returns
    (cudaError_t, *values) as cuda-python does; `fail` names one call that returns an error. Records its calls."""
    module = types.ModuleType("cuda.bindings.runtime", "STAND-IN for cuda-python's runtime (tests only)")
    error_t = enum.Enum("cudaError_t", {"cudaSuccess": 0, "cudaErrorMemoryAllocation": 2,
                                        "cudaErrorInsufficientDriver": 35})
    module.cudaError_t = error_t
    module.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1)
    module.calls = []
    counter = iter(range(0x100, 0x10000))

    def call(name, *values, error=error_t.cudaErrorMemoryAllocation):
        def function(*args):
            module.calls.append((name, args))
            if name == fail:
                return (error, *(None for _ in values))
            return (error_t.cudaSuccess, *(value() if callable(value) else value for value in values))
        return function

    for name in ("cudaStreamCreate", "cudaEventCreate", "cudaMalloc"):
        setattr(module, name, call(name, lambda: next(counter)))
    for name in ("cudaMemsetAsync", "cudaMemcpyAsync", "cudaStreamSynchronize", "cudaEventRecord",
                 "cudaEventSynchronize", "cudaFree", "cudaEventDestroy", "cudaStreamDestroy"):
        setattr(module, name, call(name))
    module.cudaEventElapsedTime = call("cudaEventElapsedTime", 0.25)
    module.cudaDriverGetVersion = call("cudaDriverGetVersion", driver_version,
                                       error=error_t.cudaErrorInsufficientDriver)
    module.cudaGetErrorName = lambda error: (error_t.cudaSuccess, error.name.encode())
    return module
