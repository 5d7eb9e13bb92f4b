"""Export the study (the source of truth) to ``trials.parquet`` (the schema of docs/run-directory.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nas.config import Problem
from nas.core.costaware import binomial_se
from nas.runmodel import RunDir, baseline_trial_id, constraint_column, trials_table
from nas.study import interrupted_trials
from runners.costs import shape_label
from space.errors import UserInputError

_STATE_STATUS = {
    TrialState.RUNNING: "RUNNING",
    TrialState.WAITING: "QUEUED",
    TrialState.COMPLETE: "COMPLETE",
    TrialState.PRUNED: "PRUNED",
    TrialState.FAIL: "FAIL",
}


def trial_status(trial: FrozenTrial) -> str:
    """Our status of a trial (``nas.study``'s table): its ``status`` attribute, else what its Optuna state says.

    A finished trial still marked RUNNING is one a dead driver left and a resume told FAIL (interrupted).
    """
    status = trial.user_attrs.get("status")
    if trial.state == TrialState.WAITING:
        return "QUEUED"  # enqueued again (an interrupted trial, a retry), not started yet
    if trial.state == TrialState.RUNNING:
        return "RUNNING" if status != "DUPLICATE" else "DUPLICATE"
    if status in (None, "RUNNING"):
        return _STATE_STATUS[trial.state]
    return status


def _latency_shape(problem: Problem) -> str | None:
    """The input the latency objective is timed on (``cpu-quick``: 8 frames, where GMACs count 16)."""
    if not problem.needs_latency:
        return None
    from runners.latencyprofile import get_profile

    return get_profile(problem.latency_profile).input_label


def _accuracy_se(accuracy: float | None, val_clips: int | None) -> float | None:
    """Binomial standard error of a trained trial's accuracy; None when it was settled without training."""
    if accuracy is None or not val_clips:
        return None
    return binomial_se(float(accuracy), int(val_clips))


def _row(
    trial: FrozenTrial, problem: Problem, max_fidelity: int, *, trial_id: int, baseline: str | None,
    interrupted: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One ``trials.parquet`` row; ``interrupted``: the message when a resume told this trial FAIL."""
    attrs = trial.user_attrs
    status = "INTERRUPTED" if interrupted is not None else trial_status(trial)
    constraints = attrs.get("constraints") or [0.0]
    feasible = attrs.get("feasible")
    if feasible is None:
        feasible = status not in ("INVALID", "INFEASIBLE") and all(c <= 0 for c in constraints)
    row = {
        "trial_id": trial_id,
        "status": status,
        "spec": attrs.get("spec"),
        "spec_key": attrs.get("spec_key"),
        "family": attrs.get("family"),
        "baseline": baseline,
        "accuracy": attrs.get("accuracy"),
        "accuracy_se": _accuracy_se(attrs.get("accuracy"), attrs.get("val_clips")),
        "val_clips": attrs.get("val_clips"),
        "num_classes": attrs.get("num_classes"),
        "gmacs": attrs.get("gmacs"),
        "latency_ms": attrs.get("latency_ms"),
        "params": attrs.get("params"),
        "recurrent_params": attrs.get("recurrent_params"),
        "feasible": bool(feasible),
        "fidelity": attrs.get("fidelity", 0),
        "max_fidelity": max_fidelity,
        "started_at": attrs.get("started_at", trial.datetime_start.timestamp() if trial.datetime_start else None),
        "finished_at": attrs.get("finished_at"),
        "train_seconds": attrs.get("train_seconds"),
        "error": interrupted or attrs.get("error"),
        "duplicate_of": attrs.get("duplicate_of"),
        "warm_start": attrs.get("warm_start"),
        "gate_open_rates": json.dumps(attrs.get("gate_open_rates") or {}),
        "params_json": json.dumps(trial.params, sort_keys=True),
        "latency_profile": attrs.get("latency_profile") or (problem.latency_profile if problem.needs_latency else None),
        "latency_cv": attrs.get("latency_cv"),
        "latency_shape": _latency_shape(problem),
        "deploy_shape": shape_label(problem.deploy_shape),
        "history": json.dumps(attrs.get("history") or []),
    }
    for flag in problem.constraints:
        row[constraint_column(flag)] = attrs.get(f"constraint_{flag}")
    return row


def trials_frame(
    problem: Problem, max_fidelity: int, study: optuna.Study, baseline_study: optuna.Study | None,
) -> pd.DataFrame:  # fmt: skip
    """Every trial of the study (and the baselines') as ``trials.parquet`` rows; ``max_fidelity``: the proxy epochs."""
    interrupted = interrupted_trials(study)
    rows = [_row(t, problem, max_fidelity, trial_id=t.number, baseline=None, interrupted=interrupted.get(t.number))
            for t in study.get_trials(deepcopy=False)]
    if baseline_study is not None:
        interrupted = interrupted_trials(baseline_study)
        for t in baseline_study.get_trials(deepcopy=False):
            rows.append(_row(t, problem, max_fidelity, trial_id=baseline_trial_id(t.number), baseline=t.user_attrs.get("baseline"),
                             interrupted=interrupted.get(t.number)))
    return trials_table(rows, problem.constraints)


def refresh_trials(run_dir: Path) -> str:
    """Rebuild ``RUN/trials.parquet`` from the study when it is missing or differs from it (a driver killed
    between telling the study and writing the table, a deleted file). Returns what happened, in words.

    The study is the source of truth, but a study that cannot be read (corrupt, locked, unreachable) never
    stops a reader: the table is then left as it is. A run whose driver holds its lock is left alone too
    (that driver rewrites the table after every trial).
    """
    from nas.config import load_run_config
    from nas.runlock import held_by_a_driver
    from nas.study import BASELINE_SUFFIX

    run = RunDir(run_dir)
    if run.trials_file.exists() and not run.trials_file.is_file():
        return "trials.parquet is not a file; left for the reader to report"
    try:
        config = load_run_config(run_dir)
    except UserInputError:
        return "not a run directory"
    if not config.execution.storage and not run.study_file.is_file():
        return "no study to rebuild from"
    if held_by_a_driver(run):
        return "a driver is writing it"
    try:
        storage = optuna.storages.RDBStorage(run.storage_url(config.execution.storage), skip_table_creation=True)
        study = optuna.load_study(study_name=config.study, storage=storage)
        try:
            baselines = optuna.load_study(study_name=config.study + BASELINE_SUFFIX, storage=storage)
        except KeyError:
            baselines = None
        frame = trials_frame(config.problem, config.proxy.epochs, study, baselines)
    except Exception as exc:  # noqa: BLE001 - any storage failure: keep the table we have
        return f"study unreadable ({type(exc).__name__}); trials.parquet kept as it is"
    if run.trials_file.is_file():
        try:
            table = pd.read_parquet(run.trials_file)
        except (OSError, ValueError):  # damaged, not stale: the reader names it (docs/reliability.md)
            return "trials.parquet unreadable; left for the reader to report"
        if not _behind(table, frame):
            return "up to date"
    run.write_trials(frame)
    return f"rebuilt from the study ({len(frame)} rows)"


_UNSETTLED = ("RUNNING", "QUEUED")


def _behind(table: pd.DataFrame, study_frame: pd.DataFrame) -> bool:
    """Whether the table misses what the study knows: a trial it lacks, or one it shows unsettled that the
    study has settled since (what a driver killed between telling the study and writing the table leaves)."""
    shown = dict(zip(table["trial_id"].astype(int), table["status"]))
    for trial_id, status in zip(study_frame["trial_id"].astype(int), study_frame["status"]):
        if trial_id not in shown or (shown[trial_id] in _UNSETTLED and status not in _UNSETTLED):
            return True
    return False
