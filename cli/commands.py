"""The list of subcommands; each lives in its own module."""

from .build_cmd import build_command
from .calibrate_cmd import calibrate_command
from .check_cmd import check_command
from .compare_cmd import compare_command
from .fix_cmd import fix_command
from .report_cmd import report_command

ALL = [calibrate_command, build_command, report_command, check_command, fix_command, compare_command]
