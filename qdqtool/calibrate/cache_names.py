"""Matching a TensorRT calibration cache's tensor names to an ONNX model's.

A cache keys scales by the tensor names TensorRT's ONNX parser saw: the model's own names, plus helper tensors the
parser made (ONNXTRT_Broadcast_*, ONNXTRT_flattenTensor_*, "(Unnamed Layer* N) ...", bare numbers, and an ONNX
node's or constant's name + "_output" for a layer of its own, e.g. ".../Softmax_output" next to the ONNX tensor
".../Softmax_output_0"), which have no counterpart in the ONNX graph: they are counted and ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from qdqtool.calibrate.trtcache import CalibrationCache
from qdqtool.errors import RangeError
from qdqtool.onnxgraph.graph import GraphView

SHOWN = 8   # names listed in a one-line message


def shown(names: Sequence[str]) -> str:
    """The first few names, and how many more there are."""
    return ", ".join(names[:SHOWN]) + (f" ... ({len(names) - SHOWN} more)" if len(names) > SHOWN else "")


LAYER_OUTPUT = "_output"   # the suffix TensorRT's parser appends to a node's or constant's name for a layer of its own
# names TensorRT's parser gives the tensors it creates itself: (label, test on the name and the model's view), for
# names that are not tensors of the ONNX graph
INTERNAL_NAMES: Tuple[Tuple[str, Callable[[str, GraphView], bool]], ...] = (
    ("ONNXTRT_*", lambda name, view: name.startswith("ONNXTRT_")),
    ("(Unnamed Layer* N)", lambda name, view: re.match(r"\(Unnamed Layer\* \d+\)", name) is not None),
    ("bare numbers", lambda name, view: name.isdigit()),
    (f"<ONNX name>{LAYER_OUTPUT}",
     lambda name, view: name.endswith(LAYER_OUTPUT) and _known(view, name[: -len(LAYER_OUTPUT)])),
)
MIN_MATCHED_SHARE = 0.5   # "mostly another model's names": fewer than half of the non-internal names are the model's


@dataclass(frozen=True)
class CacheMatch:
    """The cache's entries sorted against one model: matched (tensor -> scale), internal, and unknown names."""

    matched: Dict[str, float]
    internal: Dict[str, List[str]]    # INTERNAL_NAMES label -> cache names (in the cache, not in the model)
    unknown: List[str]                # neither the model's tensors nor internal names


def _known(view: GraphView, name: str) -> bool:
    """A node, an activation or a constant of the model by this name."""
    return name in view.by_name or name in view.initializers or view.producer(name) is not None


def internal_label(name: str, view: GraphView) -> Optional[str]:
    return next((label for label, test in INTERNAL_NAMES if test(name, view)), None)


def match_cache(view: GraphView, cache: CalibrationCache) -> CacheMatch:
    """Sort the cache's names: the model's activations (its inputs and node outputs) first, then internal names."""
    activations = set(view.input_names)
    matched: Dict[str, float] = {}
    internal: Dict[str, List[str]] = {}
    unknown: List[str] = []
    for name, scale in cache.scales.items():
        if name in activations or view.producer(name) is not None:
            matched[name] = scale
        elif internal_label(name, view) is not None:
            internal.setdefault(internal_label(name, view), []).append(name)
        else:
            unknown.append(name)
    return CacheMatch(matched, internal, unknown)


def refuse_other_model(match: CacheMatch, source: str) -> None:
    """A cache whose names are mostly not this model's (another model, another export of it) is refused."""
    named = len(match.matched) + len(match.unknown)
    if named == 0:
        raise RangeError(f"{source} holds only TensorRT-internal names, none of this model's tensors; give the cache "
                         "TensorRT wrote for this ONNX file", settings=("from_cache",))
    if len(match.matched) < MIN_MATCHED_SHARE * named:
        raise RangeError(f"{source}: only {len(match.matched)} of its {named} tensor names are tensors of this model "
                         f"(e.g. {shown(match.unknown[:3])} are not); it is the cache of another model or another "
                         "export of this one: give the cache TensorRT wrote for this ONNX file",
                         settings=("from_cache",))
