"""Predicted (check) vs observed (engine layer info) per gate, with the ONNX node names that differ."""

from __future__ import annotations

from qdqtool.report.layerinfo import read_layer_info
from qdqtool.report.versus_check import compare_with_prediction


def test_compare_counts_and_names(trt_fixtures):
    report = read_layer_info(trt_fixtures / "trex_mobilenet_qat.graph.json")
    observed_adds = list(report.summary.float_adds)
    predicted_adds = [*observed_adds[:-1], "Add_999"]
    rows = {row.gate: row for row in compare_with_prediction(
        report, {"float-add": len(predicted_adds), "reformat": 16}, {"float-add": predicted_adds})}
    add = rows["float-add"]
    assert add.predicted == add.observed == 10 and add.agrees
    assert add.predicted_only == ("Add_999",) and add.observed_only == (observed_adds[-1],)
    assert rows["reformat"].agrees and rows["float-conv"].predicted == 0


def test_names_only_file_cannot_observe_precision_gates(trt_fixtures):
    report = read_layer_info(trt_fixtures / "detr_names_only_layer_info.json")
    rows = {row.gate: row for row in compare_with_prediction(report, {"float-add": 3}, {})}
    assert rows["float-add"].observed is None and rows["float-add"].agrees is None
    assert rows["reformat"].observed == 0   # 247 layout copies ("Reformatting CopyNode"), no Q/DQ layer
