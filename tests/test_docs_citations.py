"""Code comments cite documents the repository has: ``docs/*.md`` (or the README), never "SPEC n" or "issue n".

The specification and the issues live outside the repository; a reader of the code cannot open them. A
comment that needs a reason points at the project's own docs, and every ``docs/...`` file a comment names exists.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("nas", "space", "runners", "reports")

# Modules owned by work in progress elsewhere that still cite "SPEC n" / "issue n":
# to be cleaned by the executor refactor (then this set is emptied).
CITATION_ALLOWANCE: set[str] = set()
# Docs cited in code and not written yet (being written with the code that cites them).
PENDING_DOCS: set[str] = set()

OUTSIDE_CITATION = re.compile(r"\bSPEC\b|\b[Ii]ssues? \d+")
DOC_PATH = re.compile(r"\bdocs/[\w./-]+?\.(?:md|py)\b")


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def _allowed(relative: str) -> bool:
    return any(relative == entry or (entry.endswith("/") and relative.startswith(entry)) for entry in CITATION_ALLOWANCE)


def test_no_code_cites_the_spec_or_an_issue():
    offenders = []
    for path in _modules():
        relative = path.relative_to(REPO).as_posix()
        if _allowed(relative):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if OUTSIDE_CITATION.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == [], "cite docs/*.md instead:\n" + "\n".join(offenders)


def test_every_doc_the_code_cites_exists():
    missing = set()
    for path in _modules():
        for cited in DOC_PATH.findall(path.read_text()):
            if not (REPO / cited).is_file() and cited not in PENDING_DOCS:
                missing.add(f"{path.relative_to(REPO).as_posix()}: {cited}")
    assert missing == set()

