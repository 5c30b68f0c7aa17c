"""Descent trials that re-run only the part of the model after the scale they move.

A descent trial changes one unit's scale; every node before that scale's first Q/DQ node computes what it computed
for the current choice. So the scale-fed model is cut into segments at a few units' first Q/DQ nodes: a trial of a
unit in segment k runs the model from cut k on, fed with the tensors that cross the cut, kept from an earlier run
whose units before the cut had the same scales. Crossing tensors are kept for the cuts used last, up to KEEP_BYTES
in all; a trial whose cut has none kept runs the whole model and keeps them. The nodes run are the same
kernels on the same inputs, so a trial's outputs are identical to a whole-model run's.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import onnx
from onnx import helper

from qdqtool.runner import create_session

KEEP_BYTES = 256 << 20   # crossing tensors kept for several cuts at once (the descent's units are not in graph order)


@dataclass(frozen=True)
class Cut:
    node: int                     # index of the first node of the segment (graph order)
    crossing: Tuple[str, ...]     # tensors made before the cut and read from it on
    units_before: Tuple[int, ...]  # units whose scales are read before the cut (they decide the crossing tensors)


class SuffixRuns:
    """Cuts of a scale-fed model, the suffix sessions (made when first needed) and the kept crossing tensors."""

    def __init__(self, model: onnx.ModelProto, scale_names: Sequence[Sequence[str]],
                 keep_bytes: int = KEEP_BYTES) -> None:
        self.model, self.keep_bytes = model, keep_bytes
        self.output_names = [o.name for o in model.graph.output]
        nodes = list(model.graph.node)
        made_at = {out: i for i, node in enumerate(nodes) for out in node.output if out}
        first_read = _first_reads(nodes)
        self.unit_node = [min((first_read.get(n, len(nodes)) for n in names), default=len(nodes))
                          for names in scale_names]
        self.types = _tensor_types(model)
        self.cuts = [c for c in _choose_cuts(nodes, made_at, self.unit_node, set(self.output_names))
                     if all(t in self.types for t in c.crossing)] if _cuttable(model) else []
        self._sessions: Dict[int, Tuple[object, Set[str]]] = {}   # cut -> (session, the inputs it reads)
        self._kept: "OrderedDict[int, Tuple[Tuple[float, ...], Dict[int, Dict[str, np.ndarray]]]]" = OrderedDict()

    def whole_model(self) -> onnx.ModelProto:
        """The model that also returns every cut's crossing tensors (for the runs that keep them)."""
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        names = sorted({t for cut in self.cuts for t in cut.crossing} - set(self.output_names))
        model.graph.output.extend(self._typed(name) for name in names)
        return model

    def cut_of(self, unit: int) -> Optional[int]:
        """The last cut at or before the unit's first Q/DQ node (None: before every cut)."""
        found = None
        for index, cut in enumerate(self.cuts):
            if cut.node <= self.unit_node[unit]:
                found = index
        return found

    def kept(self, cut: int, amaxes: Sequence[float], feed_index: int) -> Optional[Dict[str, np.ndarray]]:
        """The crossing tensors of `cut` for this feed, if kept from a run with the same scales before the cut."""
        key, tensors = self._kept.get(cut, (None, {}))
        if key != self._key(cut, amaxes) or feed_index not in tensors:
            return None
        self._kept.move_to_end(cut)
        return tensors[feed_index]

    def keep(self, cut: int, amaxes: Sequence[float], feed_index: int, tensors: Dict[str, np.ndarray]) -> None:
        """Keep one feed's crossing tensors of `cut` (those kept for other scales before the cut are dropped), then
        drop the least recently used cuts' tensors while all kept ones exceed `keep_bytes`."""
        fresh = self._key(cut, amaxes)
        key, kept = self._kept.pop(cut, (None, {}))
        self._kept[cut] = (fresh, {**(kept if key == fresh else {}), feed_index: tensors})
        while len(self._kept) > 1 and sum(a.nbytes for _, by_feed in self._kept.values() for t in by_feed.values()
                                          for a in t.values()) > self.keep_bytes:
            self._kept.popitem(last=False)

    def run(self, cut: int, given: Mapping[str, np.ndarray], crossing: Mapping[str, np.ndarray]) -> List[np.ndarray]:
        """The model's outputs from the cut on (`given`: the feed and the scales; those the suffix reads are used)."""
        if cut not in self._sessions:
            session = create_session(self._suffix_model(self.cuts[cut]), optimize=False, memory_arena=False)
            self._sessions[cut] = (session, {i.name for i in session.get_inputs()})
        session, wanted = self._sessions[cut]
        return session.run(self.output_names, {**{k: v for k, v in given.items() if k in wanted}, **crossing})

    def _key(self, cut: int, amaxes: Sequence[float]) -> Tuple[float, ...]:
        return tuple(amaxes[u] for u in self.cuts[cut].units_before)

    def _typed(self, name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, self.types[name], None)

    def _suffix_model(self, cut: Cut) -> onnx.ModelProto:
        graph = self.model.graph
        nodes = list(graph.node)[cut.node:]
        read = {name for node in nodes for name in node.input if name}
        inputs = [i for i in graph.input if i.name in read] + [self._typed(name) for name in cut.crossing]
        suffix = helper.make_graph(nodes, f"{graph.name}_from_{cut.node}", inputs, list(graph.output),
                                   [t for t in graph.initializer if t.name in read])
        return helper.make_model(suffix, opset_imports=self.model.opset_import, ir_version=self.model.ir_version)


def _cuttable(model: onnx.ModelProto) -> bool:
    """Nodes in graph order (each input made before it is read) and no subgraphs (whose reads of outer tensors
    node inputs do not list)."""
    known = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer} | {""}
    for node in model.graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            return False
        if not set(node.input) <= known:
            return False
        known.update(node.output)
    return True


def _tensor_types(model: onnx.ModelProto) -> Dict[str, int]:
    """Element type of every tensor shape inference can type."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:   # noqa: BLE001 - a model inference cannot type simply gets no cuts
        return {}
    infos = list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)
    return {v.name: v.type.tensor_type.elem_type for v in infos
            if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type}


def _first_reads(nodes: Sequence[onnx.NodeProto]) -> Dict[str, int]:
    first: Dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            if name:
                first.setdefault(name, index)
    return first


def _choose_cuts(nodes: Sequence[onnx.NodeProto], made_at: Mapping[str, int], unit_node: Sequence[int],
                 outputs: Set[str]) -> List[Cut]:
    """About sqrt(units) cuts, evenly spread over the units in graph order; a cut before which an output is made
    (it would not come out of the suffix) is not used."""
    positions = sorted(set(p for p in unit_node if p < len(nodes)))
    if len(positions) < 4:
        return []
    count = max(1, round(math.sqrt(len(positions))))
    chosen = sorted({positions[(k * len(positions)) // (count + 1)] for k in range(1, count + 1)})
    last_read: Dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            if name in made_at:
                last_read[name] = index
    cuts = []
    for node_index in chosen:
        if node_index == 0 or any(made_at.get(o, len(nodes)) < node_index for o in outputs):
            continue
        crossing = tuple(sorted(t for t, made in made_at.items() if made < node_index <= last_read.get(t, -1)))
        before = tuple(u for u, p in enumerate(unit_node) if p < node_index)
        cuts.append(Cut(node_index, crossing, before))
    return cuts
