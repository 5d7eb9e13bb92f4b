"""Code a newcomer can read top-down: no module over 450 lines, no function over 60 lines (docs/architecture.md).

Measured on the library packages (``nas``, ``space``, ``runners``, ``reports``), never on ``tests/``. A
function's length is ``end_lineno - lineno + 1`` of its ``def`` (decorators not counted, docstring and body
counted); a nested function counts on its own and inside the function that holds it. A module or function
that outgrows its limit is split by concept (one concept per module, a helper per step), not squeezed.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("nas", "space", "runners", "reports")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_module_is_over_450_lines():
    offenders = []
    for path in _modules():
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            offenders.append(f"{path.relative_to(REPO).as_posix()}: {lines} lines")
    assert offenders == [], f"modules over {MAX_MODULE_LINES} lines (split them by concept):\n" + "\n".join(offenders)


def test_no_function_is_over_60_lines():
    offenders = []
    for path in _modules():
        for node in _functions(ast.parse(path.read_text())):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                offenders.append(f"{path.relative_to(REPO).as_posix()}:{node.lineno} {node.name}: {length} lines")
    assert offenders == [], f"functions over {MAX_FUNCTION_LINES} lines (factor out helpers):\n" + "\n".join(offenders)
