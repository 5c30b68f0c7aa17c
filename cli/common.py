"""Pieces every command shares: JSON output, progress bars on stderr, human tables."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import click


def emit_json(payload: object) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))


@contextmanager
def progress_bar(label: str, quiet: bool) -> Iterator:
    """Yields (set_total, advance) callbacks; draws a bar on stderr unless quiet or stderr is not a terminal."""
    state: dict = {"bar": None}

    def set_total(total: int) -> None:
        if not quiet and sys.stderr.isatty():
            state["bar"] = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
            state["bar"].__enter__()

    def advance(count: int) -> None:
        bar: Optional[click._termui_impl.ProgressBar] = state["bar"]
        if bar is not None:
            bar.update(count)

    try:
        yield set_total, advance
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)


def quiet_from(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.obj and root.obj.get("quiet"))


def html_option(command):
    """--html OUT.html: the engine page (qdqtool.report.engine_page), one self-contained file."""
    return click.option("--html", "html_path", type=click.Path(path_type=Path), metavar="OUT.html",
                        help="Also write the engine as one self-contained HTML page (boxes coloured by precision; "
                             "opens from disk, no network).")(command)


def wrote_page(path: Path) -> None:
    click.echo(f"engine page: {path}", err=True)
