"""The dependency direction of the packages (DEVELOPERS.md, issue 12), read from the source with ``ast``.

``nas -> runners -> space`` and ``nas.cli -> reports -> (nas.runmodel, nas.pareto, nas.objectives)``:
``space`` imports only torch and yaml; ``runners`` never imports ``nas`` or ``reports``; ``reports`` never
imports ``runners`` and reads only the run model and the Pareto math of ``nas``, not even through another
module; no ``nas`` module outside the CLI and the benchmarks imports ``reports``, directly or through another
module (the search library never builds a report); and the module import graph has no cycle.
"""

from __future__ import annotations

import pytest
import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("nas", "space", "runners", "reports")
REPORTS_MAY_READ = {"nas.runmodel", "nas.pareto", "nas.objectives"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every absolute module a file imports (deferred imports inside functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_space_imports_only_torch_and_yaml():
    allowed = set(sys.stdlib_module_names) | {"torch", "yaml", "space", "__future__"}
    for path in (REPO / "space").rglob("*.py"):
        outside = {m.split(".")[0] for m in _imports(path)} - allowed
        assert not outside, (path, outside)


def test_packages_point_one_way():
    for name, targets in _graph().items():
        top = name.split(".")[0]
        packages = {t.split(".")[0] for t in targets}
        if top == "runners":
            assert not packages & {"nas", "reports"}, name
        if top == "reports":
            assert "runners" not in packages, name
            assert {t for t in targets if t.startswith("nas")} <= REPORTS_MAY_READ | {"nas"}, name
        if top == "nas" and not name.startswith("nas.cli"):
            assert "reports" not in packages or name.startswith("nas.bench"), name


def test_the_search_library_never_reaches_reports():
    """Only the CLI (``nas search`` builds the report after a search; ``nas.__main__`` runs the CLI) and the
    benchmarks, which write their own reports, import ``reports``; no other ``nas`` module does, through any
    chain of imports (deferred imports inside functions included)."""
    graph = _graph()
    library = [n for n in graph if n.split(".")[0] == "nas" and not n.startswith(("nas.cli", "nas.__main__", "nas.bench"))]
    assert "nas.search" in library and "nas.core.searchcore" in library and "nas.retrain" in library
    for name in library:
        assert not {m for m in _reachable(graph, name) if m.split(".")[0] == "reports"}, name


def test_reports_reach_no_more_of_nas_than_the_run_model_and_the_pareto_math():
    graph = _graph()
    for name in (n for n in graph if n.split(".")[0] == "reports"):
        reached = _reachable(graph, name)
        assert {m for m in reached if m.split(".")[0] == "nas"} <= REPORTS_MAY_READ | {"nas"}, name
        assert not {m for m in reached if m.split(".")[0] == "runners"}, name


def test_the_run_model_and_the_pareto_math_import_no_reports_and_no_cli():
    graph = _graph()
    for name in REPORTS_MAY_READ:
        assert not {t for t in graph[name] if t.startswith(("reports", "nas.cli", "runners"))}, name


@pytest.mark.slow
def test_no_import_cycle_between_modules():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


APPLICATION = ("nas.cli", "nas.bench", "nas.__main__")


def _layer(module: str) -> str:
    if module.startswith(APPLICATION):
        return "application"
    return {"nas": "library", "reports": "reports"}.get(module.split(".")[0], "below")


def test_application_over_library_and_reports_with_no_cycle():
    """docs/architecture.md, "Layers inside nas/": the application (CLI, benchmarks) may import the library and
    ``reports``; neither the library nor ``reports`` reaches the application through any chain of imports, and
    the library never reaches ``reports``: the three layers form no cycle."""
    graph = _graph()
    assert {_layer(n) for n in graph} >= {"application", "library", "reports"}
    for name in graph:
        reached = {_layer(m) for m in _reachable(graph, name)}
        if _layer(name) == "library":
            assert not reached & {"application", "reports"}, name
        if _layer(name) == "reports":
            assert "application" not in reached, name


TRACKING_MODULES = {"nas.tracking", "nas.mlflowsync"}


def test_only_the_tracking_modules_import_mlflow_and_only_inside_functions():
    """docs/architecture.md, "Startup": mlflow (the optional extra ``videonas[mlflow]``) is imported by
    ``nas.tracking`` and ``nas.mlflowsync`` alone, inside the functions that run with ``--mlflow``, so no other
    code needs the extra installed and no module import (``nas search --help`` included) pays for it."""
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            in_functions = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                            for node in ast.walk(fn)}
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
                if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
                    assert _module_name(path) in TRACKING_MODULES, (path, node.lineno)
                    assert id(node) in in_functions, f"{path}:{node.lineno} imports mlflow at module level"
