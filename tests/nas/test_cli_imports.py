"""``nas --version`` and every ``--help`` answer without loading torch, Ray, Optuna or pandas.

Those libraries take seconds to import; the commands load them when they run (docs/architecture.md, "Startup").
Each check runs the real entry point in a fresh interpreter and reads back which modules it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.nas.cli_helpers import REPO

HEAVY = ("torch", "ray", "optuna", "pandas", "numpy")

LOADED_AFTER = """
import json, sys
from nas.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def loaded_by(*args: str) -> set[str]:
    """The top-level packages imported by ``nas ARGS`` in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", LOADED_AFTER, *args], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [
    ("--version",),
    ("--help",),
    ("search", "--help"),
    ("space", "show", "--help"),
    ("profile", "--help"),
    ("bench", "--help"),
    ("retrain", "--help"),
    ("export", "--help"),
], ids=lambda args: " ".join(args))
def test_version_and_help_load_no_heavy_library(args):
    assert not loaded_by(*args) & set(HEAVY)


def test_the_check_sees_a_command_that_does_load_them():
    """The same probe on a command that needs torch finds it (so an empty answer above means something)."""
    assert "torch" in loaded_by("catalog", "r3d-18")
