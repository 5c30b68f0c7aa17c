"""Comparing an engine's real layers with `qdqtool check`'s prediction for the ONNX model it came from: per gate
(counts and node names) and per ONNX node (the layer it falls in, its role and precision: trt.engine_model)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from qdqtool.report.engine import engine_from_layers
from qdqtool.report.gates import GATES, NAME_ONLY_GATES, measures_tensorrt
from qdqtool.report.layerinfo import onnx_nodes_of
from qdqtool.report.layers import PrecisionReport
from qdqtool.trt.engine_model import EngineModel, NodeDifference, compared_nodes, node_differences
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


@dataclass(frozen=True)
class EngineComparison:
    """A report compared with its model: the gate rows and the per-node diff of the predicted engine against the
    built one."""

    gates: tuple[GateComparison, ...]
    differences: tuple[NodeDifference, ...]
    compared: int                        # ONNX nodes compared
    precision_known: bool                # False: names only, precisions were not compared

    def counts(self) -> dict[str, int]:
        return {Gate.MISMATCH: len(self.differences)}

    def to_json(self) -> dict[str, object]:
        return {"gates": [asdict(row) for row in self.gates], "nodes_compared": self.compared,
                "precision_known": self.precision_known, "differences": [asdict(d) for d in self.differences]}


def compare_engines(report: PrecisionReport, prediction, predicted: EngineModel) -> EngineComparison:
    """Gate rows (compare_with_prediction) and the per-node diff of `predicted` (check.predict_engine) against the
    engine the report describes. With names only, precision differences are not judged (only groups and roles)."""
    engine = engine_from_layers(report)
    nodes = compared_nodes(predicted, engine)
    differences = node_differences(predicted, engine, nodes)
    if not report.precision_known:
        differences = [d for d in differences if d.what != "precision"]
    return EngineComparison(tuple(compare_with_prediction(report, *prediction_by_gate(prediction))),
                            tuple(differences), len(nodes), report.precision_known)
