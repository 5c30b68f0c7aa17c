"""The public API's contract on tiny models (paths or ModelProtos, samples as folders or arrays, typed configs,
QdqError only, nothing printed, lazy exports); tests/test_docs_examples.py runs the README's and docs' examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import tiny
import tiny_qdq

import qdqtool


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    onnx.save(tiny.resnet_block(), tmp_path / "model.onnx")
    onnx.save(tiny_qdq.qat(tiny.resnet_block()), tmp_path / "qat.onnx")
    (tmp_path / "samples").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        np.save(tmp_path / "samples" / f"s{i}.npy", rng.standard_normal((1, 4, 8, 8)).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_paths_and_model_protos_give_the_same_results(workdir):
    from_path = qdqtool.calibrate_model("model.onnx", "samples")
    from_proto = qdqtool.calibrate_model(onnx.load("model.onnx"), "samples")
    assert from_path.tensor_amax == from_proto.tensor_amax and not Path("model.qdq.onnx").exists()
    assert qdqtool.check_model("qat.onnx").counts() == qdqtool.check_model(onnx.load("qat.onnx")).counts()
    fixed = qdqtool.fix_residuals(onnx.load("qat.onnx"))
    assert fixed.plan.edits == qdqtool.fix_residuals("qat.onnx").plan.edits


def test_errors_are_the_qdqerror_family_with_settings(workdir):
    with pytest.raises(qdqtool.DataError) as raised:
        qdqtool.calibrate_model("model.onnx", "no-such-folder")
    assert raised.value.settings == ("data",) and "--" not in str(raised.value)
    with pytest.raises(qdqtool.ConfigError):
        qdqtool.calibrate_model("model.onnx", "samples", qdqtool.CalibrationConfig(method="median"))
    with pytest.raises(qdqtool.ModelError):
        qdqtool.fix_residuals("model.onnx")      # a float model: nothing to repair


def test_import_is_lazy_and_exports_resolve():
    code = "import sys, qdqtool; print(any(m.startswith(('onnx', 'numpy')) for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    assert all(getattr(qdqtool, name) is not None for name in qdqtool.__all__)
    with pytest.raises(AttributeError):
        qdqtool.no_such_name  # noqa: B018


def test_data_as_an_array_a_dict_or_feed_dicts_gives_the_folders_ranges(workdir):
    """The same four samples as a folder, one array, a dict of arrays and an iterable of feed dicts."""
    arrays = [np.load(workdir / "samples" / f"s{i}.npy") for i in range(4)]
    batch = np.concatenate(arrays)                       # (4, 4, 8, 8): four samples along axis 0
    config = qdqtool.CalibrationConfig(method="max")
    folder = qdqtool.calibrate_model("model.onnx", "samples", config)
    name = onnx.load("model.onnx").graph.input[0].name
    for data in (batch, {name: batch}, ({name: a} for a in arrays), [{name: a[0]} for a in arrays]):
        result = qdqtool.calibrate_model("model.onnx", data, config)
        assert result.samples == 4 and result.tensor_amax == folder.tensor_amax
    with pytest.raises(qdqtool.DataError, match="has inputs"):
        qdqtool.calibrate_model("model.onnx", [{"wrong": arrays[0]}], config)
    with pytest.raises(qdqtool.DataError, match="expects shape"):
        qdqtool.calibrate_model("model.onnx", np.zeros((2, 3, 8, 8), np.float32), config)
    with pytest.raises(qdqtool.DataError, match="cannot read samples from a int"):
        qdqtool.calibrate_model("model.onnx", 7, config)


def test_compare_models_gives_the_clis_figures(workdir):
    from click.testing import CliRunner
    from qdqtool.cli.main import cli

    qdqtool.calibrate_model("model.onnx", "samples", qdqtool.CalibrationConfig(method="max"),
                            qdqtool.CalibrationOutputs(model=Path("model.qdq.onnx")))
    assert Path("model.qdq.ranges.json").is_file()  # the ranges file beside the model, as the CLI writes it
    arrays = np.concatenate([np.load(workdir / "samples" / f"s{i}.npy") for i in range(4)])
    result = qdqtool.compare_models("model.onnx", "model.qdq.onnx", arrays)
    cli_json = CliRunner().invoke(cli, ["compare", "model.onnx", "model.qdq.onnx", "--data", "samples", "--json"])
    import json

    assert result.samples == 4 and json.loads(cli_json.stdout)["headline_error"] == round(result.headline, 6)


def test_exports_and_plain_string_counts():
    assert qdqtool.PRESETS["yolo"] == qdqtool.Preprocess(resize="letterbox", pad_value=114.0)
    counts = qdqtool.check_model(tiny_qdq.qat(tiny.resnet_block())).counts()
    assert all(type(key) is str for key in counts) and "'float-add': " in repr(counts)


def test_settings_are_validated_when_the_config_is_built():
    from qdqtool.calibrate.observers import Method

    assert qdqtool.CalibrationConfig(method="MAX").method is Method.MAX == "max"
    for bad, setting in ((dict(method="median"), "method"), (dict(batch_size=0), "batch_size"),
                         (dict(percentile=101.0), "percentile"), (dict(keep_float=-1), "keep_float")):
        with pytest.raises(qdqtool.ConfigError) as raised:
            qdqtool.CalibrationConfig(**bad)
        assert raised.value.settings == (setting,)
