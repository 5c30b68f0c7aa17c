"""The build package's import rules: one module per heavy dependency, and imports that go one way
(pipeline -> backends -> config), so the backends never import the pipeline (issue 7)."""

from __future__ import annotations

import ast
from pathlib import Path

BUILD = Path(__file__).resolve().parents[2] / "qdqtool" / "build"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_one_module_per_heavy_dependency():
    owners = {"tensorrt": {"tensorrt_backend.py"}, "cuda": {"cuda_device.py"}, "torch": {"cuda_device.py"},
              "onnxconverter_common": {"trt_references.py"}}
    for dependency, allowed in owners.items():
        users = {path.name for path in BUILD.glob("*.py")
                 if any(name == dependency or name.startswith(dependency + ".") for name in _imports(path))}
        assert users == allowed, dependency


def test_only_the_cli_side_imports_the_pipeline_and_config_imports_no_backend():
    importers = {path.name for path in BUILD.glob("*.py") if "qdqtool.build.pipeline" in _imports(path)}
    assert importers == set()
    config = _imports(BUILD / "config.py")
    assert not any(name.startswith("qdqtool.build.") and name != "qdqtool.build.shapes.ShapeProfile"
                   and not name.startswith("qdqtool.build.shapes") for name in config)


def test_library_messages_name_no_cli_flags():
    flags = ("--shapes", "--backend", "--runs", "--warmup", "--workspace", "--fp16", "--weakly-typed", "--data",
             "--ranges", "--reference", "-vv", "--trt-version")
    for path in BUILD.glob("*.py"):
        strings = [n.value for n in ast.walk(ast.parse(path.read_text()))
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        named = [f for f in flags for text in strings if f in text and "trtexec" not in path.name]
        assert not named, f"{path.name} names {named}"
