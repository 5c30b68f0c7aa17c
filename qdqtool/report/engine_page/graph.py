"""The drawing's graph, read from an EngineModel: edges (a layer's input tensor comes from the layer that writes it),
and the cuts that let a layered layout run piece by piece.

Pure analysis, no HTML. A layered layout (dagre) is superlinear and recursive: on a 2,000-layer residual chain in one
piece it overflows the browser's stack (docs/engine-page.md). A network run in execution order has cut layers: after
them no tensor written earlier is read later, so the drawing above and below a cut is laid out apart and stacked.
Inside a segment, a chain (each link the only reader of its writer and the only writer of its reader) is one node
for the layout, its layers stacked at fixed pitch.
"""

from __future__ import annotations

from dataclasses import dataclass

from qdqtool.trt.engine_model import EngineModel, Precision

SEGMENT_LAYERS = 150   # consecutive pieces are joined into one layout segment up to this many layers


@dataclass(frozen=True)
class Edge:
    """Tensor `tensor` written by layer `source`, read by layer `target` (indices in execution order).
    ordered: no tensor names are known, the edge only says "runs next"."""

    source: int
    target: int
    tensor: str
    precision: Precision
    ordered: bool = False


@dataclass(frozen=True)
class PageGraph:
    edges: tuple[Edge, ...]
    segments: tuple[tuple[tuple[int, ...], ...], ...]   # segment -> chains -> layer indices, top to bottom
    tensors_known: bool                                 # False: edges follow the execution order only


def tensor_edges(model: EngineModel) -> list[Edge]:
    """One edge per (writer, reader, tensor); the tensor's precision where it is written, else where it is read."""
    writer: dict[str, tuple[int, Precision]] = {}
    for index, layer in enumerate(model.layers):
        for port in layer.outputs:
            if port.name:
                writer.setdefault(port.name, (index, port.precision))
    edges, seen = [], set()
    for index, layer in enumerate(model.layers):
        for port in layer.inputs:
            source = writer.get(port.name) if port.name else None
            if source is None or source[0] == index or (source[0], index, port.name) in seen:
                continue
            seen.add((source[0], index, port.name))
            precision = source[1] if source[1] != Precision.UNKNOWN else port.precision
            edges.append(Edge(source[0], index, port.name, precision))
    return edges


def order_edges(model: EngineModel) -> list[Edge]:
    """Layer i -> layer i+1: the drawing of a layer file with names only (no tensors)."""
    return [Edge(i, i + 1, "", Precision.UNKNOWN, ordered=True) for i in range(len(model.layers) - 1)]


def cut_after(count: int, edges: list[Edge]) -> list[bool]:
    """cut[i]: no edge from a layer before i reaches past i (only layer i's own outputs cross below it)."""
    reach = [-1] * count
    for edge in edges:
        if edge.target > edge.source:
            reach[edge.source] = max(reach[edge.source], edge.target)
    cuts, furthest = [], -1
    for index in range(count):
        cuts.append(furthest <= index)
        furthest = max(furthest, reach[index])
    return cuts


def segments_of(count: int, edges: list[Edge], limit: int = SEGMENT_LAYERS) -> list[list[int]]:
    """Layer indices cut into pieces at the cut layers, consecutive pieces joined up to `limit` layers."""
    pieces, piece = [], []
    for index, cut in enumerate(cut_after(count, edges)):
        piece.append(index)
        if cut:
            pieces.append(piece)
            piece = []
    if piece:
        pieces.append(piece)
    segments: list[list[int]] = []
    for piece in pieces:
        if segments and len(segments[-1]) + len(piece) <= limit:
            segments[-1].extend(piece)
        else:
            segments.append(list(piece))
    return segments


def chains_of(segment: list[int], edges: list[Edge]) -> list[tuple[int, ...]]:
    """The segment's layers as chains: a link a -> b when b is a's only reader and a is b's only writer."""
    members = set(segment)
    readers: dict[int, set[int]] = {i: set() for i in segment}
    writers: dict[int, set[int]] = {i: set() for i in segment}
    for edge in edges:
        if edge.source in members and edge.target in members:
            readers[edge.source].add(edge.target)
            writers[edge.target].add(edge.source)
    following = {a: next(iter(r)) for a, r in readers.items() if len(r) == 1 and len(writers[next(iter(r))]) == 1}
    linked = set(following.values())
    chains = []
    for head in segment:
        if head in linked:
            continue
        chain = [head]
        while chain[-1] in following:
            chain.append(following[chain[-1]])
        chains.append(tuple(chain))
    covered = {i for chain in chains for i in chain}
    return chains + [(i,) for i in segment if i not in covered]   # a backward cycle: each layer on its own


def page_graph(model: EngineModel, limit: int = SEGMENT_LAYERS) -> PageGraph:
    edges = tensor_edges(model)
    known = bool(edges) or len(model.layers) < 2
    if not known:
        edges = order_edges(model)
    segments = segments_of(len(model.layers), edges, limit)
    return PageGraph(tuple(edges), tuple(tuple(chains_of(s, edges)) for s in segments), known)
