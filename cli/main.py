"""qdqtool's command group: logging set-up, one-line errors for user mistakes, tracebacks for bugs, exit 130/143
on a signal. Commands are imported when run, so `qdqtool --help` loads neither numpy nor onnx."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from qdqtool import __version__
from qdqtool.errors import ConfigError, QdqError

from . import interrupts

USER_ERROR_EXIT_STATUS = 1   # bad files or data; 3 a failed gate
USAGE_EXIT_STATUS = 2        # a bad setting: click's usage error, or the library's ConfigError (one line, too)
# The library names the settings that fix an error (QdqError.settings); these are their options where the name
# differs from the option (default: --setting-name).
SETTING_OPTIONS = {"data_dir": "--data", "data_folder": "--data", "ranges_file": "--ranges", "report": "--report",
                   "workspace_mib": "--workspace", "fail_on": "--fail-on",
                   "trtexec_major": "--trt-version"}
# name -> (module in qdqtool.cli, command object, the one line `qdqtool --help` shows), in the order of a workflow.
# tests/cli/test_main.py checks that each entry loads the command of that name.
COMMANDS = {
    "calibrate": ("calibrate_cmd", "calibrate_command",
                  "Calibrate an FP32 ONNX model on real data into Q/DQ form."),
    "check": ("check_cmd", "check_command", "Predict how TensorRT fuses and types the layers (graph only)."),
    "build": ("build_cmd", "build_command", "Build a Q/DQ model (TensorRT, else ONNX Runtime); precision."),
    "report": ("report_cmd", "report_command", "Which layers of a TensorRT engine run INT8 (its layer JSON)."),
    "compare": ("compare_cmd", "compare_command", "How far a quantized model is from FP32, on real data."),
    "fix-residuals": ("fix_cmd", "fix_command", "Repair a model's Q/DQ placement for TensorRT."),
}


def option_for(setting: str) -> str:
    return SETTING_OPTIONS.get(setting, "--" + setting.replace("_", "-"))


def error_line(exc: QdqError) -> str:
    """The message, then the options that fix it: 'no calibration samples were read; ... (see --data)'."""
    hint = f" (see {', '.join(option_for(s) for s in exc.settings)})" if exc.settings else ""
    return f"{exc}{hint}"


class QdqGroup(click.Group):
    """QdqError -> 'qdqtool: error: ...' and exit status 1; a ConfigError the option types did not catch -> the
    same one line, exit 2 (a usage error); a signal -> 130/143 whatever exception it became; anything else keeps
    its traceback.
    Commands are listed from COMMANDS and imported only when one is run (or asked for its help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str):
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"{__package__}.{module}"), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BaseException as exc:
            signum = None if isinstance(exc, click.exceptions.Exit) else interrupts.signal_of(exc)
            if signum is not None:
                click.echo(interrupts.message(signum), err=True)
                ctx.exit(interrupts.exit_status(signum))
            if isinstance(exc, QdqError):
                click.echo(f"qdqtool: error: {error_line(exc)}", err=True)
                ctx.exit(USAGE_EXIT_STATUS if isinstance(exc, ConfigError) else USER_ERROR_EXIT_STATUS)
            raise


@click.group(cls=QdqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qdqtool")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr; no progress bar.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Get convolutional ONNX models into TensorRT INT8 correctly: calibrate, repair Q/DQ placement, prove precision."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("qdqtool: %(levelname)s: %(message)s"))
    logger = logging.getLogger("qdqtool")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    ctx.obj = {"quiet": quiet, "verbose": verbose}


def main() -> None:
    """The console script: SIGINT and SIGTERM are handled from here on (see interrupts)."""
    interrupts.install()
    try:
        cli(prog_name="qdqtool")
    except BaseException as exc:
        signum = interrupts.signal_of(exc)
        if signum is None or (isinstance(exc, SystemExit) and exc.code == interrupts.exit_status(signum)):
            raise
        if not isinstance(exc, SystemExit):  # a signal outside a command (while click parses): say it once
            click.echo(interrupts.message(signum), err=True)
        raise SystemExit(interrupts.exit_status(signum)) from None


if __name__ == "__main__":
    main()
