"""What a Q/DQ plan made of a TensorRT calibration cache: which entries became scales, and why the others did not.

TensorRT <= 10's implicit INT8 applied a cache's scale to every tensor it had; explicit Q/DQ quantizes only where
the plan puts a quantizer, so most entries of a cache (convolution outputs inside fused epilogues, decode heads,
float Concats, graph outputs) set no scale. Pure: a plan, a graph view and the matched entries in, a dict out.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from qdqtool.calibrate.cache_names import CacheMatch, shown
from qdqtool.calibrate.trtcache import CalibrationCache
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.placement.plan import Decision, PlacementPlan
from qdqtool.trt.kinds import Cause, Outcome, Rule
from qdqtool.trt.rules import DECODE_OPS
from qdqtool.trt.scales import amax_from_scale

QUANTIZER = "quantizer scale"
GROUP_MEMBER = "shared-scale group member"


class _Uses:
    """The lookups the reasons below need: the plan's decision per node."""

    def __init__(self, view: GraphView, plan: PlacementPlan):
        self.view = view
        self.decision: Dict[str, Decision] = {d.node: d for d in plan.decisions}

    def producer_decision(self, tensor: str) -> Optional[Decision]:
        node = self.view.producer(tensor)
        return self.decision.get(node.name) if node is not None else None

    def consumer_decisions(self, tensor: str) -> List[Decision]:
        return [self.decision[c.name] for c, _ in self.view.consumers(tensor) if c.name in self.decision]

    def next_to_decode(self, tensor: str) -> bool:
        nodes = [c for c, _ in self.view.consumers(tensor)] + [self.view.producer(tensor)]
        decided = [*self.consumer_decisions(tensor), self.producer_decision(tensor)]
        return (any(n is not None and n.op_type in DECODE_OPS for n in nodes)
                or any(d is not None and d.cause == Cause.DECODE for d in decided))


# Why a matched entry sets no scale: (reason, test), the first test that holds gives the reason
UNUSED_REASONS: Tuple[Tuple[str, Callable[[_Uses, str], bool]], ...] = (
    ("graph output (stays float)", lambda u, t: u.view.is_graph_output(t)),
    ("decode head (stays float, rule 6)", _Uses.next_to_decode),
    ("read by a Concat kept float (rule 4)",
     lambda u, t: any(d.rule == Rule.CONCAT and d.outcome == Outcome.FLOAT for d in u.consumer_decisions(t))),
    ("convolution side of a residual Add (fused into the convolution, rule 2)",
     lambda u, t: any(d.rule == Rule.RESIDUAL_ADD and d.outcome == Outcome.FUSED_INT8 and t not in d.tensors
                      for d in u.consumer_decisions(t))),
    ("output of an INT8 convolution (its epilogue fuses; the next quantizer sets the scale)",
     lambda u, t: (d := u.producer_decision(t)) is not None and d.rule == Rule.WEIGHTED and d.outcome == Outcome.INT8),
    ("read by an op left float", lambda u, t: any(d.outcome == Outcome.FLOAT for d in u.consumer_decisions(t))),
)


NO_QUANTIZER = "read only by ops that take no quantizer in the plan"
NO_READER = "read by no node"


def unused_reason(uses: _Uses, tensor: str) -> str:
    found = next((reason for reason, test in UNUSED_REASONS if test(uses, tensor)), None)
    return found or (NO_QUANTIZER if uses.view.consumers(tensor) else NO_READER)


def cache_usage(view: GraphView, plan: PlacementPlan, cache: CalibrationCache, match: CacheMatch,
                tensor_amax: Dict[str, float], source: str, calibrated: Sequence[str]) -> Dict[str, object]:
    """The JSON-ready account of one cache: its entries, how many the plan used (as what), why the rest are unused,
    and the tensors calibrated on data because the cache lacks them."""
    matched = match.matched
    in_groups = {t for group in plan.groups if any(m in tensor_amax for m in group) for t in group}
    used = {t: QUANTIZER if t in tensor_amax else GROUP_MEMBER for t in matched if t in tensor_amax or t in in_groups}
    uses = _Uses(view, plan)
    unused = {t: unused_reason(uses, t) for t in matched if t not in used}
    readers = Counter(c.op_type for t, why in unused.items() if why == NO_QUANTIZER for c, _ in view.consumers(t))
    raised = sorted(t for t in matched if t in tensor_amax and tensor_amax[t] > amax_from_scale(matched[t]))
    return {
        "file": source, "header": cache.header, "tensorrt_version": cache.tensorrt_version,
        "calibrator": cache.calibrator, "entries": len(cache.scales), "matched": len(matched),
        "internal_ignored": {label: len(names) for label, names in match.internal.items()},
        "unknown": list(match.unknown),
        "used": len(used), "used_as": dict(Counter(used.values())),
        "unused": len(unused), "unused_by_reason": dict(Counter(unused.values()).most_common()),
        "unused_entries": unused,
        "unquantized_readers": dict(readers.most_common()),   # op type -> reads of NO_QUANTIZER entries
        "raised_to_group_scale": raised,
        "zero_scales": sorted(t for t in used if matched[t] == 0.0),
        "calibrated_on_data": list(calibrated),
    }


def cache_lines(report: Dict[str, object]) -> List[str]:
    """Human lines for a terminal from cache_usage's dict."""
    internal = report["internal_ignored"]
    ignored = sum(internal.values())
    kinds = ", ".join(f"{label}: {n}" for label, n in internal.items())
    lines = [f"cache {report['file']} ({report['header']}, TensorRT {report['tensorrt_version']}): "
             f"{report['entries']} entries, {report['matched']} name tensors of the model, {ignored} TensorRT-internal "
             f"names ignored{f' ({kinds})' if kinds else ''}, {len(report['unknown'])} unknown names ignored"]
    used_as = ", ".join(f"{n} as {what}" for what, n in report["used_as"].items())
    lines.append(f"cache entries used by the plan: {report['used']}{f' ({used_as})' if used_as else ''}; "
                 f"unused: {report['unused']} (TensorRT <= 10 applied every entry; explicit Q/DQ only where the plan "
                 "quantizes)")
    for reason, n in report["unused_by_reason"].items():
        readers = ", ".join(f"{op} {k}" for op, k in report["unquantized_readers"].items())
        lines.append(f"  unused: {n} {reason}" + (f" ({readers})" if reason == NO_QUANTIZER else ""))
    if report["raised_to_group_scale"]:
        lines.append(f"{len(report['raised_to_group_scale'])} quantized tensors take their shared-scale group's "
                     "larger scale instead of their own entry")
    if report["zero_scales"]:
        lines.append(f"{len(report['zero_scales'])} used entries are 0 (their tensors quantize to 0): "
                     f"{shown(report['zero_scales'])}")
    if report["calibrated_on_data"]:
        names = report["calibrated_on_data"]
        lines.append(f"calibrated on the data ({len(names)} tensors the cache lacks): {shown(names)}")
    return lines
