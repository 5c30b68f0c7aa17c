"""The list of subcommands; each lives in its own module."""

ALL = []
