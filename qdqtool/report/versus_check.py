"""Comparing an engine's real layer precisions with `qdqtool check`'s prediction for the ONNX model it came from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from qdqtool.report.gates import GATES, NAME_ONLY_GATES, measures_tensorrt
from qdqtool.report.layerinfo import onnx_nodes_of
from qdqtool.report.layers import PrecisionReport
from qdqtool.trt.kinds import Gate


@dataclass(frozen=True)
class GateComparison:
    gate: str
    predicted: int
    observed: int | None                  # None: the layer file cannot tell (names only)
    predicted_only: tuple[str, ...] = ()  # ONNX nodes predicted in this state but not seen so in the engine
    observed_only: tuple[str, ...] = ()

    @property
    def agrees(self) -> bool | None:
        return None if self.observed is None else self.predicted == self.observed


def _node_names(names: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for name in names:
        found.update(onnx_nodes_of(name) or (name,))
    return found


def compare_with_prediction(report: PrecisionReport, predicted_counts: Mapping[str, int],
                            predicted_nodes: Mapping[str, Iterable[str]]) -> list[GateComparison]:
    """One row per gate: predicted vs observed count; for Adds and Concats also the node names that differ. An ONNX
    Runtime build observes none of TensorRT's gates (observed None): its CPU nodes are not TensorRT's layers."""
    observed_counts = report.summary.gate_counts()
    observed_nodes = {Gate.FLOAT_ADD: report.summary.float_adds, Gate.FLOAT_CONCAT: report.summary.float_concats}
    rows = []
    for gate in GATES:
        known = measures_tensorrt(report) and (report.precision_known or gate in NAME_ONLY_GATES)
        predicted = _node_names(predicted_nodes.get(gate, ()))
        seen = _node_names(observed_nodes.get(gate, ()))
        differs = gate in observed_nodes and known
        rows.append(GateComparison(
            gate=gate,
            predicted=int(predicted_counts.get(gate, 0)),
            observed=observed_counts[gate] if known else None,
            predicted_only=tuple(sorted(predicted - seen)) if differs else (),
            observed_only=tuple(sorted(seen - predicted)) if differs else (),
        ))
    return rows


def prediction_by_gate(prediction) -> tuple[dict[str, int], dict[str, list[str]]]:
    """A check report (qdqtool.check.predict.CheckReport) as counts per gate and, per gate, the nodes it names."""
    nodes: dict[str, list[str]] = {}
    for finding in prediction.findings:
        if finding.gate:
            nodes.setdefault(finding.gate, []).append(finding.node)
    return prediction.counts(), nodes
