"""Resolve what the user typed where an architecture is asked for."""

from __future__ import annotations

import json
from pathlib import Path

from nas.runmodel import parse_run_trial, trial_row
from space import ArchSpec, resolve_spec, spec_from_dict
from space.errors import UserInputError


def resolve_arch(text: str) -> ArchSpec:
    """A catalog name, a YAML/JSON spec file, or ``RUN_DIR:TRIAL_ID`` (a trial of a search run, or a baseline's
    negative id)."""
    from_run = parse_run_trial(text)
    if from_run is not None:
        return trial_spec(*from_run)
    if not text:
        raise UserInputError("empty architecture name; give a catalog name, a spec file or RUN_DIR:TRIAL_ID")
    return resolve_spec(text)


def trial_spec(run_dir: str | Path, trial_id: int) -> ArchSpec:
    """The architecture of trial ``trial_id`` of a run (``RUN_DIR:TRIAL_ID`` on the command line)."""
    row = trial_row(run_dir, trial_id)
    if not row.get("spec"):
        raise UserInputError(f"trial {trial_id} of {run_dir} has no architecture (status {row.get('status')})")
    return spec_from_dict(json.loads(row["spec"]))
