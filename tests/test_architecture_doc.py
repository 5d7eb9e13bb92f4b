"""``docs/architecture.md``'s module table is the code's: path, line count and first docstring line of every module.

Regenerate it with ``python docs/gen_modules.py`` (the script this test loads) after adding, removing or
editing a module.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_modules", REPO / "docs" / "gen_modules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_module_table_is_the_codes():
    generator = _generator()
    documented, current = generator.documented_table(), generator.module_table()
    diff = "\n".join(difflib.unified_diff(documented, current, "docs/architecture.md", "the code", lineterm="", n=0))
    assert documented == current, f"the module table is stale; run `python docs/gen_modules.py`:\n{diff}"


def test_the_generator_rewrites_only_the_table(tmp_path):
    generator = _generator()
    doc = tmp_path / "architecture.md"
    doc.write_text(f"# Title\n\ntext before\n\n{generator.HEADING}\n\n```\nold row\n```\n\ntext after\n")
    assert generator.regenerate(doc, REPO)
    text = doc.read_text()
    assert text.startswith("# Title\n\ntext before\n") and text.endswith("```\n\ntext after\n")
    assert generator.documented_table(doc) == generator.module_table(REPO)
    assert not generator.regenerate(doc, REPO)  # already current: unchanged
