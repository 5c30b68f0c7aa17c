"""The package layers, read from the import statements (ast), so the layout stays the architecture:

errors/fileio <- trt/rules.py (tables) <- onnxgraph, samples, runner <- trt <- placement, check
<- calibrate, repair, build, report (pipelines) <- api <- cli. A module imports only from its own layer or below;
nothing in qdqtool imports cli; one module per heavy dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "qdqtool"
CLI = ROOT / "cli"

# module-name prefix -> layer; the longest matching prefix wins. trt.rules and trt.kinds hold only tables and enums
# (they import nothing from qdqtool but errors), so the ONNX-level modules may read their op names and kinds; the
# rest of trt builds on onnxgraph.
LAYERS = {
    "qdqtool.errors": 0, "qdqtool.fileio": 0, "qdqtool.weightstore": 0,
    "qdqtool.trt.rules": 1, "qdqtool.trt.kinds": 1,
    "qdqtool.onnxgraph": 2, "qdqtool.samples": 2, "qdqtool.runner": 2,
    "qdqtool.trt": 3,
    "qdqtool.placement": 4, "qdqtool.check": 4, "qdqtool.accuracy": 4,
    "qdqtool.calibrate": 5, "qdqtool.repair": 5, "qdqtool.build": 5, "qdqtool.report": 5,
    "qdqtool.api": 6, "qdqtool": 6,   # the package itself: the public API's lazy facade
    "qdqtool.cli": 7,
}
ONLY_IMPORTER = {"tensorrt": "qdqtool.build.tensorrt_backend", "onnxruntime": "qdqtool.runner"}


def layer_of(module: str) -> int:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def module_name(path: Path) -> str:
    if path.is_relative_to(CLI):
        parts = ("qdqtool", "cli", *path.relative_to(CLI).with_suffix("").parts)
    else:
        parts = ("qdqtool", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, text: str | None = None) -> list[str]:
    """Every module path.py (or text, as if it were path.py) imports; function-level imports included."""
    tree = ast.parse(path.read_text() if text is None else text, str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in ALL_MODULES]
    return found


SOURCES = sorted(PACKAGE.rglob("*.py")) + sorted(CLI.rglob("*.py"))
ALL_MODULES = {module_name(p) for p in SOURCES}


def test_every_module_has_a_layer():
    """Each module falls under a named layer (only the package itself uses the bare 'qdqtool' entry)."""
    unplaced = [m for m in ALL_MODULES if m != "qdqtool"
                and max((p for p in LAYERS if m == p or m.startswith(p + ".")), key=len) == "qdqtool"]
    assert unplaced == []
    assert layer_of("qdqtool.trt.fusion") == 3 and layer_of("qdqtool.trt.rules") == 1


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_from_its_layer_or_below(path):
    importer = module_name(path)
    upward = [m for m in imports_of(path)
              if m.startswith("qdqtool") and layer_of(m) > layer_of(importer) and not importer.startswith(m)]
    assert upward == [], f"{importer} (layer {layer_of(importer)}) imports a higher layer: {upward}"


def test_nothing_in_the_library_imports_the_cli():
    offenders = [module_name(p) for p in PACKAGE.rglob("*.py")
                 if any(m == "qdqtool.cli" or m.startswith("qdqtool.cli.") or m == "cli" or m.startswith("cli.")
                        for m in imports_of(p))]
    assert offenders == []


@pytest.mark.parametrize("dependency", sorted(ONLY_IMPORTER))
def test_one_module_per_heavy_dependency(dependency):
    importers = {module_name(p) for p in SOURCES
                 if any(m == dependency or m.startswith(dependency + ".") for m in imports_of(p))}
    assert importers == {ONLY_IMPORTER[dependency]}


def test_the_checker_sees_an_upward_import():
    """The layer test can fail: an upward import written in a lower layer is reported."""
    lower = PACKAGE / "onnxgraph" / "edit.py"
    found = imports_of(lower, "def f():\n    from qdqtool.calibrate.pipeline import calibrate_model\n")
    assert [m for m in found if layer_of(m) > layer_of(module_name(lower))] == ["qdqtool.calibrate.pipeline"]


def import_graph(texts: dict[Path, str] | None = None) -> dict[str, set[str]]:
    """Module -> the qdqtool modules it imports (function-level imports included); texts replace files' contents."""
    graph = {}
    for path in SOURCES:
        text = (texts or {}).get(path)
        graph[module_name(path)] = {m for m in imports_of(path, text) if m in ALL_MODULES and m != module_name(path)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle (a -> b -> ... -> a) in the graph, or [] when there is none. A circle inside one layer
    passes the layer test, yet makes import order matter and hides which module builds on which."""
    state: dict[str, int] = {}           # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == 1:
                return [*path[path.index(imported):], imported]
            if imported not in state:
                found = visit(imported)
                if found:
                    return found
        path.pop()
        state[module] = 2
        return []

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return []


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle == [], f"import circle: {' -> '.join(cycle)}"


def test_the_checker_sees_an_import_circle_inside_a_layer():
    """The circle test can fail: repair.pipeline and repair.replace_pipeline importing each other (same layer, so the
    layer test passes) is reported."""
    replace = PACKAGE / "repair" / "replace_pipeline.py"
    text = replace.read_text() + "\n\ndef f():\n    from qdqtool.repair.pipeline import fix_model\n"
    cycle = find_cycle(import_graph({replace: text}))
    assert cycle and cycle[0] == cycle[-1]
    assert {"qdqtool.repair.pipeline", "qdqtool.repair.replace_pipeline"} <= set(cycle)
