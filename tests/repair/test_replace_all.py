"""fix-residuals --scope all on tiny graphs: calibrate's placement with the model's own scales and int8 weights."""

import json

import numpy as np
import onnx
import pytest
import tiny
import tiny_qdq
from click.testing import CliRunner
from qdqtool.cli.main import cli

from qdqtool.check.predict import check_model
from qdqtool.errors import ConfigError, RangeError
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.placement.apply import apply_plan
from qdqtool.placement.plan import PlacementPlan, QuantizedInput, QuantizedWeight
from qdqtool.repair.pipeline import DataConfig, fix_file, fix_model
from qdqtool.repair.plan import FixConfig
from qdqtool.repair.replace_all import ChangeCause, ChangeKind, plan_replacement
from qdqtool.repair.replace_pipeline import replace_model, replaced_model
from qdqtool.trt.kinds import Cause, EdgeRule, Kind, ScaleSource
from qdqtool.trt.rules import DEQUANTIZE

ALL = FixConfig(scope="all")


def replaced(model, measured=None, config=ALL):
    qdq = read_qdq(model)
    plan = plan_replacement(qdq, config, measured)
    return plan, replaced_model(qdq, plan)


def weight_quantization(model, conv):
    """(int8 values, scales, axis) of the DequantizeLinear feeding conv's weight."""
    view = GraphView(model)
    dq = view.producer(view.by_name[conv].input[1])
    assert dq.op_type == DEQUANTIZE
    axis = next((a.i for a in dq.attribute if a.name == "axis"), None)
    return view.constant_value(dq.input[0]), view.constant_value(dq.input[1]), axis


def handmade(model, edges, weights_axis=None):
    """A Q/DQ model with Q/DQ exactly on the given (tensor, node, index) edges and on the weights of the convs
    among those nodes (the other convs stay float)."""
    view = GraphView(model)
    inputs = tuple(QuantizedInput(t, n, i, EdgeRule.WEIGHTED_INPUT) for t, n, i in edges)
    weights = tuple(QuantizedWeight(n.input[1], n.name, 1, (weights_axis or {}).get(n.name, 0))
                    for n in view.nodes if n.op_type == "Conv" and any(n.name == e[1] for e in edges))
    amax = tiny_qdq.float_ranges(model)
    return apply_plan(model, PlacementPlan(inputs, weights, (), (), ()), {t: amax[t] for t, _, _ in edges})


def test_ort_bottleneck_leaves_nothing_tensorrt_cannot_fuse_and_explains_every_qdq():
    model = tiny_qdq.ort_static(tiny.silu_bottleneck())
    before = check_model(read_qdq(model)).counts()
    assert before["reformat"] > 0
    plan, out = replaced(model)
    after = check_model(read_qdq(out)).counts()
    assert after["float-add"] == after["requant-concat"] == after["reformat"] == 0
    removed = plan.causes(ChangeKind.REMOVE)
    assert removed[ChangeCause.ACTIVATION] > 0          # Q/DQ between each conv and its SiLU
    assert removed[ChangeCause.CONV_SIDE] >= 1          # the conv side of the residual Add
    # every Q/DQ of the input and of the plan is accounted for exactly once
    qdq = read_qdq(model)
    activation = [(c.node, c.input_index) for c in plan.changes if "weight" not in c.kind]
    assert len(activation) == len(set(activation))
    assert set(qdq.edges) | {(q.node, q.input_index) for q in plan.placement.inputs} == set(activation)
    onnx.checker.check_model(out)


def test_weights_keep_their_int8_values_and_scales():
    model = tiny_qdq.ort_static(tiny.resnet_block())
    plan, out = replaced(model)
    weights = {c.kind for c in plan.changes if c.cause in (ChangeCause.WEIGHT, ChangeCause.BIAS)}
    assert weights == {ChangeKind.KEEP_WEIGHT, ChangeKind.REMOVE_WEIGHT}       # ORT's int32 bias DQs go
    for conv in ("stem", "conv1", "conv2", "conv3"):
        values, scales, axis = weight_quantization(model, conv)
        new_values, new_scales, new_axis = weight_quantization(out, conv)
        assert new_values.dtype == np.int8 and np.array_equal(values, new_values)
        assert np.array_equal(scales, new_scales) and axis == new_axis == 0


