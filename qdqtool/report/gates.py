"""The gate vocabulary shared by check, build and report: a gate fails when its count is above zero."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from qdqtool.errors import ConfigError
from qdqtool.trt.kinds import Gate

GATES: dict[Gate, str] = {
    Gate.FLOAT_ADD: "an Add left outside INT8 (a residual that did not fuse into an INT8 convolution, or a float Add)",
    Gate.FLOAT_CONCAT: "a Concat running in float",
    Gate.REQUANT_CONCAT: "a Concat whose inputs need a requantize or Reformat (input scales differ from the output's)",
    Gate.REFORMAT: "a Q/DQ TensorRT runs as its own Reformat layer (not fused; graph-input quantizers and layout "
                   "copies not counted) or a requantize",
    Gate.FLOAT_CONV: "a convolution, Gemm or MatMul not running in INT8",
}
NAME_ONLY_GATES = frozenset({Gate.REFORMAT})  # the only gate a names-only layer file (no precisions) can judge
# gates only a report compared with the Q/DQ model it came from can judge
COMPARISON_GATES: dict[Gate, str] = {
    Gate.MISMATCH: "an ONNX node whose predicted layer, role or precision differs from the engine's (the report "
                   "compared with its model)",
}  # the only gate a names-only layer file (no precisions) can judge

ONNXRUNTIME_BACKEND = "onnxruntime"          # how an ONNX Runtime build's report names its backend (first word)


def measures_tensorrt(report) -> bool:
    """Whether a PrecisionReport holds TensorRT's layers (an engine or its layer file), not an ONNX Runtime build's
    nodes, which say nothing about TensorRT's fusions, Reformats or float Adds."""
    return report.backend.split(" ", 1)[0] != ONNXRUNTIME_BACKEND


def parse_gates(text: str, allowed: Mapping[str, str] = GATES) -> tuple[str, ...]:
    """'float-add,reformat' -> ('float-add', 'reformat'); empty text -> (); an unknown name raises ConfigError."""
    names = [part.strip().lower() for part in (text or "").split(",") if part.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ConfigError(f"unknown gate(s) {', '.join(unknown)}; choose from: {', '.join(allowed)}",
                          settings=("fail_on",))
    return tuple(dict.fromkeys(Gate(name) for name in names))


def violated_gates(counts: Mapping[str, int], gates: Iterable[str]) -> list[str]:
    """The gates whose count is above zero, in the order given. A gate missing from counts is not violated."""
    return [gate for gate in gates if counts.get(gate, 0) > 0]


def describe_violations(counts: Mapping[str, int], gates: Iterable[str]) -> list[str]:
    """One line per violated gate: 'float-add: 3 (an Add left outside INT8 ...)'."""
    described = {**GATES, **COMPARISON_GATES}
    return [f"{gate}: {counts[gate]} ({described[gate]})" for gate in violated_gates(counts, gates)]
