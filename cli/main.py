"""qdqtool's command group: logging set-up, one-line errors for user mistakes, tracebacks for bugs."""

from __future__ import annotations

import logging
import signal
import sys

import click

from qdqtool import __version__
from qdqtool.errors import QdqError


class QdqGroup(click.Group):
    """Turns QdqError into 'qdqtool: error: ...' and exit status 1; anything else keeps its traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except QdqError as exc:
            click.echo(f"qdqtool: error: {exc}", err=True)
            ctx.exit(1)


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
