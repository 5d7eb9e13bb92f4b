"""Names that say what a module holds: no two modules under ``nas/`` share a stem (docs/architecture.md).

``nas/cli/`` and ``nas/bench/`` are exempt: each mirrors the command line's verbs (``nas search`` is
``nas/cli/search.py``, ``nas bench search`` is ``nas/bench/search.py``), which says what they hold.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

NAS = Path(__file__).resolve().parents[1] / "nas"
VERB_MIRRORS = ("cli", "bench")


def test_no_two_library_modules_share_a_stem():
    stems: dict[str, list[str]] = defaultdict(list)
    for path in NAS.rglob("*.py"):
        relative = path.relative_to(NAS)
        if path.name == "__init__.py" or relative.parts[0] in VERB_MIRRORS:
            continue
        stems[path.stem].append(str(relative))
    assert {stem: where for stem, where in stems.items() if len(where) > 1} == {}
