"""Reading run directories for people: ``nas runs``, ``nas trials`` and the Pareto table ``nas search`` prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from nas.objectives import OBJECTIVES
from nas.pareto import pareto_mask, to_minimization
from nas.runlock import held_by_a_driver
from nas.runmodel import (
    SKIPPED_STATUSES,
    TRAINED_STATUSES,
    RunDir,
    arch_label,
    completed_baselines,
    front_candidates,
    is_baseline,
)
from space.errors import UserInputError


@dataclass(frozen=True)
class RunSummary:
    path: Path
    space: str
    trials_wanted: int
    counts: dict[str, int]
    best_accuracy: float | None
    locked: bool
    unreadable: str | None = None  # why its files cannot be read (the other runs are still listed)
    left_as: str | None = None  # state.yaml's ``state``: how the last driver left it (None: an older run)


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run directory under ``runs_dir`` with its progress (read from its files only)."""
    if not runs_dir.is_dir():
        raise UserInputError(f"{runs_dir} does not exist; runs are created by `nas search --runs-dir {runs_dir}`")
    summaries = []
    for path in sorted(p for p in runs_dir.iterdir() if _looks_like_a_run(p)):
        try:
            summaries.append(_summary(path))
        except (UserInputError, OSError, KeyError, TypeError, ValueError, AttributeError) as exc:  # one bad run, not all
            reason = str(exc) if isinstance(exc, UserInputError) else f"unexpected content ({type(exc).__name__}: {exc})"
            summaries.append(RunSummary(path, "?", 0, {}, None, _is_locked(path), unreadable=reason))
    return summaries


def _looks_like_a_run(path: Path) -> bool:
    """A folder holding a run's files, readable or not (a damaged ``search.yaml`` is listed as unreadable)."""
    run = RunDir(path)
    return path.is_dir() and (run.search_file.exists() or run.study_file.exists())


def _summary(path: Path) -> RunSummary:
    """One readable run's progress; raises when a file of it cannot be read."""
    run = RunDir(path)
    config = run.read_search().get("config", {})
    frame = run.read_trials()
    frame = frame[~is_baseline(frame)] if len(frame) else frame  # baselines do not count as trials
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    done = frame[frame["status"] == "COMPLETE"]
    best = float(done["accuracy"].max()) if len(done) else None
    state = run.read_state() or {}
    left_as = state.get("state") if isinstance(state.get("state"), str) else None
    return RunSummary(path, str(config.get("space")), int(config.get("trials", 0)), counts, best, _is_locked(path),
                      left_as=left_as)


def _is_locked(path: Path) -> bool:
    return held_by_a_driver(RunDir(path))


def run_record(run: RunSummary) -> dict:
    """One run as plain data (``nas runs --json``): the table's figures, with counts per status."""
    trained = sum(run.counts.get(s, 0) for s in TRAINED_STATUSES)
    return {"name": run.path.name, "path": str(run.path), "space": run.space, "trials_wanted": run.trials_wanted,
            "trained": trained, "counts": dict(run.counts), "best_accuracy": run.best_accuracy,
            "state": _state(run), "error": run.unreadable}


def _state(run: RunSummary) -> str:
    """running (a driver holds the lock), finished, interrupted (Ctrl-C, or a driver that died), or idle
    (a run written before ``state.yaml`` existed)."""
    if run.unreadable:
        return "unreadable"
    if run.locked:
        return "running"
    if run.left_as in ("running", "interrupted"):  # "running" with no lock holder: the driver died
        return "interrupted"
    return run.left_as or "idle"


