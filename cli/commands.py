"""The list of subcommands; each lives in its own module."""

ALL = []

from .calibrate_cmd import calibrate_command  # noqa: E402

ALL.append(calibrate_command)

from .build_cmd import build_command
from .report_cmd import report_command

ALL += [build_command, report_command]

from .check_cmd import check_command  # noqa: E402
from .fix_cmd import fix_command  # noqa: E402

ALL += [check_command, fix_command]
