"""Export the study (the source of truth) to ``trials.parquet`` (the schema of docs/run-directory.md)."""

from __future__ import annotations

import json
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nas.config import Problem
from nas.runmodel import baseline_trial_id, constraint_column, trials_table
from nas.study import interrupted_trials
from runners.costs import shape_label

_STATE_STATUS = {
    TrialState.RUNNING: "RUNNING",
    TrialState.WAITING: "RUNNING",
    TrialState.COMPLETE: "COMPLETE",
    TrialState.PRUNED: "PRUNED",
    TrialState.FAIL: "FAIL",
}


def trial_status(trial: FrozenTrial) -> str:
    """Our status of a trial (``nas.study``'s table): its ``status`` attribute, else what its Optuna state says.

    A finished trial still marked RUNNING is one a dead driver left and a resume told FAIL (interrupted).
    """
    status = trial.user_attrs.get("status")
    if trial.state in (TrialState.RUNNING, TrialState.WAITING):
        return "RUNNING" if status != "DUPLICATE" else "DUPLICATE"
    if status in (None, "RUNNING"):
        return _STATE_STATUS[trial.state]
    return status


def _row(
    trial: FrozenTrial, problem: Problem, max_fidelity: int, *, trial_id: int, baseline: str | None,
    interrupted: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One ``trials.parquet`` row; ``interrupted``: the message when a resume told this trial FAIL."""
    attrs = trial.user_attrs
    status = trial_status(trial)
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
        "gate_open_rates": json.dumps(attrs.get("gate_open_rates") or {}),
        "params_json": json.dumps(trial.params, sort_keys=True),
        "latency_profile": attrs.get("latency_profile") or (problem.latency_profile if problem.needs_latency else None),
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
