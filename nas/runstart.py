"""Starting a run directory so that a user's mistake never takes its name for good (``docs/reliability.md``).

* :func:`check_before_creating`: every user error that can be found without Ray (the space, the baselines,
  the latency profile, ``--data`` / ``--cache``, GPUs on a machine without any, a name the storage already
  holds, an ``--mlflow`` store that cannot be written) is raised before the directory exists.
* :func:`take_over_leftover`: a folder holding only what a start that never got going leaves behind
  (``.lock``, ``study.db``, ``costs/``, ``ray/``, no ``search.yaml``: a driver killed while starting) is
  cleared for the new start. Anything else in the folder keeps the "already exists" error: we never
  delete a file we did not write.
* :func:`discard_unstarted`: a fresh run that fails (or is interrupted) before its first trial started is
  removed again, its study included, so the corrected command can use the same name.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import optuna

from nas.config import SearchConfig
from nas.endpoints import check_ray_address, check_storage
from nas.reachable import check_constraints_reachable
from nas.proxydata import check_data
from nas.runlock import RunLockedError, held_by_a_driver
from nas.runmodel import LOCK_FILE, RunDir, SPACE_FILE, STATE_FILE, STUDY_FILE, SEARCH_FILE, TRIALS_FILE
from nas.study import BASELINE_SUFFIX, schema_error
from space import catalog_spec
from space.errors import UserInputError
from space.searchspace import SearchSpace, load_space

# What a fresh start writes before its first trial (and nothing a user would keep).
_STARTUP_FILES = {LOCK_FILE, STUDY_FILE, SPACE_FILE, SEARCH_FILE, STATE_FILE, TRIALS_FILE, "costs", "ray"}
SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database file
_LEFTOVER_FILES = _STARTUP_FILES - {SEARCH_FILE, STATE_FILE, TRIALS_FILE}  # before search.yaml


def check_before_creating(config: SearchConfig, run: RunDir, *, resume: bool) -> SearchSpace:
    """Raise every user error that needs no Ray; returns the loaded space."""
    _check_runs_dir(Path(config.runs_dir))
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
    check_data(config.data, frames=config.proxy.frames, size=config.proxy.size)
    if not resume:
        check_constraints_reachable(config.problem, space, config.space)
    if config.execution.storage:
        check_storage(config.execution.storage)
    if config.execution.address and config.execution.executor == "ray":
        check_ray_address(config.execution.address)
    if config.mlflow is not None:  # docs/tracking.md
        from nas.tracking import check_tracking_uri

        check_tracking_uri(config.mlflow)
    if config.execution.gpus_per_trial > 0 and not config.execution.address:
        import torch

        if torch.cuda.device_count() == 0:
            raise UserInputError(f"--gpus-per-trial {config.execution.gpus_per_trial:g}: this machine has no GPU "
                                 "(use 0, or --address a Ray cluster with GPUs)")
    if not resume and config.execution.storage:
        _check_study_name_free(config)
    if resume:
        _check_study_and_target(config, run)
    return space


def _check_runs_dir(runs_dir: Path) -> None:
    """``--runs-dir`` must be a folder we can write in, or one we can create."""
    existing = next((p for p in (runs_dir, *runs_dir.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UserInputError(f"--runs-dir {runs_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"--runs-dir {runs_dir}: cannot write in {existing} (read-only or not permitted)")


def _check_study_and_target(config: SearchConfig, run: RunDir) -> None:
    """On resume: the run's study must open, and ``--trials`` must not fall below what the run already trained
    (that would end it silently)."""
    from sqlalchemy.exc import SQLAlchemyError

    from nas.config import load_run_config

    if not config.execution.storage and run.study_file.is_file():  # Optuna would write a schema into a damaged one
        with run.study_file.open("rb") as file:
            if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise UserInputError(f"cannot resume {run.path}: {run.study_file} is not an SQLite database "
                                     "(damaged or replaced)")
    try:
        study = optuna.load_study(study_name=config.study, storage=run.storage_url(config.execution.storage))
        trials = study.get_trials(deepcopy=False)
    except KeyError:
        raise UserInputError(f"cannot resume {run.path}: its storage holds no study named {config.study!r}") from None
    except RuntimeError as exc:  # Optuna refusing a schema another Optuna version wrote
        raise (schema_error(run.storage_url(config.execution.storage), exc) or exc) from None
    except (SQLAlchemyError, ValueError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:160]
        raise UserInputError(f"cannot resume {run.path}: its study cannot be read ({reason})") from None
    counted = sum(1 for t in trials if t.user_attrs.get("counted"))
    if config.trials < load_run_config(run.path).trials and config.trials < counted:
        raise UserInputError(f"--trials {config.trials}: this run already trained {counted} trials; "
                             f"allowed: --trials >= {counted}")


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
