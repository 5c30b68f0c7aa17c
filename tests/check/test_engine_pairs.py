"""The predicted engine against the engines TensorRT really built (../shared/fixtures/trt/pairs, SOURCES.md entry 9):
three ResNet18 QAT placements, each ONNX rebuilt node for node with the layer information of its engine.

Expected values are read from the engine files (layer names, Origin, tensor types), never from the code under test."""

from __future__ import annotations

import gzip
import json
import re

import onnx
import pytest

from qdqtool.check import predict_engine
from qdqtool.check.predict import check_model
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.report import engine_from_layers
from qdqtool.report.layerinfo import read_layer_info
from qdqtool.trt.engine_model import LayerRole, node_differences

PAIRS = ("resnet18-qat", "resnet18-qat-residual", "resnet18-qat-residual-qgap")
NODE = re.compile(r"^[A-Za-z]+_\d+$")


def pair(trt_fixtures, name):
    folder = trt_fixtures / "pairs"
    with gzip.open(folder / f"{name}.onnx.gz") as packed:
        model = onnx.load_from_string(packed.read())
    layers = json.loads((folder / f"{name}.engine.graph.json").read_text())["Layers"]
    return model, layers, folder / f"{name}.engine.graph.json"


def onnx_nodes(layer_name):
    return [part for part in layer_name.split(" + ") if NODE.match(part)]


@pytest.mark.parametrize("name", PAIRS)
def test_every_node_agrees_with_the_engine(trt_fixtures, name):
    model, _, engine_file = pair(trt_fixtures, name)
    predicted = predict_engine(read_qdq(model))
    engine = engine_from_layers(read_layer_info(engine_file))
    assert node_differences(predicted, engine) == []


@pytest.mark.parametrize("name", PAIRS)
def test_standalone_qdq_layers_by_name(trt_fixtures, name):
    """Every Reformat of Origin "QDQ" in the engine is a predicted standalone Q/DQ (the graph input's apart), and no
    other: resnet18-qat 9 + 1, qat-residual 2 + 1, qat-residual-qgap 0 + 1."""
    model, layers, _ = pair(trt_fixtures, name)
    qdq_layers = {layer["Name"] for layer in layers if layer.get("Origin") == "QDQ"}
    inputs = {layer["Name"] for layer in layers if layer.get("Origin") == "QDQ"
              and layer["Inputs"][0]["Name"] == "input.1"}
    report = check_model(read_qdq(model))
    standalone = {f.node for f in report.findings if f.kind == "reformat"}
    assert standalone == qdq_layers - inputs
    assert {f.node for f in report.findings if f.kind == "input-quantize"} == inputs == {"QuantizeLinear_2"}
    assert report.counts()["reformat"] == len(qdq_layers) - 1
    assert len(standalone) == {"resnet18-qat": 9, "resnet18-qat-residual": 2, "resnet18-qat-residual-qgap": 0}[name]


@pytest.mark.parametrize("name", PAIRS)
def test_fused_adds_their_host_and_output_precision(trt_fixtures, name):
    """Each engine layer holding an Add: the same conv hosts it in the prediction, with the same INT8/float output."""
    model, layers, _ = pair(trt_fixtures, name)
    layer_of = predict_engine(read_qdq(model)).layer_of_node()
    fused = [layer for layer in layers if any(n.startswith("Add_") for n in onnx_nodes(layer["Name"]))]
    assert len(fused) == 8
    for layer in fused:
        nodes = onnx_nodes(layer["Name"])
        conv = next(n for n in nodes if n.startswith("Conv_"))
        add = next(n for n in nodes if n.startswith("Add_"))
        predicted = layer_of[add]
        assert conv in predicted.nodes and predicted.role == LayerRole.FUSED
        assert (predicted.precision == "int8") == ("Int8" in layer["Outputs"][0]["Format/Datatype"]), layer["Name"]


def test_downsample_conv_hosts_the_add_when_both_sides_are_free(trt_fixtures):
    """resnet18-qat: both inputs of the downsample blocks' Adds are conv outputs without Q/DQ; TensorRT fused the
    Add into the downsample conv (the later one in graph order), not the block's second conv (point 4)."""
    model, _, _ = pair(trt_fixtures, "resnet18-qat")
    layer_of = predict_engine(read_qdq(model)).layer_of_node()
    for add, host, other in (("Add_97", "Conv_95", "Conv_84"), ("Add_158", "Conv_156", "Conv_145"),
                             ("Add_219", "Conv_217", "Conv_206")):
        assert host in layer_of[add].nodes and other not in layer_of[add].nodes


def test_pooling_between_dq_and_q_runs_int8_and_conv_pool_fuses(trt_fixtures):
    model, _, _ = pair(trt_fixtures, "resnet18-qat-residual-qgap")
    layer_of = predict_engine(read_qdq(model)).layer_of_node()
    assert layer_of["GlobalAveragePool_300"].precision == "int8"
    assert layer_of["GlobalAveragePool_300"].role == LayerRole.FUSED
    assert {"Conv_9", "MaxPool_12", "Relu_11"} <= set(layer_of["Conv_9"].nodes)
    assert layer_of["Conv_9"].precision == "int8"


def test_a_changed_node_is_a_difference(trt_fixtures):
    """The diff can fail: the qgap prediction against the residual engine differs exactly where the models do."""
    model, _, _ = pair(trt_fixtures, "resnet18-qat-residual-qgap")
    engine = engine_from_layers(read_layer_info(trt_fixtures / "pairs" / "resnet18-qat-residual.engine.graph.json"))
    differences = {d.node for d in node_differences(predict_engine(read_qdq(model)), engine)}
    assert {"Add_292", "Conv_284"} <= differences    # INT8 output here, FP32 in that engine


def test_mobilenet_qat_engine_counts(trt_fixtures):
    """The MobileNetV2 QAT engine with float skips (no ONNX): 17 Reformats of Origin "QDQ" = the graph input's
    quantizer + 16 standalone quantizers, and one layout copy."""
    engine = engine_from_layers(read_layer_info(trt_fixtures / "trex_mobilenet_qat.graph.json"))
    layers = json.loads((trt_fixtures / "trex_mobilenet_qat.graph.json").read_text())["Layers"]
    origin_qdq = sum(layer.get("Origin") == "QDQ" for layer in layers)
    roles = engine.roles()
    assert origin_qdq == 17 == roles["quantize"] + roles["input-quantize"] and roles["input-quantize"] == 1
    assert roles["layout"] == 1 and roles["dequantize"] == 0
