"""Starting a run directory so that a user's mistake never takes its name for good (``docs/reliability.md``).

* :func:`check_before_creating`: every user error that can be found without Ray (the space, the baselines,
  the latency profile, ``--data`` / ``--cache``, GPUs on a machine without any, a name the storage already
  holds) is raised before the directory exists.
* :func:`take_over_leftover`: a folder holding only what a start that never got going leaves behind
  (``.lock``, ``study.db``, ``costs/``, ``ray/``, no ``search.yaml``: a driver killed while starting) is
  cleared for the new start. Anything else in the folder keeps the "already exists" error: we never
  delete a file we did not write.
* :func:`discard_unstarted`: a fresh run that fails (or is interrupted) before its first trial started is
  removed again, its study included, so the corrected command can use the same name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna

from nas.config import SearchConfig
from nas.proxydata import check_data
from nas.runlock import RunLockedError, held_by_a_driver
from nas.runmodel import LOCK_FILE, RunDir, SPACE_FILE, STATE_FILE, STUDY_FILE, SEARCH_FILE, TRIALS_FILE
from nas.study import BASELINE_SUFFIX
from space import catalog_spec
from space.errors import UserInputError
from space.searchspace import SearchSpace, load_space

# What a fresh start writes before its first trial (and nothing a user would keep).
_STARTUP_FILES = {LOCK_FILE, STUDY_FILE, SPACE_FILE, SEARCH_FILE, STATE_FILE, TRIALS_FILE, "costs", "ray"}
_LEFTOVER_FILES = _STARTUP_FILES - {SEARCH_FILE, STATE_FILE, TRIALS_FILE}  # before search.yaml


def check_before_creating(config: SearchConfig, run: RunDir, *, resume: bool) -> SearchSpace:
    """Raise every user error that needs no Ray; returns the loaded space."""
    if resume and not run.exists():
        raise UserInputError(f"cannot resume {run.path}: not a run directory (no search.yaml)")
    if not resume and run.path.exists() and not _is_leftover(run.path):
        raise UserInputError(f"run {run.path} already exists; resume it with --resume {run.path} or pick another --name")
    if held_by_a_driver(run):  # before Ray starts (the lock itself is taken after, and checked again)
        holder = run.lock_file.read_text(errors="replace").strip() or "another process"
        raise RunLockedError(f"run {run.path} is locked by {holder}; one driver per run")
    space = load_space(str(run.space_file) if resume and run.space_file.is_file() else config.space)
    for name in config.problem.baselines:
        catalog_spec(name)
    if config.problem.needs_latency:
        from runners.latency import get_profile

        get_profile(config.problem.latency_profile)
    check_data(config.data)
    if config.execution.gpus_per_trial > 0 and not config.execution.address:
        import torch

        if torch.cuda.device_count() == 0:
            raise UserInputError(f"--gpus-per-trial {config.execution.gpus_per_trial:g}: this machine has no GPU "
                                 "(use 0, or --address a Ray cluster with GPUs)")
    if not resume and config.execution.storage:
        _check_study_name_free(config)
    return space


def _is_leftover(path: Path) -> bool:
    entries = {p.name for p in path.iterdir()}
    leftovers = {name for name in entries if name.startswith(".") and ".tmp" in name}  # an atomic write cut short
    return (entries - leftovers) <= _LEFTOVER_FILES


def _check_study_name_free(config: SearchConfig) -> None:
    """Shared storage: a new run must not adopt a study someone else's run already holds."""
    for name in (config.study, config.study + BASELINE_SUFFIX):
        try:
            trials = optuna.load_study(study_name=name, storage=config.execution.storage).get_trials(deepcopy=False)
        except KeyError:
            continue
        if trials:
            raise UserInputError(f"--storage already holds a study named {name!r} with {len(trials)} trials; "
                                 f"resume its run with --resume, or pick another --name")


def take_over_leftover(config: SearchConfig, run: RunDir) -> None:
    """Clear what a killed start left (the caller holds the lock). The lock file itself stays."""
    if not run.path.is_dir() or run.exists():
        return
    for entry in run.path.iterdir():
        if entry.name != LOCK_FILE:
            _remove(entry)
    _delete_studies(config)


def discard_unstarted(config: SearchConfig, run: RunDir, *, created_dir: bool) -> None:
    """Remove what a fresh start wrote before its first trial (the caller holds the lock)."""
    for name in _STARTUP_FILES - {LOCK_FILE}:
        _remove(run.path / name)
    for entry in run.path.glob(".*.tmp*"):
        _remove(entry)
    _delete_studies(config)
    if created_dir and {p.name for p in run.path.iterdir()} <= {LOCK_FILE}:
        shutil.rmtree(run.path, ignore_errors=True)


def _delete_studies(config: SearchConfig) -> None:
    """A study in shared storage (``--storage``) that never got a trial; the SQLite file went with the folder."""
    if not config.execution.storage:
        return
    for name in (config.study, config.study + BASELINE_SUFFIX):
        try:
            if not optuna.load_study(study_name=name, storage=config.execution.storage).get_trials(deepcopy=False):
                optuna.delete_study(study_name=name, storage=config.execution.storage)
        except KeyError:
            continue


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
