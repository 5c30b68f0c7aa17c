"""The list of subcommands; each lives in its own module."""

ALL = []

from .report_cmd import report_command

ALL.append(report_command)
