"""Reading run directories for people: ``nas runs``, ``nas trials`` and the Pareto table ``nas search`` prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from nas.objectives import OBJECTIVES
from nas.pareto import pareto_mask, to_minimization
from nas.rundir import RunDir
from space.errors import UserInputError


@dataclass(frozen=True)
class RunSummary:
    path: Path
    space: str
    trials_wanted: int
    counts: dict[str, int]
    best_accuracy: float | None
    locked: bool


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run directory under ``runs_dir`` with its progress (read from its files only)."""
    if not runs_dir.is_dir():
        raise UserInputError(f"{runs_dir} does not exist; runs are created by `nas search --runs-dir {runs_dir}`")
    summaries = []
    for path in sorted(p for p in runs_dir.iterdir() if (p / "search.yaml").is_file()):
        run = RunDir(path)
        config = run.read_search().get("config", {})
        frame = run.read_trials()
        frame = frame[frame["baseline"].isna()] if len(frame) else frame  # baselines do not count as trials
        counts = frame["status"].value_counts().to_dict() if len(frame) else {}
        done = frame[frame["status"] == "COMPLETE"]
        best = float(done["accuracy"].max()) if len(done) else None
        summaries.append(RunSummary(path, str(config.get("space")), int(config.get("trials", 0)), counts, best,
                                    _is_locked(path)))
    return summaries


def _is_locked(path: Path) -> bool:
    import fcntl
    import os

    lock = path / ".lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def run_record(run: RunSummary) -> dict:
    """One run as plain data (``nas runs --json``): the table's figures, with counts per status."""
    trained = sum(run.counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL"))
    return {"name": run.path.name, "path": str(run.path), "space": run.space, "trials_wanted": run.trials_wanted,
            "trained": trained, "counts": dict(run.counts), "best_accuracy": run.best_accuracy,
            "state": "running" if run.locked else "idle"}


def runs_table(runs: list[RunSummary]) -> Table:
    table = Table(title="runs", caption="trained = COMPLETE + PRUNED + FAIL; skipped = never trained")
    for column in ("run", "space", "trained", "done", "pruned", "failed", "skipped", "best acc", "state"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        trained = sum(run.counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL"))
        skipped = sum(run.counts.get(s, 0) for s in ("INFEASIBLE", "INVALID", "DUPLICATE"))
        table.add_row(
            run.path.name, Path(run.space).stem, f"{trained}/{run.trials_wanted}", str(run.counts.get("COMPLETE", 0)),
            str(run.counts.get("PRUNED", 0)), str(run.counts.get("FAIL", 0)), str(skipped),
            "-" if run.best_accuracy is None else f"{100 * run.best_accuracy:.1f}%",
            "running" if run.locked else "idle",
        )
    return table


def run_objectives(run: RunDir) -> list[str]:
    raw = run.read_search().get("objectives", [])
    return [o["name"] if isinstance(o, dict) else str(o) for o in raw]


def front_mask(frame: pd.DataFrame, objectives: list[str]) -> np.ndarray:
    """Rows on the Pareto front: COMPLETE, feasible, non-dominated among those (baselines included)."""
    mask = np.zeros(len(frame), dtype=bool)
    eligible = (frame["status"] == "COMPLETE") & frame["feasible"].fillna(False).astype(bool)
    columns = [OBJECTIVES[o].column for o in objectives]
    values = frame.loc[eligible, columns].astype(float)
    values = values.dropna()
    if len(values):
        directions = [OBJECTIVES[o].direction for o in objectives]
        on_front = pareto_mask(to_minimization(values.to_numpy(), directions))
        mask[frame.index.get_indexer(values.index[on_front])] = True
    return mask


def _fmt(value: object, kind: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "-"
    if kind == "accuracy":
        return f"{100 * float(value):.1f}%"
    if kind == "params":
        return f"{float(value) / 1e6:.2f}M"
    return f"{float(value):.4g}"


def _arch_label(row: pd.Series) -> str:
    import json

    if isinstance(row.get("baseline"), str):
        return f"{row['baseline']} (baseline)"
    if not isinstance(row.get("spec"), str):
        return "-"
    spec = json.loads(row["spec"])
    if spec["family"] == "mtnet":
        return f"mtnet-{spec['depth']} r={spec['ratio']} g={spec['substreams']} {spec['recurrent']}"
    srtg = spec["srtg"]
    extra = "" if srtg["placement"] == "none" else f" srtg@{srtg['placement']} {srtg['recurrent']} {srtg['gate']}"
    return f"{spec['conv']}-{spec['depth']}{extra}"


def select_trials(run_path: Path, *, top: int | None = None, front: bool = False) -> pd.DataFrame:
    """The rows of trials.parquet ``nas trials`` shows: all, the front (``front``) or the ``top`` most accurate."""
    run = RunDir(run_path)
    frame = run.read_trials().reset_index(drop=True)
    if front:
        frame = frame[front_mask(frame, run_objectives(run))].sort_values("accuracy", ascending=False)
    if top is not None:
        frame = frame[frame["status"] == "COMPLETE"].sort_values("accuracy", ascending=False).head(top)
    return frame


def trials_table(run_path: Path, *, top: int | None = None, front: bool = False, title: str | None = None) -> Table:
    """Trials as a table; the front view leaves out the status and note columns (all COMPLETE there)."""
    run = RunDir(run_path)
    shape = run.read_search().get("config", {}).get("deploy_shape", "")
    frame = select_trials(run_path, top=top, front=front)
    table = Table(title=title or f"{run_path}: {len(frame)} trials", caption=f"GMACs @ {shape}")
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
            "id": str(row["trial_id"]), "status": str(row["status"]), "architecture": _arch_label(row),
            "acc": _fmt(row["accuracy"], "accuracy"), "GMACs": _fmt(row["gmacs"], "gmacs"),
            "ms": _fmt(row["latency_ms"], "latency"), "params": _fmt(row["params"], "params"),
            "epochs": f"{row['fidelity']}/{row['max_fidelity']}" if pd.notna(row["fidelity"]) else "-",
            "note": str(row["error"])[:60] if isinstance(row["error"], str) else "",
        }
        table.add_row(*(cells[c] for c in columns))
    return table


def pareto_table(run_path: Path) -> Table:
    return trials_table(run_path, front=True, title=f"Pareto front of {run_path}")
