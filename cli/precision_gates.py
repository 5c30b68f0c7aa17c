"""--fail-on and --show, shared by check, build and report: a failed gate ends the command with exit status 3."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from qdqtool.errors import ConfigError, QdqError
from qdqtool.report.gates import (
    COMPARISON_GATES,
    GATES,
    NAME_ONLY_GATES,
    describe_violations,
    measures_tensorrt,
    parse_gates,
)
from qdqtool.report.layers import PrecisionReport

GATE_EXIT_STATUS = 3
EXIT_EPILOG = (f"Exit status: 0 ok, 1 bad file or data, 2 bad or missing option value, {GATE_EXIT_STATUS} a gate "
               "or threshold failed, 130/143 interrupted (SIGINT/SIGTERM).")
SHOW_CHOICES = ("all", "problems", "summary")


class GatesType(click.ParamType):
    """A comma list of gate names; returns them as a tuple, validated against the gate table."""

    name = "GATES"

    def __init__(self, allowed: Mapping[str, str] = GATES):
        self.allowed = allowed

    def convert(self, value: Any, param, ctx) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_gates(value, self.allowed)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def fail_on_option(verb: str = "is found", allowed: Mapping[str, str] = GATES) -> Callable:
    return click.option("--fail-on", "fail_on", type=GatesType(allowed), default="", metavar="GATES",
                        help=f"Comma list; exit {GATE_EXIT_STATUS} when any {verb}: " + ", ".join(allowed))


def show_option(default: str) -> Callable:
    """--show all|problems|summary; the older spellings stay as hidden aliases (check --all, --summary-only)."""

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def with_show(*args, show: str, all_alias: bool, summary_alias: bool, **kwargs):
            if all_alias or summary_alias:
                show = "all" if all_alias else "summary"
            return command(*args, show=show, **kwargs)

        options = (
            click.option("--show", type=click.Choice(SHOW_CHOICES), default=default, show_default=True,
                         help="Rows to print: every layer, only what falls back or costs, or the summary only."),
            click.option("--all", "all_alias", is_flag=True, hidden=True, help="Same as --show all."),
            click.option("--summary-only", "summary_alias", is_flag=True, hidden=True, help="Same as --show summary."),
        )
        for option in reversed(options):
            with_show = option(with_show)
        return with_show

    return decorate


def report_options(command: Callable, allowed: Mapping[str, str] = GATES) -> Callable:
    """--fail-on, --json and --show: the options of every command that prints a precision report."""
    options = (
        fail_on_option(allowed=allowed),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout."),
        show_option("all"),
    )
    for option in reversed(options):
        command = option(command)
    return command


def enforce_gates(report: PrecisionReport, gates: Sequence[str], extra_counts: Mapping[str, int] | None = None) -> None:
    """Print each violated gate on stderr and exit 3; refuse gates that need precisions when none are known.
    extra_counts: the counts of gates the report itself cannot judge (report --compare's mismatch)."""
    if not gates:
        return
    if not measures_tensorrt(report):
        raise QdqError(f"--fail-on judges TensorRT's layers, and {report.source} was built by ONNX Runtime, whose CPU "
                       "nodes are not TensorRT's; judge the Q/DQ model with `qdqtool check MODEL --fail-on ...` "
                       "(what `qdqtool build` does itself when it builds with ONNX Runtime)")
    missing = [g for g in gates if g in COMPARISON_GATES and g not in (extra_counts or {})]
    if missing:
        raise QdqError(f"--fail-on {','.join(missing)} needs --compare MODEL.onnx (the Q/DQ model the engine was "
                       "built from)", settings=("fail_on",))
    if not report.precision_known:
        blind = [g for g in gates if g not in NAME_ONLY_GATES and g not in COMPARISON_GATES]
        if blind:
            raise QdqError(f"--fail-on {','.join(blind)} needs layer precisions, but {report.source} has names only; "
                           "export it with `trtexec --profilingVerbosity=detailed --exportLayerInfo=FILE`")
    exit_on_failed_gates(describe_violations({**report.summary.gate_counts(), **(extra_counts or {})}, gates))


def exit_on_failed_gates(failures: Sequence[str]) -> None:
    """Print each failed gate on stderr; exit with GATE_EXIT_STATUS when there is any."""
    for line in failures:
        click.echo(f"qdqtool: gate failed: {line}", err=True)
    if failures:
        click.get_current_context().exit(GATE_EXIT_STATUS)
