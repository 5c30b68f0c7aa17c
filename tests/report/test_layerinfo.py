"""Parsing real TensorRT layer-information files (../shared/fixtures/trt, read in place); counts from SOURCES.md."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from qdqtool.errors import QdqError
from qdqtool.report.layerinfo import (
    onnx_nodes_of,
    parse_layer_info,
    parse_layer_info_text,
    precision_of_format,
    read_layer_info,
)

MOBILENET_FP16_ADDS = "trex_mobilenet_qat.graph.json"
MOBILENET_INT8_ADDS = "trex_mobilenet_v2_residuals_qat.graph.json"
CONTROLNET = "controlnet_fp16_trt86_layerinfo.json"
DETR_NAMES = "detr_names_only_layer_info.json"
IVIT = "ivit_trt10_myelin_per_layer.txt"


@pytest.mark.parametrize("text, expected", [
    ("Thirty-two wide channel vectorized row major Int8 format", "int8"),
    ("Four wide channel vectorized row major Int8 format", "int8"),
    ("Row major linear FP32", "fp32"),
    ("Channel major FP16 format where channel % 8 == 0", "fp16"),
    ("Row major linear Int32", "int32"),
    ("Half", "fp16"),
    ("Float", "fp32"),
    ("UInt8", "uint8"),
    ("N/A due to dynamic shapes", "unknown"),
    ("BFloat16", "bf16"),                     # TensorRT 10/11 DataType names (nvinfer1::DataType, Python bindings)
    ("Row major linear BFloat16 format", "bf16"),
    ("FP8", "fp8"),
    ("FP4E2M1", "fp4"),
])
def test_precision_of_format(text, expected):
    assert precision_of_format(text) == expected


def test_mobilenet_qat_residual_adds_output_fp16(trt_fixtures):
    report = read_layer_info(trt_fixtures / MOBILENET_FP16_ADDS)
    s = report.summary
    assert report.precision_known
    assert s.layer_count == 73
    assert s.layer_type_counts == {"CaskConvolution": 36, "Reformat": 18, "CudaDepthwiseConvolution": 17,
                                   "TiledPooling": 1, "NoOp": 1}
    assert s.precision_counts == {"int8": 53, "fp16": 15, "fp32": 5}
    fp32_types = Counter(layer.layer_type for layer in report.layers if "fp32" in layer.output_precisions)
    assert fp32_types == {"CaskConvolution": 4, "NoOp": 1}
    # 18 Reformat layers: 17 of Origin "QDQ" (the graph input's quantizer, then 16 quantizers run standalone, each
    # FP16/FP32 -> Int8) and one layout copy (Origin "REFORMAT", FP16 -> FP16 before GlobalAveragePool_843)
    assert s.reformat_kinds == {"quantize": 16, "input-quantize": 1, "layout": 1}
    assert s.reformat_count == 16 and s.input_quantizers == ("QuantizeLinear_2",)
    assert s.layout_copies == ("Reformatting CopyNode for Input Tensor 0 to GlobalAveragePool_843",)
    assert s.reformat_conversions == {"fp16->int8": 13, "fp32->int8": 4, "fp16->fp16": 1}
    assert len(s.fused_residual_convs) == 10 and s.fused_int8_residuals == ()
    fused = [layer for layer in report.layers if layer.fused_residual_add]
    # the residual input and the output are float (FP16 for 8 of them, FP32 for the last 2 blocks), never Int8
    assert all(layer.input_precisions[0] == "int8" and len(layer.input_precisions) == 2 for layer in fused)
    assert all(layer.input_precisions[1] in ("fp16", "fp32") and layer.precision in ("fp16", "fp32") for layer in fused)
    assert "features.3.conv.2.weight + QuantizeLinear_138 + Conv_142 + Add_144" in s.fused_residual_convs
    assert len(s.float_adds) == 10 and "Add_144" in s.float_adds
    assert s.gate_counts()["float-add"] == 10 and s.gate_counts()["reformat"] == 16
    assert report.io_tensors == ("input1", "1179")


def test_mobilenet_v2_residuals_stay_int8(trt_fixtures):
    report = read_layer_info(trt_fixtures / MOBILENET_INT8_ADDS)
    s = report.summary
    assert s.layer_count == 58
    assert s.layer_type_counts["CaskConvolution"] == 34 and s.layer_type_counts["FusedConvActConvolution"] == 2
    assert s.precision_counts == {"int8": 53, "fp16": 3, "fp32": 2}
    # 3 Reformats: the graph input's quantizer, a layout copy before GlobalAveragePool_747 and QuantizeLinear_757
    # after that float pool: only the last is a standalone Q/DQ the `reformat` gate counts
    assert s.reformat_kinds == {"input-quantize": 1, "layout": 1, "quantize": 1}
    assert s.reformat_count == 1 and s.standalone_qdq == ("QuantizeLinear_757",)
    assert len(s.fused_residual_convs) == 10
    assert s.fused_int8_residuals == s.fused_residual_convs
    assert "features.3.conv.2.weight + QuantizeLinear_119 + Conv_121 + Add_123" in s.fused_int8_residuals
    assert s.float_adds == () and s.gate_counts()["float-add"] == 0


def test_weight_type_is_not_output_precision(trt_fixtures):
    payload = json.loads((trt_fixtures / MOBILENET_FP16_ADDS).read_text())
    report = parse_layer_info(payload)
    weights_int8 = {entry["Name"] for entry in payload["Layers"] if entry.get("Weights", {}).get("Type") == "Int8"}
    assert len(weights_int8) == 53
    assert any(layer.precision != "int8" for layer in report.layers if layer.name in weights_int8)


def test_controlnet_fp16_engine_reformats_and_float_fallbacks(trt_fixtures):
    report = read_layer_info(trt_fixtures / CONTROLNET)
    s = report.summary
    assert s.layer_count == 389
    assert s.precision_counts == {"fp16": 326, "fp32": 62, "int32": 1}
    fp32_types = Counter(layer.layer_type for layer in report.layers if "fp32" in layer.output_precisions)
    assert fp32_types == {"NoOp": 26, "Reformat": 22, "PluginV2": 5, "Scale": 5, "ElementWise": 4}
    # 58 Reformat + 21 MyelinReformat layers, no Q/DQ (an FP16 engine): same-type copies are layout, the rest convert
    assert s.reformat_count == 0 and s.reformat_kinds == {"layout": 49, "convert": 30}
    assert s.reformat_conversions == {"fp16->fp16": 49, "fp16->fp32": 22, "fp32->fp16": 7, "int32->fp16": 1}
    assert len(s.fused_residual_convs) == 18 and s.fused_int8_residuals == ()
    assert "/input_blocks.0/input_blocks.0.0/Conv + /Add" in s.fused_residual_convs
    assert "/Add" in s.float_adds
    assert len(s.float_convs) == 64  # 32 CaskConvolution + 32 CaskGemmConvolution, all FP16
    assert len(report.io_tensors) == 17
    first_fused = next(layer for layer in report.layers if layer.fused_residual_add)
    assert first_fused.onnx_nodes == ("/input_blocks.0/input_blocks.0.0/Conv", "/Add")  # from Metadata (\u001e)
    assert first_fused.tactic.startswith("sm80_xmma_fprop")


def test_names_only_file_gives_names_and_unknown_precision(trt_fixtures):
    report = read_layer_info(trt_fixtures / DETR_NAMES)
    s = report.summary
    assert not report.precision_known
    assert any("names only" in note for note in report.notes)
    assert s.layer_count == 840 and s.precision_counts == {"unknown": 840}
    assert all(layer.precision == "unknown" and layer.name for layer in report.layers)
    assert s.reformat_count == 0 and s.reformat_kinds == {"layout": 247}   # "Reformatting CopyNode ...", no Q/DQ
    assert len(s.fused_residual_convs) == 53
    assert s.float_adds == () and s.float_convs == ()  # unknown precision is never counted as float
    assert report.io_tensors == ("image", "boxes", "logits", "classes")


def test_ivit_per_layer_text_blocks(trt_fixtures):
    report = read_layer_info(trt_fixtures / IVIT)
    s = report.summary
    assert s.layer_count == 6
    assert s.layer_type_counts == {"kgen": 3, "gemm": 2, "shape_call": 1}
    assert s.precision_counts == {"fp32": 3, "int8": 2, "unknown": 1}
    by_name = {layer.name: layer for layer in report.layers}
    assert by_name["/fc1/Gemm_myl0_2"].precision == "int8" and "i8i8" in by_name["/fc1/Gemm_myl0_2"].tactic
    assert by_name["/fc2/Gemm_myl0_4"].precision == "fp32"
    assert s.float_convs == ("/fc2/Gemm_myl0_4",)
    assert by_name["/fc1/Gemm_myl0_2"].onnx_nodes[0] == "/fc1/Gemm"  # from Metadata (\u001f separators)


def test_trt11_split_fields_and_io_tensors():
    layer = {
        "Name": "Conv_1 + Add_2", "LayerType": "CaskConvolution", "TacticName": "sm90_i8i8",
        "Inputs": [{"Name": "x", "Format": "Thirty-two wide channel vectorized row major format", "DataType": "Int8"},
                   {"Name": "skip", "Format": "Row major linear format", "DataType": "Half"}],
        "Outputs": [{"Name": "y", "Format": "Row major linear format", "DataType": "Half"}],
    }
    payload = {"Layers": [layer], "I/O Tensors": [{"Name": "x", "IOMode": "Input", "DataType": "Int8"}]}
    report = parse_layer_info(payload, "t.json")
    only = report.layers[0]
    assert only.input_precisions == ("int8", "fp16") and only.output_precisions == ("fp16",)
    assert only.fused_residual_add and report.summary.float_adds == ("Add_2",)
    assert report.io_tensors == ("x",) and "TensorRT 11" in report.notes[0]


def test_names_split_into_onnx_nodes():
    fused = "Conv_18 + PWN(PWN(Sigmoid_19, Mul_20), Add_21)"
    assert onnx_nodes_of(fused) == ("Conv_18", "Sigmoid_19", "Mul_20", "Add_21")
    assert onnx_nodes_of("x", "[ONNX Layer: /a/Conv]\x1e[ONNX Layer: /a/Add]") == ("/a/Conv", "/a/Add")
    assert onnx_nodes_of("Reformatting CopyNode for Input Tensor 0 to Conv_1 + Add_2") == ()


@pytest.mark.parametrize("text", ["", "{}", '{"Layers": []}', "[1, 2]", "--- Layer 0 ---\nnot json"])
def test_bad_input_is_a_user_error(text):
    with pytest.raises(QdqError, match="exportLayerInfo"):
        parse_layer_info_text(text, "bad.json")


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(QdqError, match="does not exist"):
        read_layer_info(tmp_path / "absent.json")


def test_qdqtool_report_json_reads_back(trt_fixtures):
    original = read_layer_info(trt_fixtures / MOBILENET_FP16_ADDS)
    again = parse_layer_info(json.loads(json.dumps(original.to_json())), "layers.json")
    assert again.layers == original.layers and again.summary == original.summary
    with pytest.raises(QdqError, match="damaged"):
        parse_layer_info({"format": "qdqtool-layers", "layers": [{"no_name": 1}]})


@pytest.mark.parametrize("layer_type, weighted", [("gemm", True), ("correlation", True), ("kgen", False),
                                                  ("CaskConvolution", True), ("Reformat", False)])
def test_myelin_layer_types(layer_type, weighted):
    """Myelin engines (TensorRT 10/11) print kernel kinds: gemm and correlation carry weights, kgen is generated
    pointwise/reduction code."""
    from qdqtool.report.layerinfo import layer_from_dict

    layer = layer_from_dict({"Name": "n", "LayerType": layer_type, "Inputs": [{"DataType": "Int8"}],
                             "Outputs": [{"DataType": "Float"}]})
    assert layer.is_weighted == weighted
