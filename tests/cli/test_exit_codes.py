"""The CLI's exit statuses: 0 ok, 1 a bad file or bad data (one line, no traceback), 2 a bad option value (click's
usage error, checked by the option types before any work), 3 a failed --fail-on gate; and the --show spellings."""

from __future__ import annotations

import json

import onnx
import pytest
import tiny
import tiny_qdq
from click.testing import CliRunner
from qdqtool.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def qat_model(tmp_path):
    path = tmp_path / "qat.onnx"
    onnx.save(tiny_qdq.qat(tiny.resnet_block()), path)
    return path


def test_ok_is_0(qat_model):
    result = run("check", qat_model)
    assert result.exit_code == 0, result.output
    assert "counts:" in result.stdout


def test_bad_files_and_data_are_1_with_one_line(tmp_path, resnet):
    missing = run("check", tmp_path / "nope.onnx")
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert missing.stderr.count("\n") == 1 and missing.stderr.startswith("qdqtool: error: ")
    model, _ = resnet
    no_folder = run("calibrate", model, "--data", tmp_path / "absent", "-o", tmp_path / "out.onnx")
    assert no_folder.exit_code == 1
    assert no_folder.stderr.count("\n") == 1 and no_folder.stderr.rstrip().endswith("(see --data)")
    assert "Traceback" not in no_folder.output and not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("args, message", [
    (["--op-types", "Foo"], "unknown op types"),
    (["--mean", "1,2,3,4"], "give 1 or 3"),
    (["--std", "0"], "non-zero"),
    (["--method", "median"], "median"),
])
def test_bad_calibrate_option_values_are_2(resnet, tmp_path, args, message):
    model, data = resnet
    result = run("calibrate", model, "--data", data, "-o", tmp_path / "out.onnx", *args)
    assert result.exit_code == 2 and message in result.stderr and "Usage:" in result.stderr
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("command, args, message", [
    ("check", ["--fail-on", "nope"], "unknown gate"),
    ("check", ["--show", "some"], "some"),
    ("build", ["-o", "e.onnx", "--shapes", "x:1x3xbig"], "is not a shape"),
    ("build", ["-o", "e.onnx", "--shapes", "x:1x3", "--shapes", "x:1x4"], "twice"),
    ("fix-residuals", ["-o", "f.onnx", "--op-types", "Conv,Bogus"], "Bogus"),
])
def test_bad_option_values_are_2_before_any_work(qat_model, command, args, message):
    result = run(command, qat_model, *args)
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_failed_gate_is_3(qat_model):
    counts = json.loads(run("check", qat_model, "--json").stdout)["counts"]
    found = [gate for gate, count in counts.items() if count > 0]
    assert found, counts
    result = run("check", qat_model, "--fail-on", found[0])
    assert result.exit_code == 3 and f"gate failed: {found[0]}" in result.stderr


def test_show_has_one_spelling_and_the_old_ones_are_hidden_aliases(qat_model):
    everything = run("check", qat_model, "--show", "all").stdout
    assert run("check", qat_model, "--all").stdout == everything
    summary = run("check", qat_model, "--show", "summary").stdout
    assert run("check", qat_model, "--summary-only").stdout == summary
    problems = run("check", qat_model).stdout
    assert summary.splitlines() == [line for line in problems.splitlines() if line.startswith(("counts:", "kinds:",
                                                                                               "problem:"))]
    assert len(everything.splitlines()) > len(problems.splitlines()) >= len(summary.splitlines())
    help_text = run("check", "--help").stdout
    assert "--show" in help_text and "--summary-only" not in help_text and "--all " not in help_text
