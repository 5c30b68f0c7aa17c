"""The one place that creates ONNX Runtime sessions (CPU provider, or CUDA when onnxruntime-gpu sees a GPU)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import onnx

from qdqtool.errors import ModelError, first_line
from qdqtool.weightstore import (
    MIN_EXTERNAL_BYTES,
    WeightSource,
    needs_external_data,
    needs_lean_session,
    write_with_external_data,
)

log = logging.getLogger("qdqtool")

ModelSource = Union[str, Path, bytes, onnx.ModelProto]


def _ort():
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


def onnxruntime_version() -> str:
    return str(_ort().__version__)


def available_providers() -> List[str]:
    return list(_ort().get_available_providers())


def default_providers(prefer_gpu: bool = True) -> List[str]:
    """CUDA first when onnxruntime-gpu is installed and a GPU answers; CPU always last."""
    have = available_providers()
    chosen = [p for p in ("CUDAExecutionProvider",) if prefer_gpu and p in have]
    return [*chosen, "CPUExecutionProvider"]


def create_session(
    model: ModelSource,
    *,
    optimize: bool = True,
    optimized_model_path: Optional[Union[str, Path]] = None,
    providers: Optional[Sequence[str]] = None,
    intra_op_threads: int = 0,
    weights: Optional[WeightSource] = None,
    memory_arena: bool = True,
):
    """An InferenceSession; optimize=False keeps every tensor name (for calibration and comparisons);
    memory_arena=False frees each run's tensors after it (for one of many sessions alive at once).

    weights: model is a skeleton whose detached initializers get their bytes from weights(tensor), one at a time,
    as the model is written to a temp folder (with its data file) that ONNX Runtime opens from the path; the
    complete model never exists as one proto or one bytes object in this process."""
    ort = _ort()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = intra_op_threads
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    large = isinstance(model, onnx.ModelProto) and needs_external_data(model)
    options.enable_cpu_mem_arena = memory_arena
    if _lean(model):  # a large model: no pre-packed second copy of the weights, and tensors made while running
        # (dequantized weights of an unfused DequantizeLinear) freed after each run, not kept by the memory arena
        options.add_session_config_entry("session.disable_prepacking", "1")
        options.enable_cpu_mem_arena = False
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
        if large:  # the optimised graph is over 2 GB too: its weights go to a data file beside it
            options.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                             Path(optimized_model_path).name + ".data")
            options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                             str(MIN_EXTERNAL_BYTES))
    chosen = list(providers or default_providers())
    if large or weights is not None:  # a proto over 2 GB cannot become bytes: ORT reads it from a file set
        with tempfile.TemporaryDirectory(prefix="qdqtool-session-") as folder:
            path = Path(folder) / "model.onnx"
            write_with_external_data(model, path, "model.onnx.data", durable=False, weights=weights)
            return _session(ort, str(path), options, chosen)
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    elif isinstance(model, Path):
        model = str(model)
    return _session(ort, model, options, chosen)


def _lean(model: ModelSource) -> bool:
    if isinstance(model, onnx.ModelProto):
        return needs_lean_session(model)
    if isinstance(model, (str, Path)):
        try:   # the model read without its weights: shapes are enough
            return needs_lean_session(onnx.load(str(model), load_external_data=False))
        except Exception:  # noqa: BLE001 - an unreadable model fails in ONNX Runtime itself, with its own message
            return False
    return False


def _session(ort, model: Union[str, bytes], options, providers: List[str]):
    try:
        return ort.InferenceSession(model, options, providers=providers)
    except Exception as exc:  # ORT raises its own exception types for invalid graphs
        raise ModelError(f"ONNX Runtime cannot load the model: {first_line(exc)}") from exc


def check_session_opens(path: Union[str, Path]) -> None:
    """Validator for atomic writes: the written model must open in ONNX Runtime."""
    create_session(Path(path), optimize=False, providers=["CPUExecutionProvider"])


def run(session, feeds: Dict[str, np.ndarray], outputs: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    names = list(outputs) if outputs is not None else [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))
