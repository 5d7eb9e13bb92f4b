"""Regenerate the module table of ``docs/architecture.md`` from the code: ``python docs/gen_modules.py``.

One row per Python module of the four packages (``nas``, ``reports``, ``runners``, ``space``), sorted by path:
the path, its line count and the first line of its docstring (cut at :data:`WIDTH` characters). The table is
the fenced block under the heading ``## Modules (lines, first docstring line)``. ``--check`` only compares and
exits 1 when the document is stale; ``tests/test_architecture_doc.py`` runs the same comparison, so the table
cannot go stale unnoticed. This script lives under ``docs/`` because it maintains a document: no package
imports it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
PACKAGES = ("nas", "reports", "runners", "space")
HEADING = "## Modules (lines, first docstring line)"
WIDTH = 110  # characters of the docstring line shown


def module_row(path: Path, repo: Path = REPO) -> str:
    """``path  lines  first docstring line`` in the table's fixed columns."""
    text = path.read_text()
    docstring = ast.get_docstring(ast.parse(text)) or ""
    first = docstring.strip().splitlines()[0].strip() if docstring.strip() else ""
    return f"{path.relative_to(repo).as_posix():<30}{text.count(chr(10)):>6}  {first[:WIDTH]}".rstrip()


def module_table(repo: Path = REPO) -> list[str]:
    """Every module's row, sorted by path."""
    paths = sorted((p for package in PACKAGES for p in (repo / package).rglob("*.py")),
                   key=lambda p: p.relative_to(repo).as_posix())
    return [module_row(p, repo) for p in paths if "__pycache__" not in p.parts]


def _table_span(lines: list[str]) -> tuple[int, int]:
    """Indices of the first and last row of the fenced block under :data:`HEADING` (exclusive of the fences)."""
    start = lines.index(HEADING)
    opening = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    closing = next(i for i in range(opening + 1, len(lines)) if lines[i].startswith("```"))
    return opening + 1, closing


def documented_table(doc: Path = DOC) -> list[str]:
    """The rows the document shows now."""
    lines = doc.read_text().splitlines()
    first, end = _table_span(lines)
    return lines[first:end]


def regenerate(doc: Path = DOC, repo: Path = REPO) -> bool:
    """Write the current table into ``doc``; returns whether it changed."""
    lines = doc.read_text().splitlines()
    first, end = _table_span(lines)
    table = module_table(repo)
    if lines[first:end] == table:
        return False
    doc.write_text("\n".join(lines[:first] + table + lines[end:]) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the table is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = documented_table() != module_table()
        print(f"{DOC.relative_to(REPO)}: module table {'stale: run python docs/gen_modules.py' if stale else 'up to date'}")
        return 1 if stale else 0
    changed = regenerate()
    print(f"{DOC.relative_to(REPO)}: module table {'regenerated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
