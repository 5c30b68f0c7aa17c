"""One self-contained HTML page of an engine as TensorRT runs it (predicted by `check`, or read by `report`): the
page's data (layers, marks, edges, layout segments, gates, differences) as JSON, the script and the layout library
inlined. Nothing is fetched when the page opens."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from qdqtool.fileio import write_text_atomically
from qdqtool.trt.engine_model import EngineLayer, EngineModel, LayerRole, NodeDifference

from .graph import page_graph

# marks a box carries besides its precision colour; the page styles each, the tests read them back from the DOM
ROLE_MARKS: dict[LayerRole, tuple[str, ...]] = {
    LayerRole.QUANTIZE: ("reformat", "qdq"),
    LayerRole.DEQUANTIZE: ("reformat", "qdq"),
    LayerRole.INPUT_QUANTIZE: ("reformat", "input-quantize"),
    LayerRole.LAYOUT: ("reformat", "layout"),
    LayerRole.CONVERT: ("reformat", "convert"),
}
FLOAT_OP_MARKS = {"Add": "float-add", "Concat": "float-concat"}   # an op of the layer, when its output is float
DIFF_MARK = "diff"
ASSETS = ("dagre.LICENSE", "dagre.min.js", "page.css", "layout.js", "page.js")


@dataclass(frozen=True)
class PageView:
    """One drawing on the page: a label ("engine", "predicted"), its model and the gate counts its command found."""

    label: str
    model: EngineModel
    gates: Mapping[str, int] = field(default_factory=dict)


def layer_marks(layer: EngineLayer) -> tuple[str, ...]:
    marks = ROLE_MARKS.get(layer.role, ())
    if layer.precision.is_float:
        marks += tuple(dict.fromkeys(FLOAT_OP_MARKS[op] for op in layer.op_types if op in FLOAT_OP_MARKS))
    return marks


def int8_coverage(model: EngineModel) -> tuple[int, int]:
    """ONNX nodes in layers that compute in INT8 (fused groups) out of the nodes of every compute layer (fused or
    float): Q/DQ, Reformat and shape layers are left out of both."""
    fused = sum(len(layer.nodes) for layer in model.of_role(LayerRole.FUSED))
    return fused, fused + sum(len(layer.nodes) for layer in model.of_role(LayerRole.FLOAT))


def _layer_data(layer: EngineLayer, differing: set[str]) -> dict[str, object]:
    marks = layer_marks(layer) + ((DIFF_MARK,) if differing.intersection(layer.nodes) else ())
    return {"name": layer.name, "role": str(layer.role), "precision": str(layer.precision), "marks": list(marks),
            "nodes": list(layer.nodes), "ops": list(layer.op_types),
            "inputs": [[p.name, str(p.precision)] for p in layer.inputs],
            "outputs": [[p.name, str(p.precision)] for p in layer.outputs],
            "reason": layer.reason, "scales": [[t, s] for t, s in layer.scales], "fix": layer.fix}


def _view_data(view: PageView, differing: set[str]) -> dict[str, object]:
    graph = page_graph(view.model)
    covered, compute = int8_coverage(view.model)
    return {"label": view.label, "source": view.model.source, "notes": list(view.model.notes),
            "gates": {str(k): int(v) for k, v in view.gates.items()}, "roles": view.model.roles(),
            "coverage": [covered, compute], "tensors_known": graph.tensors_known,
            "layers": [_layer_data(layer, differing) for layer in view.model.layers],
            "edges": [[e.source, e.target, e.tensor, str(e.precision)] for e in graph.edges],
            "segments": [[list(chain) for chain in segment] for segment in graph.segments]}


def page_data(title: str, views: Sequence[PageView], differences: Sequence[NodeDifference] = ()) -> dict[str, object]:
    differing = {d.node for d in differences}
    return {"title": title, "views": [_view_data(view, differing) for view in views],
            "differences": [{"node": d.node, "what": d.what, "expected": d.expected, "predicted": d.predicted}
                            for d in differences]}


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _script_text(text: str) -> str:
    """Text safe inside <script>: no '</' that could close the element."""
    return text.replace("</", "<\\/")


def engine_page_html(title: str, views: Sequence[PageView], differences: Sequence[NodeDifference] = ()) -> str:
    """The page as one HTML string: the first view is shown first; differences mark the boxes of their nodes."""
    assets = {name: _asset(name) for name in ASSETS}
    data = _script_text(json.dumps(page_data(title, views, differences), separators=(",", ":")))
    licence = assets["dagre.LICENSE"].replace("*/", "* /")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; script-src \'unsafe-inline\' '
        'blob:; worker-src blob:; style-src \'unsafe-inline\'; img-src data:">',
        f"<title>{html.escape(title)}</title>", f"<style>{assets['page.css']}</style></head>",
        '<body data-state="loading" data-errors="">',
        f'<script type="application/json" id="qdq-data">{data}</script>',
        f'<script id="qdq-layout-lib">/* @dagrejs/dagre 3.1.4, MIT licence:\n{licence}*/\n'
        f"{_script_text(assets['dagre.min.js'])}</script>",
        f'<script id="qdq-layout">{_script_text(assets["layout.js"])}</script>',
        f"<script>{_script_text(assets['page.js'])}</script>", "</body></html>", ""])


def write_engine_page(path: os.PathLike | str, title: str, views: Sequence[PageView],
                      differences: Sequence[NodeDifference] = ()) -> Path:
    """Render and write atomically (a temp file beside path, then renamed): never a partial page."""
    return write_text_atomically(path, engine_page_html(title, views, differences))
