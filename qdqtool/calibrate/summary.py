"""Plain-data summaries of a placement plan, shared by calibrate, fix-residuals and check (JSON-ready dicts)."""

from __future__ import annotations

from collections import Counter
from typing import Dict, List

from qdqtool.placement.plan import Decision, PlacementPlan

RULE_LABELS = {
    "weighted": "weighted ops (Conv/ConvTranspose/Gemm/MatMul)",
    "residual-add": "residual Adds",
    "standalone-add": "standalone Adds",
    "concat": "Concats",
}


def decision_dict(decision: Decision) -> Dict[str, object]:
    return {"node": decision.node, "op_type": decision.op_type, "rule": decision.rule,
            "outcome": decision.outcome, "reason": decision.reason}


def plan_summary(plan: PlacementPlan) -> Dict[str, object]:
    """Counts per rule and outcome, and every node left float with its reason."""
    counts = Counter((d.rule, d.outcome) for d in plan.decisions)
    per_rule: Dict[str, Dict[str, int]] = {}
    for (rule, outcome), n in sorted(counts.items()):
        per_rule.setdefault(rule, {})[outcome] = n
    left_float: List[Dict[str, object]] = [decision_dict(d) for d in plan.decisions if d.outcome == "float"]
    return {
        "counts": per_rule,
        "quantized_activations": len(plan.quantized_tensors()),
        "quantized_weights": len({w.tensor for w in plan.weights}),
        "shared_scale_groups": len(plan.groups),
        "residual_mode": plan.config.residual_mode,
        "left_float": left_float,
    }


def summary_lines(summary: Dict[str, object]) -> List[str]:
    """Human lines for a terminal."""
    lines = []
    counts = summary["counts"]
    for rule, label in RULE_LABELS.items():
        if rule in counts:
            parts = ", ".join(f"{n} {outcome}" for outcome, n in counts[rule].items())
            lines.append(f"{label}: {parts}")
    lines.append(f"quantizers: {summary['quantized_activations']} activation tensors, "
                 f"{summary['quantized_weights']} weights, {summary['shared_scale_groups']} shared-scale groups; "
                 f"residual mode: {summary['residual_mode']}")
    for item in summary["left_float"]:
        lines.append(f"  float: {item['op_type']} {item['node']}: {item['reason']}")
    return lines