def runs_table(runs: list[RunSummary]) -> Table:
    table = Table(title="runs", caption="trained = COMPLETE + PRUNED + FAIL; skipped = never trained; "
                                        "resume an interrupted run with `nas search --resume RUN`")
    for column in ("run", "space", "trained", "done", "pruned", "failed", "skipped", "best acc", "state"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        trained = sum(run.counts.get(s, 0) for s in TRAINED_STATUSES)
        skipped = sum(run.counts.get(s, 0) for s in SKIPPED_STATUSES)
        table.add_row(
            run.path.name, Path(run.space).stem, f"{trained}/{run.trials_wanted}", str(run.counts.get("COMPLETE", 0)),
            str(run.counts.get("PRUNED", 0)), str(run.counts.get("FAIL", 0)), str(skipped),
            "-" if run.best_accuracy is None else f"{100 * run.best_accuracy:.1f}%",
            _state(run) if not run.unreadable else f"unreadable: {run.unreadable}",
        )
    return table


def pareto_front(frame: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """The non-dominated rows among the front candidates (:func:`nas.runmodel.front_candidates`)."""
    columns = [OBJECTIVES[o].column for o in objectives]
    candidates = front_candidates(frame).dropna(subset=columns)
    if candidates.empty:
        return candidates
    directions = [OBJECTIVES[o].direction for o in objectives]
    on_front = pareto_mask(to_minimization(candidates[columns].astype(float).to_numpy(), directions))
    return candidates[on_front]


def _fmt(value: object, kind: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "-"
    if kind == "accuracy":
        return f"{100 * float(value):.1f}%"
    if kind == "params":
        return f"{float(value) / 1e6:.2f}M"
    return f"{float(value):.4g}"


def select_trials(run_path: Path, *, top: int | None = None, front: bool = False) -> pd.DataFrame:
    """The rows of trials.parquet ``nas trials`` shows: all, the ``top`` most accurate, or the front.

    The front view is the front, then the COMPLETE baselines beside it (labelled, never part of it).
    """
    run = RunDir(run_path)
    frame = run.read_trials().reset_index(drop=True)
    if front:
        on_front = pareto_front(frame, run.objectives()).sort_values("accuracy", ascending=False)
        beside = completed_baselines(frame).sort_values("accuracy", ascending=False)
        frame = pd.concat([on_front, beside]) if len(beside) else on_front
    if top is not None:
        frame = frame[frame["status"] == "COMPLETE"].sort_values("accuracy", ascending=False).head(top)
    return frame


def trials_table(run_path: Path, *, top: int | None = None, front: bool = False, title: str | None = None) -> Table:
    """Trials as a table; the front view leaves out the status and note columns (all COMPLETE there).

    The front view lists the front, then the COMPLETE baselines beside it (labelled, never part of it).
    """
    run = RunDir(run_path)
    shape = run.read_search().get("config", {}).get("deploy_shape", "")
    frame = select_trials(run_path, top=top, front=front)
    if not shape and "deploy_shape" in frame and frame["deploy_shape"].nunique() == 1:
        shape = frame["deploy_shape"].iloc[0]  # a run whose search.yaml does not say it: what its trials were costed at
    caption = f"GMACs @ {shape}"
    latency_shapes = frame["latency_shape"].dropna().unique() if "latency_shape" in frame else []
    if len(latency_shapes) == 1 and frame["latency_ms"].notna().any():
        caption += f"; latency @ {latency_shapes[0]} (profile {frame['latency_profile'].dropna().iloc[0]})"
    if front and is_baseline(frame).any():
        caption += "; baselines are shown beside the front, not part of it"
    table = Table(title=title or f"{run_path}: {len(frame)} trials", caption=caption)
    columns = ["id", "status", "architecture", "acc", "GMACs", "ms", "params", "epochs", "note"]
    if front:
        columns = [c for c in columns if c not in ("status", "note")]
    if not frame["error"].map(lambda e: isinstance(e, str)).any():
        columns = [c for c in columns if c != "note"]
    if frame["latency_ms"].isna().all():
        columns = [c for c in columns if c != "ms"]
    profiles = sorted({str(p) for p in frame["latency_profile"].dropna().unique()})
    headers = {"ms": f"latency ms ({', '.join(profiles)})" if profiles else "latency ms"}  # names its profile
    for column in columns:
        table.add_column(headers.get(column, column),
                         no_wrap=column in ("id", "status", "acc", "GMACs", "ms", "params", "epochs"))
    for _, row in frame.iterrows():
        cells = {
            "id": str(row["trial_id"]), "status": str(row["status"]), "architecture": arch_label(row),
            "acc": _fmt(row["accuracy"], "accuracy"), "GMACs": _fmt(row["gmacs"], "gmacs"),
            "ms": _fmt(row["latency_ms"], "latency"), "params": _fmt(row["params"], "params"),
            "epochs": f"{row['fidelity']}/{row['max_fidelity']}" if pd.notna(row["fidelity"]) else "-",
            "note": str(row["error"])[:60] if isinstance(row["error"], str) else "",
        }
        table.add_row(*(cells[c] for c in columns))
    return table


def pareto_table(run_path: Path) -> Table:
    return trials_table(run_path, front=True, title=f"Pareto front of {run_path}")
