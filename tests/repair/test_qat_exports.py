"""fix-residuals on the committed real QAT exports (ModelOpt-torch, tests/data/qat/README.md): no data needed."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from qdqtool.cli.main import cli

from qdqtool.check.predict import check_model
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.repair.pipeline import fix_file
from qdqtool.runner import create_session
from qdqtool.trt.kinds import EditKind, Gate, Kind, ScaleSource

QAT = Path(__file__).resolve().parents[1] / "data" / "qat"
# export -> (residual Adds, Concats quantized at two scales on input, no-op Casts)
EXPORTS = {"resnet_tiny": (5, 0, 5), "c2f_tiny": (4, 8, 21), "mbv2_tiny": (3, 0, 3)}


@pytest.fixture(scope="module", params=sorted(EXPORTS))
def fixed(request, tmp_path_factory):
    name = request.param
    out = tmp_path_factory.mktemp(name) / f"{name}.fixed.onnx"
    result = fix_file(QAT / f"{name}.onnx", out)
    return name, result, out


def test_the_input_fails_the_gates_and_the_fixed_model_passes(fixed):
    name, result, out = fixed
    adds, requant, casts = EXPORTS[name]
    before = result.plan.before
    assert len(result.plan.see_through) == casts
    assert before.counts()[Gate.REQUANT_CONCAT] == requant == len(before.of_kind(Kind.TWO_SCALES))
    assert before.counts()[Gate.FLOAT_ADD] + len(before.of_kind(Kind.FUSED_ADD)) == adds
    after = check_model(read_qdq(onnx.load(out)))
    assert len(after.of_kind(Kind.FUSED_ADD)) == adds and after.counts()[Gate.FLOAT_ADD] == 0
    assert after.counts()[Gate.REQUANT_CONCAT] == 0 and not after.of_kind(Kind.TWO_SCALES)
    runner = CliRunner()
    gates = ["--fail-on", "float-add,requant-concat"]
    assert runner.invoke(cli, ["check", str(QAT / f"{name}.onnx"), *gates]).exit_code == 3
    assert runner.invoke(cli, ["check", str(out), *gates]).exit_code == 0


def test_scales_come_from_the_model_itself(fixed):
    name, result, _ = fixed
    inserts = [e for e in result.plan.edits if e.kind == EditKind.INSERT]
    assert inserts and all(e.scale is not None for e in inserts)
    inferred = [e for e in inserts if e.source == ScaleSource.INFERRED_FROM_OUTPUT]
    # resnet_tiny: the two downsample skips have no quantizer anywhere (the ResNet-18 case)
    assert len(inferred) == (2 if name == "resnet_tiny" else 0)


def test_outputs_stay_close_and_a_second_run_changes_nothing(fixed, tmp_path):
    name, _, out = fixed
    again = fix_file(out, tmp_path / "again.onnx")
    assert again.plan.edits == () and (tmp_path / "again.onnx").read_bytes() == out.read_bytes()
    feed = {"images": np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)}
    first, second = (create_session(onnx.load(p), providers=["CPUExecutionProvider"]).run(None, feed)[0].ravel()
                     for p in (QAT / f"{name}.onnx", out))
    cosine = float(first @ second / (np.linalg.norm(first) * np.linalg.norm(second)))
    assert cosine >= 0.99


def test_dry_run_writes_nothing(tmp_path):
    target = tmp_path / "never.onnx"
    result = fix_file(QAT / "c2f_tiny.onnx", target, dry_run=True)
    assert result.plan.edits and not target.exists()
