"""The command group: commands listed without importing them, each entry loading the command of its name, and
`qdqtool --help` fast because it imports none of the heavy dependencies."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner
from qdqtool.cli.main import COMMANDS, cli

import qdqtool


def test_each_listed_command_loads_the_command_of_that_name():
    context = click.Context(cli)
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        assert isinstance(command, click.Command) and command.name == name
    assert cli.get_command(context, "no-such-command") is None


def test_help_lists_every_command_with_an_uncut_line():
    result = CliRunner().invoke(cli, ["--help"], terminal_width=120)
    assert result.exit_code == 0
    for name, (_, _, line) in COMMANDS.items():
        assert f"{name} " in result.output and line in result.output
    assert "..." not in result.output.split("Commands:")[1]


def test_help_imports_no_heavy_dependency():
    code = ("import sys; sys.argv = ['qdqtool', '--help']\n"
            "from qdqtool.cli import main\n"
            "try:\n    main.main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numpy', 'onnx', 'PIL', 'onnxruntime') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().endswith("[]"), result.stdout + result.stderr


def test_keyboard_interrupt_in_a_command_exits_130_with_one_line(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(qdqtool, "check_model", interrupted)
    result = CliRunner().invoke(cli, ["check", __file__])
    assert result.exit_code == 130, result.output
    assert "interrupted (SIGINT)" in result.output and "Aborted" not in result.output


def test_a_library_setting_error_is_one_line_and_exit_2(tmp_path):
    """build on a dynamic model without --shapes or data: the one 'qdqtool: error:' line, not click's block."""
    from tiny_build import tiny_qdq_conv

    tiny_qdq_conv(tmp_path / "dynamic.onnx", shape=(None, 3, None, None))
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "dynamic.onnx"), "--backend", "ort"])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("qdqtool: error: ")
    assert "(see --shapes)" in result.stderr and "Usage:" not in result.stderr
