import json

import numpy as np
import onnx
import pytest
import tiny
import tiny_qdq
from click.testing import CliRunner
from onnx import numpy_helper
from qdqtool.cli.main import cli

from qdqtool.check.predict import check_model
from qdqtool.errors import ModelError, RangeError
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.placement.plan import PlacementConfig
from qdqtool.repair.apply import apply_repairs
from qdqtool.repair.pipeline import DataConfig, fix_file, fix_model
from qdqtool.repair.plan import FixConfig, plan_repairs
from qdqtool.trt.kinds import Cause, Kind, ScaleSource
from qdqtool.trt.rules import QUANTIZE


def fixed(model, config=None, measured=None):
    qdq = read_qdq(model)
    plan = plan_repairs(qdq, config, measured)
    return plan, apply_repairs(qdq, plan.edits)


def kinds(plan):
    return sorted((e.kind, e.node, e.input_index) for e in plan.edits)


def test_qat_resnet_skip_reuses_the_block_input_scale_without_data():
    model = tiny_qdq.qat(tiny.resnet_block())
    plan, out = fixed(model)
    assert kinds(plan) == [("insert", "add", 1)]
    conv1_scale = read_qdq(model).edges[("conv1", 0)].scale
    assert plan.edits[0].scale == pytest.approx(conv1_scale) and plan.edits[0].source == ScaleSource.REUSED
    assert plan.edits[0].cause == Cause.FLOAT_SKIP
    after = read_qdq(out)
    assert after.edges[("add", 1)].dq_node == after.edges[("conv1", 0)].dq_node   # one shared quantizer
    report = check_model(after)
    assert [f.kind for f in report.findings if f.node == "add"] == ["fused-add"]
    assert sum(report.counts().values()) == 0
    onnx.checker.check_model(out)


def test_qat_c2f_block_merges_concat_scales_and_quantizes_the_split_skip():
    model = tiny_qdq.qat(tiny.silu_bottleneck())
    plan, out = fixed(model)
    assert ("insert", "m_add", 0) in kinds(plan)
    assert any(e.kind == "set-scale" and e.tensor == "half1" for e in plan.edits)
    cat_scale = read_qdq(model).edges[("cv2", 0)].scale
    after = read_qdq(out)
    assert after.edges[("m_add", 0)].scale == pytest.approx(cat_scale, rel=1e-5)
    assert after.edges[("m_cv1", 0)].scale == pytest.approx(cat_scale, rel=1e-5)
    counts = check_model(after).counts()
    assert counts["float-add"] == 0 and counts["requant-concat"] == 0


def test_ort_shape_removes_conv_side_qdq_and_keeps_the_skip():
    model = tiny_qdq.ort_static(tiny.silu_bottleneck())
    plan, out = fixed(model)
    removed = {(e.node, e.input_index) for e in plan.edits if e.kind == "remove"}
    assert {("m_add", 1), ("Mul_13", 0), ("Mul_13", 1), ("Sigmoid_12", 0)} == removed
    after = read_qdq(out)
    assert ("m_add", 0) in after.edges and ("m_add", 1) not in after.edges
    counts = check_model(after).counts()
    assert counts["float-add"] == 0 and counts["requant-concat"] == 0
    assert counts["reformat"] < check_model(read_qdq(model)).counts()["reformat"]


def test_the_later_conv_hosts_and_the_main_branch_output_needs_a_measured_range():
    """No quantizer on either Add input: TensorRT fuses the Add into the conv that runs last (the shortcut; Conv_95 +
    Add_97 in the resnet18-qat engine), so the main branch's output is the skip to quantize."""
    model = tiny_qdq.qat(tiny.two_conv_add())
    with pytest.raises(RangeError, match="deep2_out") as raised:
        from qdqtool.repair.plan import require_ranges
        require_ranges(plan_repairs(read_qdq(model), FixConfig(strict_scales=True)))
    assert raised.value.settings == ("ranges", "data")
    plan, _ = fixed(model, measured={"deep2_out": 2.54})
    insert = next(e for e in plan.edits if e.kind == "insert")
    assert (insert.node, insert.input_index, insert.tensor) == ("add", 1, "deep2_out")
    assert insert.scale == pytest.approx(2.54 / 127) and insert.source == ScaleSource.MEASURED


@pytest.mark.parametrize("ratio,removed", [(100.0, True), (2.0, False)])
def test_mixed_range_concat_loses_its_qdq_only_beyond_the_ratio(ratio, removed):
    float_model = tiny.mixed_range_concat(ratio)
    model = tiny_qdq.ort_static(float_model)
    measured = {"scale_up_out": ratio, "sigmoid_out": 1.0, "head_cat_out": ratio}
    plan, out = fixed(model, measured=measured)
    removes = {(e.node, e.input_index): e for e in plan.edits if e.kind == "remove"}
    assert ({n for n, _ in removes} == {"head_cat", "after"}) is removed
    after = read_qdq(out)
    assert (("head_cat", 1) not in after.edges) is removed
    # the following Conv's input Q would be hoisted in front of a spread Concat's inputs: it goes, the Conv runs float
    assert (("after", 0) not in after.edges) is removed
    if removed:
        assert all(e.cause == Cause.RANGE_SPREAD for (n, _), e in removes.items() if n == "head_cat")
        assert removes[("after", 0)].cause == Cause.HOISTED_ONTO_FLOAT_CONCAT
        assert "head_cat" in removes[("after", 0)].reason
        assert next(f for f in check_model(after).findings if f.node == "head_cat").kind in (
            "float-concat", "float-region")