def test_weight_on_the_wrong_axis_is_quantized_again_and_said_so():
    model = tiny.resnet_block()
    edges = [("x", "stem", 0), ("stem_relu_out", "conv1", 0), ("relu1_out", "conv2", 0),
             ("relu2_out", "conv3", 0), ("stem_relu_out", "add", 1)]
    qdq_model = handmade(model, edges, weights_axis={"conv2": 1})
    plan, out = replaced(qdq_model)
    redone = [c for c in plan.changes if c.kind == ChangeKind.REQUANTIZE_WEIGHT]
    assert [c.node for c in redone] == ["conv2"] and redone[0].tensor not in plan.weights and len(plan.weights) == 3
    assert weight_quantization(out, "conv2")[2] == 0
    assert weight_quantization(out, "conv2")[1].shape == (4,)


def test_qat_skip_scale_inferred_from_the_quantizer_reading_the_add_output():
    qat = tiny_qdq.qat(tiny.resnet_block())
    # the skip (stem_relu_out) is also conv1's input: its own quantizer gives the range; drop that to force inference
    model = handmade(tiny.resnet_block(), [("x", "stem", 0), ("relu1_out", "conv2", 0), ("relu2_out", "conv3", 0),
                                           ("stem_relu_out", "conv1", 0)])
    assert read_qdq(qat).edges.keys() == read_qdq(model).edges.keys()
    plan, out = replaced(model)
    skip = [c for c in plan.changes if (c.node, c.input_index) == ("add", 1)]
    assert skip[0].kind == ChangeKind.MOVE    # the scale of conv1's quantizer on the same tensor
    assert plan.range_sources["stem_relu_out"] == ScaleSource.REUSED
    no_shared = handmade(tiny.resnet_block(), [("x", "stem", 0), ("relu1_out", "conv2", 0),
                                               ("relu2_out", "conv3", 0)])
    plan, out = replaced(no_shared)
    skip = [c for c in plan.changes if (c.node, c.input_index) == ("add", 1)]
    assert skip[0].kind == ChangeKind.INSERT
    assert plan.range_sources["stem_relu_out"] == ScaleSource.INFERRED_FROM_OUTPUT
    conv3_scale = read_qdq(no_shared).edges[("conv3", 0)].scale     # reads Relu(add): rule 1 of inference
    assert read_qdq(out).edges[("add", 1)].scale == pytest.approx(conv3_scale, rel=1e-6)
    assert check_model(read_qdq(out)).counts()["float-add"] == 0


def test_skip_scale_falls_back_to_the_other_add_input_then_refuses():
    edges = [("x", "stem", 0), ("stem_relu_out", "deep1", 0), ("stem_relu_out", "short", 0),
             ("deep_relu_out", "deep2", 0), ("deep2_out", "add", 1)]
    model = handmade(tiny.two_conv_add(), edges)      # head not quantized: the input model keeps it float
    plan, out = replaced(model)
    skip = next(c for c in plan.changes if (c.node, c.input_index) == ("add", 0))
    assert skip.kind == ChangeKind.INSERT and plan.range_sources["short_out"] == ScaleSource.INFERRED_FROM_OTHER_INPUT
    assert read_qdq(out).edges[("add", 0)].scale == pytest.approx(read_qdq(model).edges[("add", 1)].scale)
    assert ("head", 0) not in read_qdq(out).edges                   # kept float, as the model had it
    assert [c.cause for c in plan.changes if (c.node, c.input_index) == ("add", 1)] == [ChangeCause.CONV_SIDE]
    bare = handmade(tiny.two_conv_add(), edges[:4])
    with pytest.raises(RangeError, match="ranges file") as raised:
        replace_model(read_qdq(bare), ALL, DataConfig())
    assert raised.value.settings == ("ranges", "data")
    plan, _ = replaced(bare, measured={"short_out": 3.0})
    assert plan.tensor_amax["short_out"] == 3.0 and plan.range_sources["short_out"] == ScaleSource.MEASURED


