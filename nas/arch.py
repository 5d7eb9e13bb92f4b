"""Resolve what the user typed where an architecture is asked for."""

from __future__ import annotations

import re

from space import ArchSpec, resolve_spec
from space.errors import UserInputError


def resolve_arch(text: str) -> ArchSpec:
    """A catalog name, a YAML/JSON spec file, or ``RUN_DIR:TRIAL_ID`` (a trial of a search run)."""
    run_dir, sep, trial = text.rpartition(":")
    if sep and run_dir and re.fullmatch(r"-?[0-9]+", trial):  # baselines have negative ids
        from nas.rundir import trial_spec

        return trial_spec(run_dir, int(trial))
    if not text:
        raise UserInputError("empty architecture name; give a catalog name, a spec file or RUN_DIR:TRIAL_ID")
    return resolve_spec(text)