def test_standalone_add_modes():
    base = tiny_qdq.qat(tiny.standalone_add())
    keep, _ = fixed(base)
    assert keep.edits == () and any("keep" in k for k in keep.kept)
    measured = {"relu_a_out": 3.0, "relu_c_out": 3.0}
    int8, out = fixed(base, FixConfig(standalone_add="int8"), measured)
    assert {(e.node, e.input_index) for e in int8.edits} == {("add", 0), ("add", 1)}  # output already feeds a Conv
    assert [f.kind for f in check_model(read_qdq(out)).findings if f.node == "add"] == ["int8-add"]
    back, _ = fixed(out, FixConfig(standalone_add="float"))
    assert {(e.kind, e.node) for e in back.edits} == {("remove", "add")}


def test_fixing_twice_changes_nothing_and_writes_identical_bytes(tmp_path):
    source = tmp_path / "ort.onnx"
    source.write_bytes(tiny_qdq.ort_static(tiny.silu_bottleneck()).SerializeToString())
    first, second = tmp_path / "fixed.onnx", tmp_path / "fixed2.onnx"
    result = fix_file(source, first)
    assert result.plan.edits and result.max_abs_diff
    again = fix_file(first, second)
    assert again.plan.edits == () and again.model is None
    assert first.read_bytes() == second.read_bytes()


def test_dry_run_and_missing_ranges_write_nothing(tmp_path):
    source = tmp_path / "qat.onnx"
    source.write_bytes(tiny_qdq.qat(tiny.two_conv_add()).SerializeToString())
    runner = CliRunner()
    dry = runner.invoke(cli, ["fix-residuals", str(source), "-o", str(tmp_path / "a.onnx"), "--dry-run",
                              "--ranges", str(_ranges(tmp_path, {"deep2_out": 2.0})), "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["edits"][0]["tensor"] == "deep2_out"
    missing = runner.invoke(cli, ["fix-residuals", str(source), "-o", str(tmp_path / "b.onnx"), "--strict-scales"])
    assert missing.exit_code == 1 and "deep2_out" in missing.output and "--data" in missing.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qat.onnx", "ranges.json"]


def test_quick_calibration_on_data_fills_the_missing_range(tmp_path):
    model = tiny_qdq.qat(tiny.two_conv_add())
    data = tmp_path / "data"
    data.mkdir()
    for i, feed in enumerate(tiny.random_feed(model, seed) for seed in range(3)):
        np.save(data / f"{i}.npy", feed["x"])
    result = fix_model(read_qdq(model), FixConfig(), DataConfig(data_dir=data))
    assert result.range_sources.get("data", 0) >= 1
    assert result.model is not None and "samples" in result.compared_on
    assert result.after.counts()["float-add"] == 0
    errors = result.output_error   # the output error measure of both models against the float model
    assert set(errors) == {"input", "fixed"} and errors["fixed"].samples == 3
    assert 0 < errors["input"].headline < 0.5 and 0 < errors["fixed"].headline < 0.5
    assert result.to_json()["output_error"]["fixed"]["headline_error"] == round(errors["fixed"].headline, 6)


def test_both_residual_mode_puts_one_scale_on_both_inputs():
    config = FixConfig(placement=PlacementConfig(residual_mode="both"))
    _, out = fixed(tiny_qdq.qat(tiny.resnet_block()), config, {"conv2_out": 1.0})
    after = read_qdq(out)
    assert after.edges[("add", 0)].scale == pytest.approx(after.edges[("add", 1)].scale, rel=1e-5)
    add = next(f for f in check_model(after, config.placement).findings if f.node == "add")
    assert add.kind == Kind.FUSED_ADD and add.cause == Cause.BOTH_ONE_SCALE


def test_unfixable_zero_points_are_refused_and_output_never_overwrites_input(tmp_path):
    model = tiny_qdq.ort_static(tiny.resnet_block())
    zero = next(t for t in model.graph.initializer if t.name.endswith("zero_point") and t.data_type == 3)
    zero.CopyFrom(numpy_helper.from_array(np.array(5, np.int8), zero.name))
    with pytest.raises(ModelError, match="zero point"):
        plan_repairs(read_qdq(model))
    path = tmp_path / "m.onnx"
    path.write_bytes(tiny_qdq.qat(tiny.resnet_block()).SerializeToString())
    result = CliRunner().invoke(cli, ["fix-residuals", str(path), "-o", str(path)])
    assert result.exit_code == 1 and "never overwrites" in result.output


def test_fixed_model_runs_and_stays_close_to_the_input_model():
    model = tiny_qdq.qat(tiny.resnet_block())
    result = fix_model(read_qdq(model), FixConfig(), DataConfig())
    assert set(result.max_abs_diff) == {"conv3_out"}
    reference = max(abs(float(v)) for v in result.max_abs_diff.values())
    assert np.isfinite(reference)
    assert sum(1 for n in result.model.graph.node if n.op_type == QUANTIZE) == 4   # the skip reuses a quantizer


def _ranges(folder, amax):
    from qdqtool.calibrate.ranges import TensorRange, save_ranges

    return save_ranges(folder / "ranges.json", [TensorRange(t, a, "max") for t, a in amax.items()])


def test_fix_refuses_a_model_without_qdq(tmp_path):
    path = tmp_path / "float.onnx"
    onnx.save(tiny.resnet_block(), path)
    out = tmp_path / "out.onnx"
    with pytest.raises(ModelError, match="calibrate"):
        fix_file(path, out)
    assert not out.exists()
