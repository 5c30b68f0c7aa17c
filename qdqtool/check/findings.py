"""What `check` says about one node or one Q/DQ pair (Finding) and about a model (CheckReport), and the text table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from qdqtool.onnxgraph.qdqview import Problem
from qdqtool.trt.engine_model import EngineModel
from qdqtool.trt.kinds import KIND_GATES, Cause, Gate, Kind


@dataclass(frozen=True)
class Finding:
    """What TensorRT will do with one node (or one Q/DQ pair), and why. nodes: the layer's ONNX nodes; reason: for
    people; cause, tensors, scales and quantizers (Q node names): for code."""

    kind: Kind
    node: str
    op_type: str
    reason: str
    nodes: tuple[str, ...] = ()
    cause: Cause = Cause.NONE
    tensors: tuple[str, ...] = ()
    scales: tuple[float, ...] = ()
    quantizers: tuple[str, ...] = ()

    @property
    def gate(self) -> Gate | None:
        return KIND_GATES[self.kind]


@dataclass(frozen=True)
class CheckReport:
    findings: tuple[Finding, ...]
    problems: tuple[Problem, ...]
    engine: EngineModel | None = field(default=None, compare=False, repr=False)   # the predicted engine

    def counts(self) -> dict[str, int]:
        """Findings per gate name (float-add, float-concat, requant-concat, reformat, float-conv), zeros included;
        keyed by plain strings, so the dict prints and compares as a script expects."""
        counted = Counter(f.gate for f in self.findings if f.gate)
        return {str(gate): counted.get(gate, 0) for gate in dict.fromkeys(g for g in KIND_GATES.values() if g)}

    def kinds(self) -> dict[Kind, int]:
        return dict(sorted(Counter(f.kind for f in self.findings).items()))

    def of_kind(self, *kinds: Kind) -> list[Finding]:
        return [f for f in self.findings if f.kind in kinds]

    def to_json(self) -> dict[str, object]:
        return {
            "counts": self.counts(),
            "kinds": self.kinds(),
            "findings": [{"kind": f.kind, "node": f.node, "op_type": f.op_type, "reason": f.reason,
                          "nodes": list(f.nodes), "gate": f.gate, "cause": f.cause, "tensors": list(f.tensors),
                          "scales": list(f.scales), "quantizers": list(f.quantizers)} for f in self.findings],
            "problems": [{"kind": p.kind, "node": p.node, "message": p.message} for p in self.problems],
        }


def report_lines(report: CheckReport, only_problems: bool = False) -> list[str]:
    """A human table: one line per finding (outcome, op, node, reason), then the counts and problems."""
    shown = [f for f in report.findings if f.gate or not only_problems]
    width = max((len(f.node) for f in shown), default=4)
    lines = [f"{'outcome':<15} {'op':<16} {'node':<{width}}  reason"]
    for f in sorted(shown, key=lambda f: (f.gate is None, f.kind, f.node)):
        lines.append(f"{f.kind:<15} {f.op_type:<16} {f.node:<{width}}  {f.reason}")
    lines.append("counts: " + ", ".join(f"{gate} {n}" for gate, n in report.counts().items()))
    lines.append("kinds: " + ", ".join(f"{kind} {n}" for kind, n in report.kinds().items()))
    for problem in report.problems:
        lines.append(f"problem: {problem.kind}: {problem.message}")
    return lines
