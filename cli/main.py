"""qdqtool's command group: logging set-up, one-line errors for user mistakes, tracebacks for bugs."""

from __future__ import annotations

import logging
import signal
import sys

import click

from qdqtool import __version__
from qdqtool.errors import ConfigError, QdqError

USER_ERROR_EXIT_STATUS = 1   # bad files or data; 2 is click's usage error (bad option values); 3 a failed gate
# The library names the settings that fix an error (QdqError.settings); these are their options where the name
# differs from the option (default: --setting-name).
SETTING_OPTIONS = {"data_dir": "--data", "data_folder": "--data", "ranges_file": "--ranges", "report": "--report",
                   "workspace_mib": "--workspace", "fail_on": "--fail-on",
                   "trtexec_major": "--trt-version"}


def option_for(setting: str) -> str:
    return SETTING_OPTIONS.get(setting, "--" + setting.replace("_", "-"))


def error_line(exc: QdqError) -> str:
    """The message, then the options that fix it: 'no calibration samples were read; ... (see --data)'."""
    hint = f" (see {', '.join(option_for(s) for s in exc.settings)})" if exc.settings else ""
    return f"{exc}{hint}"


class QdqGroup(click.Group):
    """QdqError -> 'qdqtool: error: ...' and exit status 1; a ConfigError the option types did not catch -> click's
    usage error (exit 2); anything else keeps its traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.UsageError(error_line(exc), ctx) from exc
        except QdqError as exc:
            click.echo(f"qdqtool: error: {error_line(exc)}", err=True)
            ctx.exit(USER_ERROR_EXIT_STATUS)


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


def _register() -> None:
    from . import commands

    for command in commands.ALL:
        cli.add_command(command)


_register()


def _terminated(signum: int, frame) -> None:
    """SIGTERM unwinds like Ctrl-C: temp files are removed and no output is left half-written (exit 143)."""
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    cli(prog_name="qdqtool")


if __name__ == "__main__":
    main()
