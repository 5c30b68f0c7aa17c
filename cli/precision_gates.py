"""--fail-on handling for precision reports: a failed gate ends the command with exit status 3 (1 is a user error)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click

from qdqtool.errors import QdqError
from qdqtool.report.gates import GATES, NAME_ONLY_GATES, describe_violations
from qdqtool.report.layers import PrecisionReport

GATE_EXIT_STATUS = 3


def report_options(command: Callable) -> Callable:
    """--fail-on, --json and --summary-only: the options of every command that prints a precision report."""
    options = (
        click.option("--fail-on", "fail_on", default="", metavar="GATES",
                     help=f"Comma list; exit {GATE_EXIT_STATUS} when any is found: " + ", ".join(GATES)),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout."),
        click.option("--summary-only", is_flag=True, help="Print the summary without the per-layer table."),
    )
    for option in reversed(options):
        command = option(command)
    return command


def enforce_gates(report: PrecisionReport, gates: Sequence[str]) -> None:
    """Print each violated gate on stderr and exit 3; refuse gates that need precisions when none are known."""
    if not gates:
        return
    if not report.precision_known:
        blind = [g for g in gates if g not in NAME_ONLY_GATES]
        if blind:
            raise QdqError(f"--fail-on {','.join(blind)} needs layer precisions, but {report.source} has names only; "
                           "export it with `trtexec --profilingVerbosity=detailed --exportLayerInfo=FILE`")
    exit_on_failed_gates(describe_violations(report.summary.gate_counts(), gates))


def exit_on_failed_gates(failures: Sequence[str]) -> None:
    """Print each failed gate on stderr; exit with GATE_EXIT_STATUS when there is any."""
    for line in failures:
        click.echo(f"qdqtool: gate failed: {line}", err=True)
    if failures:
        click.get_current_context().exit(GATE_EXIT_STATUS)