def test_qat_shaped_model_keeps_every_scale_and_matches_scope_residuals():
    model = tiny_qdq.qat(tiny.silu_bottleneck())
    residuals = fix_model(read_qdq(model), FixConfig(), DataConfig()).model
    plan, out = replaced(model)
    edges = {e: q.scale for e, q in read_qdq(out).edges.items()}
    assert edges.keys() == {e for e in read_qdq(residuals).edges}
    for edge, quantizer in read_qdq(residuals).edges.items():
        assert edges[edge] == pytest.approx(quantizer.scale, rel=1e-6)
    assert not plan.causes(ChangeKind.REMOVE)


def test_standalone_add_the_model_runs_in_int8_stays_int8():
    model = tiny_qdq.ort_static(tiny.standalone_add())
    assert check_model(read_qdq(model)).kinds().get("int8-add") == 1
    _plan, out = replaced(model)
    after = check_model(read_qdq(out))
    assert after.kinds().get("int8-add") == 1
    # both Add inputs are also read by the float Mul: each one's DQ, moved past its Relu, runs standalone for it
    standalone = after.of_kind(Kind.REFORMAT)
    assert sorted(f.tensors[0] for f in standalone) == ["a_out", "c_out"]
    assert all(f.cause == Cause.FLOAT_CONSUMER and "mul" in f.reason for f in standalone)
    _, floated = replaced(model, config=FixConfig(scope="all", standalone_add="float"))
    assert check_model(read_qdq(floated)).kinds().get("int8-add") is None


def test_second_run_is_byte_identical_and_dry_run_writes_nothing(tmp_path):
    source, first, second = tmp_path / "in.onnx", tmp_path / "first.onnx", tmp_path / "second.onnx"
    onnx.save(tiny_qdq.ort_static(tiny.silu_bottleneck()), str(source))
    assert fix_file(source, first, ALL).model is not None
    again = fix_file(first, second, ALL)
    assert again.model is None and not again.plan.changed
    assert first.read_bytes() == second.read_bytes()
    dry = tmp_path / "dry.onnx"
    fix_file(source, dry, ALL, dry_run=True)
    assert not dry.exists()


def test_cli_lists_changes_by_kind_and_residuals_suggests_scope_all(tmp_path):
    source = tmp_path / "in.onnx"
    onnx.save(tiny_qdq.ort_static(tiny.silu_bottleneck()), str(source))
    runner = CliRunner()
    residuals = runner.invoke(cli, ["fix-residuals", str(source), "--dry-run"])
    assert residuals.exit_code == 0, residuals.output
    assert "reformat layers" in residuals.output and "--scope all" in residuals.output
    shown = runner.invoke(cli, ["fix-residuals", str(source), "--dry-run", "--scope", "all", "--json"])
    payload = json.loads(shown.output)
    assert payload["kinds"]["remove"] == sum(payload["causes"]["remove"].values()) > 0
    assert payload["after"]["counts"]["reformat"] == 0 and payload["before"]["counts"]["reformat"] > 0
    assert {c["kind"] for c in payload["changes"]} >= {"remove", "keep", "keep-weight"}
    text = runner.invoke(cli, ["fix-residuals", str(source), "-o", str(tmp_path / "out.onnx"), "--scope", "all"])
    assert text.exit_code == 0 and "reformat" in text.output and "remove (" in text.output


def test_an_unknown_scope_is_a_config_error_not_a_silent_default():
    with pytest.raises(ConfigError, match="scope 'everything'") as raised:
        fix_model(read_qdq(tiny_qdq.qat(tiny.resnet_block())), FixConfig(scope="everything"), DataConfig())
    assert raised.value.settings == ("scope",)
