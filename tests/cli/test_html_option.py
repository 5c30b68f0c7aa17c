"""--html OUT.html on check, report and build: the page is written and named on stderr; into a missing folder or onto
an input file it is the usual one-line error naming --html, with nothing written and the input untouched."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from qdqtool.cli.main import cli
from tiny_build import tiny_qdq_conv


@pytest.fixture()
def model(tmp_path):
    path = tmp_path / "tiny.qdq.onnx"
    tiny_qdq_conv(path)
    return path


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qdqtool: error: "), result.stderr
    return lines[0]


def test_check_writes_the_page_and_keeps_json_clean(model, tmp_path):
    page = tmp_path / "tiny.html"
    result = CliRunner().invoke(cli, ["check", str(model), "--json", "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert "counts" in json.loads(result.stdout)               # stdout holds the JSON only
    assert f"engine page: {page}" in result.stderr
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_build_writes_the_page_of_the_built_engine(model, tmp_path):
    page = tmp_path / "built.html"
    result = CliRunner().invoke(cli, ["build", str(model), "-o", str(tmp_path / "tiny.ort.onnx"), "--backend", "ort",
                                      "--no-latency", "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert f"engine page: {page}" in result.stderr
    text = page.read_text(encoding="utf-8")
    # an ONNX Runtime build's nodes are not TensorRT's layers: its page draws the predicted engine
    assert '"label":"predicted"' in text and '"label":"engine"' not in text and '"layers":[{' in text


@pytest.mark.parametrize("command", ["check", "build"])
def test_html_into_a_missing_folder(model, tmp_path, command):
    page = tmp_path / "missing" / "page.html"
    extra = ["-o", str(tmp_path / "tiny.engine"), "--backend", "ort"] if command == "build" else []
    result = CliRunner().invoke(cli, [command, str(model), *extra, "--html", str(page)])
    assert "does not exist" in _one_line_error(result)
    assert not page.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.qdq.onnx"]   # nothing built, nothing written


@pytest.mark.parametrize("command", ["check", "build"])
def test_html_onto_the_input_model(model, tmp_path, command):
    before = model.read_bytes()
    extra = ["-o", str(tmp_path / "tiny.engine"), "--backend", "ort"] if command == "build" else []
    result = CliRunner().invoke(cli, [command, str(model), *extra, "--html", str(model)])
    line = _one_line_error(result)
    assert "is the input file" in line and "--html" in line
    assert model.read_bytes() == before


def test_report_html_onto_the_layer_file_or_the_compared_model(trt_fixtures, model, tmp_path):
    layers = tmp_path / "layers.json"
    layers.write_bytes((trt_fixtures / "pairs" / "resnet18-qat.engine.graph.json").read_bytes())
    before = layers.read_bytes()
    for target, extra in ((layers, []), (model, ["--compare", str(model)])):
        result = CliRunner().invoke(cli, ["report", str(layers), *extra, "--html", str(target)])
        assert "is the input file" in _one_line_error(result)
    assert layers.read_bytes() == before
    result = CliRunner().invoke(cli, ["report", str(layers), "-o", str(tmp_path / "same"), "--html",
                                      str(tmp_path / "same")])
    assert "same file" in _one_line_error(result)
    assert not (tmp_path / "same").exists()
