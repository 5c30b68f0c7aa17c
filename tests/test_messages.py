"""Library messages never name CLI options: the strings in qdqtool/ (ast string constants, docstrings included)
hold no `--option`, except command lines of other tools (trtexec). Errors name the settings that fix them instead
(QdqError.settings), which the CLI renders as its options."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "qdqtool"
OPTION = re.compile(r"(?<![\w-])--[a-z][A-Za-z0-9-]*")
OTHER_TOOLS = re.compile(r"trtexec[^`]*")      # prose quoting a trtexec command line: `trtexec --flag ...`
# The module that builds trtexec command lines; its strings may hold trtexec's own flags (and nothing else).
TRTEXEC_MODULE = "build/trtexec.py"
TRTEXEC_FLAGS = {"--onnx", "--saveEngine", "--int8", "--fp16", "--stronglyTyped", "--shapes", "--minShapes",
                 "--optShapes", "--maxShapes", "--memPoolSize", "--profilingVerbosity", "--exportLayerInfo"}


def options_in(text: str, module: str) -> list[str]:
    found = OPTION.findall(OTHER_TOOLS.sub("", text))
    return [o for o in found if o not in TRTEXEC_FLAGS] if module == TRTEXEC_MODULE else found


def options_named(path: Path) -> list[str]:
    module = str(path.relative_to(PACKAGE))
    return [option for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            for option in options_in(node.value, module)]


def test_library_strings_name_no_cli_options():
    named = {str(p.relative_to(PACKAGE)): options_named(p) for p in sorted(PACKAGE.rglob("*.py"))}
    offenders = {path: options for path, options in named.items() if options}
    assert offenders == {}


def test_the_pattern_finds_an_option_and_skips_trtexec():
    assert options_in("pass --data DIR; see `trtexec --exportLayerInfo=F`", "calibrate/collect.py") == ["--data"]


def test_trtexec_flags_pass_only_in_the_trtexec_module():
    assert options_in("--minShapes=x:1x3 --saveEngine=e.plan", TRTEXEC_MODULE) == []
    assert options_in("--minShapes=x:1x3 --workspace 64", TRTEXEC_MODULE) == ["--workspace"]
    assert options_in("use --shapes", "build/tensorrt_backend.py") == ["--shapes"]
