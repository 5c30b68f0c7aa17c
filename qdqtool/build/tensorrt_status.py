"""Is TensorRT usable here, and if not, why (typed): not installed, a broken install, too old, no GPU, or a TensorRT
wheel built for a newer CUDA than the driver supports. Nothing here imports tensorrt; the backend passes it in."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from importlib import metadata

from qdqtool.errors import BackendUnavailable

INSTALL_HINT = "TensorRT is not installed: pip install 'qdqtool[trt]' (needs an NVIDIA GPU and driver)"
DRIVER_FOR_CUDA = {12: "r535 on Linux, r537 on Windows", 13: "r580"}   # NVIDIA's minimum per CUDA major (TensorRT docs)
WHEELS = ("tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")


class TrtProblem(enum.Enum):
    NOT_INSTALLED = "not installed"
    BROKEN_INSTALL = "broken install"          # the import raised OSError (missing DLLs/shared libraries)
    TOO_OLD = "too old"
    NO_GPU = "no usable GPU"
    DRIVER_MISMATCH = "driver/CUDA mismatch"


class TensorRTUnavailable(BackendUnavailable):
    """TensorRT cannot build here; `problem` says why (callers branch on it, never on the message)."""

    def __init__(self, problem: TrtProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True)
class TensorRTStatus:
    usable: bool
    reason: str
    problem: TrtProblem | None = None
    version: str = ""
    major: int | None = None

    def require(self) -> None:
        """Raise TensorRTUnavailable unless usable; the message says what to install or where to build."""
        if self.usable:
            return
        problem = self.problem or TrtProblem.NO_GPU
        if problem is TrtProblem.NOT_INSTALLED:
            raise TensorRTUnavailable(problem, INSTALL_HINT)
        if problem in (TrtProblem.BROKEN_INSTALL, TrtProblem.TOO_OLD):
            raise TensorRTUnavailable(problem, self.reason)
        raise TensorRTUnavailable(problem, f"{self.reason}; build with ONNX Runtime here, or on a machine whose "
                                           "NVIDIA GPU and driver fit the TensorRT wheel")


def unavailable(problem: TrtProblem, reason: str, version: str = "") -> TensorRTStatus:
    return TensorRTStatus(False, reason, problem, version)


def wheel_cuda_major() -> int | None:
    """The CUDA major of the installed TensorRT wheel (tensorrt-cu13 -> 13); None for other installs (tar, deb)."""
    for name in WHEELS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        return int(name.rsplit("cu", 1)[1])
    return None


def no_gpu_status(version: str, major: int, seen: str, wheel_cuda: int | None,
                  driver_cuda: tuple[int, int] | None) -> TensorRTStatus:
    """Why a Builder could not be created: a driver older than the wheel's CUDA, else no usable GPU (with the
    versions seen, so a driver/CUDA mismatch is recognisable)."""
    driver = f"{driver_cuda[0]}.{driver_cuda[1]}" if driver_cuda else "unknown (nvidia-smi shows it)"
    wheel = f"CUDA {wheel_cuda}" if wheel_cuda else "CUDA unknown"
    detail = f" ({seen})" if seen else ""
    if wheel_cuda and driver_cuda and driver_cuda[0] < wheel_cuda:
        reason = (f"TensorRT {version} ({wheel} wheel) cannot start: the NVIDIA driver supports CUDA {driver} "
                  f"(driver/CUDA mismatch{detail}); install tensorrt-cu{driver_cuda[0]} (qdqtool[trt] is the CUDA 12 "
                  f"pair) or a driver for CUDA {wheel_cuda} ({DRIVER_FOR_CUDA.get(wheel_cuda, 'newer')} or later)")
        return TensorRTStatus(False, reason, TrtProblem.DRIVER_MISMATCH, version, major)
    reason = (f"TensorRT {version} sees no usable GPU{detail}; driver/CUDA mismatch? TensorRT wheel: {wheel}, "
              f"driver supports CUDA {driver}")
    return TensorRTStatus(False, reason, TrtProblem.NO_GPU, version, major)
