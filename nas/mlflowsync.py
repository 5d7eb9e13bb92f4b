"""What MLflow holds of a search, and the idempotent sync that makes it hold it (:mod:`nas.tracking` runs it).

A run's table (``trials.parquet``, the study's rows) becomes a :class:`Snapshot`: the trained trials (COMPLETE,
PRUNED, FAIL; baselines included) in the order they finished, each as the child run it should be
(:class:`TrialRun`), the hypervolume after each of them (the report's curve) and the Pareto front.
:class:`RunSync` compares a snapshot with what the store already holds and logs only the difference:

* the parent run is the one ``RUN/mlflow.yaml`` names, else the one tagged with this run's key (its study
  name, host and start time: :func:`run_identity`), else a new one;
* a child run is created once its trial has settled and is tagged ``videonas.synced`` last; one found
  without that tag (a driver killed mid-sync) gets only its missing parameters and metric steps;
* the parent's ``hypervolume`` steps already logged are never logged again.

Everything here runs on the tracker's thread (:class:`nas.tracking.Tracker`), so mlflow is imported inside
the functions that call it (docs/tracking.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from nas.config import RESUME_CHANGEABLE, SearchConfig
from nas.objectives import OBJECTIVES
from nas.pareto import hypervolume_history, normalize
from nas.runmodel import TRACKING_FILE, TRAINED_STATUSES, RunDir, arch_label, front_candidate_mask
from nas.runs import pareto_front
from space.files import atomic_write

DEFAULT_EXPERIMENT = "videonas"  # unless $MLFLOW_EXPERIMENT_NAME names another, as MLflow's own API reads it
ROLE, RUN_KEY, TRIAL, SYNCED = "videonas.role", "videonas.run_key", "videonas.trial", "videonas.synced"
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}  # our status -> MLflow's
COST_METRICS = ("gmacs", "params", "recurrent_params", "latency_ms", "train_seconds")
EPOCH_METRICS = ("accuracy", "loss")


@dataclass(frozen=True)
class TrackingTarget:
    """A resolved ``--mlflow`` (:func:`nas.tracking.resolve_target`): what MLflow's client is given, and
    how its liveness is asked."""

    given: str  # what --mlflow says (a local path made absolute)
    tracking_uri: str
    artifact_location: str | None = None  # the experiment's artifact root, when we create it in a local store
    health_url: str | None = None  # an MLflow server's GET /health


# ---- what: the run's table as the runs MLflow should hold ----------------------------------------------


@dataclass(frozen=True)
class EpochPoint:
    epoch: int
    values: dict[str, float]  # accuracy, loss (those the epoch reported)
    at_ms: int


@dataclass(frozen=True)
class TrialRun:
    """One trained trial as its child run."""

    trial_id: int
    name: str
    status: str  # COMPLETE, PRUNED or FAIL
    params: dict[str, str]  # the Optuna trial's parameters (the spec's choices)
    tags: dict[str, str]
    epochs: tuple[EpochPoint, ...]
    costs: dict[str, float]
    started_ms: int | None
    finished_ms: int


@dataclass(frozen=True)
class Snapshot:
    """What MLflow should hold after one sync; ``final_status`` ends the parent run (FINISHED, KILLED)."""

    trials: tuple[TrialRun, ...]
    hypervolume: tuple[tuple[int, float, int], ...]  # (step = trained trials so far, value, at ms)
    front: pd.DataFrame
    final_status: str | None = None


@dataclass(frozen=True)
class RunIdentity:
    """The search as its parent run: the key that finds it again, what it logs once and what it updates."""

    run_key: str
    name: str
    params: dict[str, str]  # the flags that define the search (fixed for the run) and the bounds
    tags: dict[str, str]  # the flags a resume may change, the study, the run's folder
    objectives: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    reference: tuple[float, ...]


def run_identity(config: SearchConfig, search: dict[str, Any], run: RunDir) -> RunIdentity:
    environment = search.get("environment") or {}
    origin = f"{config.study}|{environment.get('hostname')}|{environment.get('started_at')}"
    flags = config.to_dict()
    fixed = {k: _text(v) for k, v in flags.items()
             if k not in (*RESUME_CHANGEABLE, "name", "runs_dir", "study_name", "extra", "mlflow")}
    objectives = tuple(config.problem.objectives)
    bounds = tuple(tuple(float(b) for b in search["bounds"][o]) for o in objectives)
    params = {**fixed, **{f"bounds.{o}": _text(list(b)) for o, b in zip(objectives, bounds)}}
    tags = {**{k: _text(flags.get(k)) for k in RESUME_CHANGEABLE}, "study": config.study, "run_dir": str(run.path),
            "objectives": ", ".join(f"{o} ({OBJECTIVES[o].direction})" for o in objectives)}
    reference = tuple(float(r) for r in search.get("reference_point") or [1.0] * len(objectives))
    return RunIdentity(hashlib.sha256(origin.encode()).hexdigest()[:16], config.name, params, tags, objectives,
                       bounds, reference)


def snapshot(frame: pd.DataFrame, identity: RunIdentity) -> Snapshot:
    """The runs ``trials.parquet`` (the study's rows) asks for: trained trials in the order they finished."""
    trained = frame[frame["status"].isin(TRAINED_STATUSES) & frame["finished_at"].notna()]
    trained = trained.sort_values(["finished_at", "trial_id"], kind="stable")
    columns = [OBJECTIVES[o].column for o in identity.objectives]
    points = np.full((len(trained), len(columns)), np.inf)  # trials off the candidates add no volume
    candidates = (front_candidate_mask(trained) & trained[columns].notna().all(axis=1)).to_numpy(bool)
    if candidates.any():
        points[candidates] = normalize(trained[columns][candidates].astype(float).to_numpy(),
                                       [OBJECTIVES[o].direction for o in identity.objectives], identity.bounds)
    volumes = hypervolume_history(points, identity.reference) if len(trained) else []
    finished = [int(t * 1000) for t in trained["finished_at"]]
    front = pareto_front(frame, list(identity.objectives)).sort_values("accuracy", ascending=False)
    front = front.assign(architecture=[arch_label(r) for r in front.to_dict("records")])
    front = front[["trial_id", "architecture", "accuracy", "accuracy_se", "gmacs", "params", "latency_ms",
                   "fidelity", "spec_key", "params_json"]]
    return Snapshot(tuple(_trial_run(row) for row in trained.to_dict("records")),
                    tuple((k + 1, float(v), at) for k, (v, at) in enumerate(zip(volumes, finished))), front)


def _trial_run(row: dict[str, Any]) -> TrialRun:
    baseline = row["baseline"] if isinstance(row.get("baseline"), str) and row["baseline"] not in ("", "None") else None
    params = {k: _text(v) for k, v in json.loads(row["params_json"] or "{}").items()}
    if baseline:
        params["baseline"] = baseline
    tags = {"status": row["status"], "stopped_at_epoch": _text(row["fidelity"]),
            "epochs_budget": _text(row["max_fidelity"]),
            "architecture": arch_label(row), "spec_key": _text(row["spec_key"]), "spec": _text(row["spec"])[:5000],
            "feasible": _text(bool(row["feasible"]))}
    if isinstance(row.get("error"), str) and row["error"] not in ("", "None"):
        tags["error"] = row["error"][:5000]
    epochs = tuple(EpochPoint(int(e["epoch"]), {k: float(e[k]) for k in EPOCH_METRICS if _number(e.get(k))},
                              int(1000 * (e.get("reported_at") or row["finished_at"])))
                   for e in json.loads(row["history"] or "[]"))
    costs = {k: float(row[k]) for k in COST_METRICS if _number(row.get(k))}
    started = int(row["started_at"] * 1000) if _number(row.get("started_at")) else None
    name = f"baseline {baseline}" if baseline else f"trial {row['trial_id']}"
    return TrialRun(int(row["trial_id"]), name, row["status"], params, tags, epochs, costs, started,
                    int(row["finished_at"] * 1000))


def _number(value: Any) -> bool:
    return value is not None and value is not pd.NA and isinstance(value, (int, float, np.number)) \
        and not isinstance(value, bool) and math.isfinite(float(value))


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)[:6000]  # MLflow's limit on a parameter's value


