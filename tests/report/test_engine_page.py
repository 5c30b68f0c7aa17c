"""The engine page without a browser: edges from tensors, cut layers and chains for the layout, marks, coverage, and
a page that fetches nothing."""

from __future__ import annotations

import json
import re

from engine_models import irregular_engine, residual_engine, tiny_engine

from qdqtool.report.engine_page import PageView, engine_page_html, int8_coverage, layer_marks, write_engine_page
from qdqtool.report.engine_page.graph import chains_of, cut_after, page_graph, segments_of, tensor_edges
from qdqtool.trt.engine_model import EngineLayer, EngineModel, LayerRole, NodeDifference, Precision, TensorPort


def _data(text: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="qdq-data">(.*?)</script>', text, re.S)
                      .group(1).replace("<\\/", "</"))


def test_edges_join_a_tensor_writer_to_its_readers_with_the_written_precision():
    edges = {(e.source, e.target, e.tensor): e.precision for e in tensor_edges(tiny_engine())}
    assert edges[(0, 1, "x0")] == Precision.INT8
    assert edges[(0, 2, "x0")] == Precision.INT8      # written INT8 by the input quantizer, read as "fp32" skip
    assert edges[(2, 3, "x2")] == Precision.FP32
    assert edges[(4, 5, "x4")] == Precision.INT8
    assert (3, 6, "x3") in edges and (5, 6, "x5") in edges
    assert len(edges) == 9


def test_cuts_fall_where_no_earlier_tensor_is_read_later():
    # 0 -> 1 -> 2 with 0 -> 2 (a skip), then 2 -> 3: no cut after 0 or 1 (the skip crosses), a cut after 2
    layers = [EngineLayer(f"L{i}", LayerRole.FUSED, inputs=tuple(TensorPort(t) for t in ins),
                          outputs=(TensorPort(f"t{i}"),))
              for i, ins in enumerate([(), ("t0",), ("t1", "t0"), ("t2",)])]
    edges = tensor_edges(EngineModel("x", tuple(layers)))
    assert cut_after(4, edges) == [True, False, True, True]
    assert segments_of(4, edges, limit=1) == [[0], [1, 2], [3]]   # a piece is never split, however small the limit
    assert segments_of(4, edges, limit=10) == [[0, 1, 2, 3]]


def test_chains_link_only_reader_and_only_writer():
    layers = [EngineLayer(f"L{i}", LayerRole.FUSED, inputs=tuple(TensorPort(t) for t in ins),
                          outputs=(TensorPort(f"t{i}"),))
              for i, ins in enumerate([(), ("t0",), ("t1",), ("t2",), ("t2",), ("t3", "t4")])]
    edges = tensor_edges(EngineModel("x", tuple(layers)))
    # L2 has two readers (L3, L4) and L5 two writers: chains 0-1-2, 3, 4, 5
    assert chains_of(list(range(6)), edges) == [(0, 1, 2), (3,), (4,), (5,)]


def test_a_residual_network_is_cut_into_bounded_segments_covering_every_layer_once():
    model = residual_engine(2000)
    graph = page_graph(model)
    laid = [i for segment in graph.segments for chain in segment for i in chain]
    assert sorted(laid) == list(range(2000))
    assert max(sum(len(c) for c in segment) for segment in graph.segments) <= 150
    assert len(graph.segments) > 10


def test_names_only_layers_are_drawn_in_execution_order():
    model = EngineModel("names", tuple(EngineLayer(f"L{i}", LayerRole.OTHER) for i in range(3)))
    graph = page_graph(model)
    assert not graph.tensors_known
    assert [(e.source, e.target, e.ordered) for e in graph.edges] == [(0, 1, True), (1, 2, True)]


def test_marks_say_reformat_kind_and_float_add_or_concat():
    marks = [layer_marks(layer) for layer in tiny_engine().layers]
    assert marks == [("reformat", "input-quantize"), (), ("float-add",), ("reformat", "qdq"), (),
                     ("reformat", "layout"), ("float-concat",), ()]


def test_int8_coverage_counts_nodes_of_compute_layers():
    assert int8_coverage(tiny_engine()) == (6, 7)   # fused: 2 + 2 + 2 nodes; float: Concat_8


def test_the_page_holds_every_layer_its_gates_and_the_differences():
    model = tiny_engine()
    difference = NodeDifference("Add_4", "fused fp32 [Conv_3 + Add_4]", "fused int8 [Conv_3 + Add_4]", "precision")
    data = _data(engine_page_html("t", [PageView("engine", model, {"float-add": 1})], [difference]))
    view = data["views"][0]
    assert [layer["name"] for layer in view["layers"]] == [layer.name for layer in model.layers]
    assert [layer["precision"] for layer in view["layers"]] == [str(layer.precision) for layer in model.layers]
    assert view["gates"] == {"float-add": 1}
    assert view["layers"][2]["marks"] == ["float-add", "diff"]
    assert view["layers"][0]["scales"] == [["images_s", 0.0078]]
    assert view["layers"][2]["fix"] == "quantize the skip input of Add_4 at x0's scale"
    assert data["differences"][0]["node"] == "Add_4"


def test_the_page_fetches_nothing_and_carries_the_layout_library_licence():
    text = engine_page_html("t", [PageView("engine", tiny_engine())])
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', text)
    assert "default-src 'none'" in text                 # the browser itself refuses any fetch
    assert "Permission is hereby granted" in text       # dagre's MIT notice travels with its code
    assert "dagre" in text and "qdqLayout" in text


def test_a_name_cannot_close_the_script_holding_the_data():
    layer = EngineLayer("</script><b>x", LayerRole.FUSED, ("</script>",), ("Conv",))
    text = engine_page_html("t", [PageView("engine", EngineModel("x", (layer,)))])
    assert text.count("</script>") == text.count("<script")
    assert _data(text)["views"][0]["layers"][0]["name"] == "</script><b>x"


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path):
    path = write_engine_page(tmp_path / "page.html", "t", [PageView("engine", tiny_engine())])
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_a_two_thousand_layer_page_stays_under_five_megabytes(tmp_path):
    """YOLOX-sized: 2,000 layers with names and reasons as long as TensorRT's (issue 23: under 5 MB)."""
    path = write_engine_page(tmp_path / "big.html", "2k", [PageView("engine", irregular_engine(2000))])
    assert path.stat().st_size < 5_000_000
    assert len(_data(path.read_text(encoding="utf-8"))["views"][0]["layers"]) == 2000
