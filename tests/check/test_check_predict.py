import json

import numpy as np
import pytest
import tiny
import tiny_qdq
from click.testing import CliRunner
from onnx import numpy_helper
from qdqtool.cli.main import cli

from qdqtool.check.predict import check_model, report_lines
from qdqtool.errors import ModelError
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.placement.plan import PlacementConfig
from qdqtool.trt.kinds import Cause, Kind


def findings(model, **config):
    return check_model(read_qdq(model), PlacementConfig(**config) if config else None)


def by_node(report, node):
    return next(f for f in report.findings if f.node == node)


def test_qat_residual_with_float_skip_falls_back_and_says_why():
    report = findings(tiny_qdq.qat(tiny.resnet_block()))
    add = by_node(report, "add")
    assert add.kind == Kind.FLOAT_ADD and add.cause == Cause.FLOAT_SKIP and add.tensors == ("stem_relu_out",)
    assert add.nodes == ("conv2", "add")
    assert report.counts()["float-add"] == 1 and report.counts()["float-conv"] == 0


def test_ort_residual_with_qdq_on_the_conv_side_does_not_fuse():
    report = findings(tiny_qdq.ort_static(tiny.resnet_block()))
    add = by_node(report, "add")
    assert add.kind == Kind.FLOAT_ADD and add.cause == Cause.CONV_SIDE_QDQ and add.nodes[0] == "conv2"
    assert add.quantizers and add.tensors == ("conv2_out",)
    assert report.counts()["reformat"] >= 1   # the conv-side DQ and the quantized graph output


def test_silu_epilogue_between_conv_and_add_is_part_of_the_fused_group():
    report = findings(tiny_qdq.ort_static(tiny.silu_bottleneck()))
    add = by_node(report, "m_add")
    assert add.nodes[0] == "m_cv2" and add.nodes[-1] == "m_add" and len(add.nodes) == 4   # conv, Sigmoid, Mul, Add
    assert add.kind == Kind.FLOAT_ADD and add.cause == Cause.CONV_SIDE_QDQ and add.tensors


def test_concat_input_quantized_at_another_scale_needs_requantize():
    model = tiny_qdq.qat(tiny.silu_bottleneck())
    concat = by_node(findings(model), "cat")
    assert concat.kind == Kind.REQUANT_CONCAT and concat.cause == Cause.INPUT_TWO_SCALES
    assert concat.tensors == ("half1",)
    assert concat.quantizers == (read_qdq(model).edges[("m_cv1", 0)].q_node,)


def test_concat_with_one_scale_is_int8_and_float_without_output_q():
    assert by_node(findings(tiny_qdq.qat(tiny.sppf())), "cat").kind == "int8-concat"
    float_cat = findings(tiny_qdq.qat(tiny.mixed_range_concat(into_conv=False)))
    head = by_node(float_cat, "head_cat")
    assert head.kind == "float-region" and head.gate is None  # no Q/DQ around it: float by design, no gate


def test_unquantized_conv_is_float_conv():
    report = findings(tiny_qdq.qat(tiny.resnet_block(), skip=["conv3"]))
    conv = by_node(report, "conv3")
    assert conv.kind == Kind.FLOAT_CONV and conv.cause == Cause.NOT_QUANTIZED
    assert report.counts()["float-conv"] == 1


def test_table_and_json_carry_the_same_counts():
    report = findings(tiny_qdq.ort_static(tiny.silu_bottleneck()))
    lines = report_lines(report)
    assert any(line.startswith("requant-concat") and "cat" in line for line in lines)
    payload = report.to_json()
    assert payload["counts"] == report.counts()
    assert len(payload["findings"]) == len(report.findings)


def test_cli_json_and_fail_on_exit_status(tmp_path):
    path = tmp_path / "ort.onnx"
    path.write_bytes(tiny_qdq.ort_static(tiny.resnet_block()).SerializeToString())
    runner = CliRunner()
    ok = runner.invoke(cli, ["check", str(path), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["counts"]["float-add"] == 1
    gated = runner.invoke(cli, ["check", str(path), "--fail-on", "float-add"])
    assert gated.exit_code == 3
    passed = runner.invoke(cli, ["check", str(path), "--fail-on", "float-conv"])
    assert passed.exit_code == 0
    unknown = runner.invoke(cli, ["check", str(path), "--fail-on", "nonsense"])
    assert unknown.exit_code == 2 and "unknown gate(s) nonsense" in unknown.output   # a bad option value


def test_a_conv_reading_a_float_concat_names_it():
    """mixed_range_concat's Conv reads the Concat; left unquantized, check says a Q there would make it INT8."""
    conv = by_node(findings(tiny_qdq.qat(tiny.mixed_range_concat(), skip=["after"])), "after")
    assert conv.kind == Kind.FLOAT_CONV and conv.cause == Cause.HOISTED_ONTO_FLOAT_CONCAT
    assert "float Concat head_cat" in conv.reason
    quantized = by_node(findings(tiny_qdq.qat(tiny.mixed_range_concat())), "after")
    assert quantized.kind == Kind.INT8_CONV


def test_zero_points_tensorrt_cannot_take_are_refused():
    model = tiny_qdq.qat(tiny.resnet_block())
    zero = next(t for t in model.graph.initializer if t.name.endswith("zero_point") and t.data_type == 3)
    zero.CopyFrom(numpy_helper.from_array(np.array(5, np.int8), zero.name))
    with pytest.raises(ModelError, match="zero point 0"):
        check_model(read_qdq(model))