# ---- how: the sync, on its own thread ----------------------------------------------------------------


class _Watched:
    """MLflow's client with a heartbeat: every call that returns tells the watchdog the store answered."""

    def __init__(self, client: Any, beat: Callable[[], None]) -> None:
        self._client, self._beat = client, beat

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            self._beat()
            return result

        return call


class RunSync:
    """Makes MLflow hold what a :class:`Snapshot` says, logging only what it lacks (runs on the thread)."""

    def __init__(self, target: TrackingTarget, run: RunDir, identity: RunIdentity, beat: Callable[[], None]) -> None:
        from mlflow import MlflowClient

        if target.tracking_uri.startswith("sqlite:///"):
            Path(target.tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.client = _Watched(MlflowClient(tracking_uri=target.tracking_uri), beat)
        self.target, self.run, self.identity = target, run, identity
        self.parent: str | None = None
        self.experiment = ""
        self.children: dict[int, str] = {}  # trial -> child run id, not yet marked synced
        self.synced: set[int] = set()
        self.volume_steps: set[int] = set()

    def sync(self, snap: Snapshot) -> None:
        if self.parent is None:
            self._open()
        for trial in snap.trials:
            if trial.trial_id not in self.synced:
                self._child(trial)
        new = [(step, value, at) for step, value, at in snap.hypervolume if step not in self.volume_steps]
        if new or snap.final_status:
            self._parent_results(snap, new)
        if snap.final_status:
            self.client.set_terminated(self.parent, status=snap.final_status)

    def log_report(self, folder: Path) -> None:
        if self.parent is not None and folder.is_dir():
            self.client.log_artifacts(self.parent, str(folder), artifact_path="report")

    def _open(self) -> None:
        """The parent run: the one ``mlflow.yaml`` names, else the one tagged with this run's key, else a new one."""
        from mlflow.entities import Param, RunTag

        parent = self._stored_parent()
        if parent is None:
            found = self._tagged_runs(self._experiment_id(), "search")
            parent = found[0] if found else self.client.create_run(self._experiment_id(), run_name=self.identity.name,
                                                                   tags={ROLE: "search", RUN_KEY: self.identity.run_key})
        self.parent, self.experiment = parent.info.run_id, parent.info.experiment_id
        atomic_write(self.run.path / TRACKING_FILE, yaml.safe_dump({
            "tracking_uri": self.target.tracking_uri, "experiment_id": self.experiment, "parent_run_id": self.parent,
            "run_key": self.identity.run_key}, sort_keys=False))
        have = parent.data.params
        params = [Param(k, v) for k, v in self.identity.params.items() if k not in have]
        self._batch(self.parent, params=params, tags=[RunTag(k, v) for k, v in self.identity.tags.items()])
        if parent.info.status != "RUNNING":
            self.client.update_run(self.parent, status="RUNNING")
        for child in self._tagged_runs(self.experiment, "trial"):
            trial = int(child.data.tags[TRIAL])
            if child.data.tags.get(SYNCED) == "1":
                self.synced.add(trial)
            else:
                self.children.setdefault(trial, child.info.run_id)
        self.volume_steps = {m.step for m in self.client.get_metric_history(self.parent, "hypervolume")}

    def _experiment_id(self) -> str:
        if self.experiment:
            return self.experiment
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        found = self.client.get_experiment_by_name(name)
        if found is None:
            from mlflow.exceptions import MlflowException

            try:
                self.experiment = self.client.create_experiment(name, artifact_location=self.target.artifact_location)
                return self.experiment
            except MlflowException:  # created meanwhile by another search
                found = self.client.get_experiment_by_name(name)
        self.experiment = found.experiment_id
        return self.experiment

    def _stored_parent(self) -> Any:
        from mlflow.exceptions import MlflowException

        file = self.run.path / TRACKING_FILE
        stored = yaml.safe_load(file.read_text()) if file.is_file() else None
        if not isinstance(stored, dict) or stored.get("tracking_uri") != self.target.tracking_uri:
            return None
        try:
            parent = self.client.get_run(str(stored.get("parent_run_id")))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return None
        alive = parent.info.lifecycle_stage == "active" and parent.data.tags.get(RUN_KEY) == self.identity.run_key
        return parent if alive else None

    def _tagged_runs(self, experiment: str, role: str) -> list[Any]:
        query = f"tags.`{RUN_KEY}` = '{self.identity.run_key}' and tags.`{ROLE}` = '{role}'"
        runs, token = [], None
        while True:
            page = self.client.search_runs([experiment], filter_string=query, max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _child(self, trial: TrialRun) -> None:
        """Create the trial's child run, or complete one a killed driver left half-logged."""
        from mlflow.entities import Metric, Param

        run_id = self.children.get(trial.trial_id)
        have_params: dict[str, str] = {}
        have_steps: dict[str, set[int]] = {}
        if run_id is None:
            run_id = self.client.create_run(self.experiment, start_time=trial.started_ms, run_name=trial.name, tags={
                **trial.tags, "mlflow.parentRunId": self.parent, ROLE: "trial", RUN_KEY: self.identity.run_key,
                TRIAL: str(trial.trial_id)}).info.run_id
        else:
            have = self.client.get_run(run_id).data
            have_params = have.params
            have_steps = {key: {m.step for m in self.client.get_metric_history(run_id, key)}
                          for key in (*EPOCH_METRICS, *COST_METRICS) if key in have.metrics}
        metrics = [Metric(key, value, point.at_ms, point.epoch) for point in trial.epochs
                   for key, value in point.values.items() if point.epoch not in have_steps.get(key, ())]
        metrics += [Metric(key, value, trial.finished_ms, 0) for key, value in trial.costs.items()
                    if key not in have_steps]
        self._batch(run_id, metrics=metrics,
                    params=[Param(k, v) for k, v in trial.params.items() if k not in have_params])
        self.client.set_terminated(run_id, status=RUN_STATUS[trial.status], end_time=trial.finished_ms)
        self.client.set_tag(run_id, SYNCED, "1")
        self.synced.add(trial.trial_id)
        self.children.pop(trial.trial_id, None)

    def _parent_results(self, snap: Snapshot, new: list[tuple[int, float, int]]) -> None:
        """The hypervolume steps not logged yet, the front's size, and the front as ``pareto_front.csv``."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        trained = len(snap.hypervolume)
        metrics = [Metric("hypervolume", value, at, step) for step, value, at in new]
        if new:
            metrics += [Metric("front_size", len(snap.front), now, trained),
                        Metric("trials_trained", trained, now, trained)]
        self._batch(self.parent, metrics=metrics)
        self.volume_steps.update(step for step, _, _ in new)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "pareto_front.csv"
            snap.front.to_csv(path, index=False)
            self.client.log_artifact(self.parent, str(path))

    def _batch(self, run_id: str, *, metrics: list = (), params: list = (), tags: list = ()) -> None:
        """``log_batch`` within MLflow's limits (1000 metrics, 100 parameters, 100 tags a call)."""
        metrics, params, tags = list(metrics), list(params), list(tags)
        while metrics or params or tags:
            self.client.log_batch(run_id, metrics=metrics[:1000], params=params[:100], tags=tags[:100])
            metrics, params, tags = metrics[1000:], params[100:], tags[100:]


