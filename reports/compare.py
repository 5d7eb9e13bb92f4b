"""Several runs on one normalisation: ``compare_runs(run_dirs) -> Comparison`` (``nas report RUN1 RUN2 ... --out``).

Runs can only be compared when they optimise the same objectives in the same directions against the same
reference point; anything else is a :class:`ReportInputError` naming what differs. Every run is then re-based
on **shared bounds** (per objective, the widest range any of the runs used), so their hypervolumes and fronts
are measured in one space. A run's own report may show a different hypervolume when its bounds were narrower:
the comparison says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reports.analysis import HypervolumeHistory, front_candidates, group_trials, hypervolume_history
from reports.load import ReportInputError, RunData, RunObjective, load_run


@dataclass(frozen=True)
class ComparedRun:
    label: str  # unique short name shown in legends and tables
    run: RunData  # re-based on the shared objectives, bounds and reference point
    own_bounds: tuple[tuple[float, float] | None, ...]  # the bounds of its own report
    front: pd.DataFrame
    n_candidates: int
    history: HypervolumeHistory | None

    @property
    def final_hypervolume(self) -> float:
        return float(self.history.values[-1]) if self.history is not None and len(self.history.values) else 0.0


@dataclass(frozen=True)
class Comparison:
    objectives: tuple[RunObjective, ...]  # with the shared bounds
    reference_point: tuple[float, ...]
    runs: tuple[ComparedRun, ...]
    notes: tuple[str, ...]  # what a reader must know (bounds widened, latency profiles differ, ...)


def _signature(run: RunData) -> str:
    return ", ".join(f"{o.name} ({o.direction})" for o in run.objectives)


def _check_same_objectives(runs: Sequence[RunData]) -> None:
    first = runs[0]
    for other in runs[1:]:
        if [(o.name, o.direction) for o in other.objectives] != [(o.name, o.direction) for o in first.objectives]:
            raise ReportInputError(
                f"cannot compare runs with different objectives: {first.run_dir} has {_signature(first)}, "
                f"{other.run_dir} has {_signature(other)}; compare runs of one objective set"
            )
        if other.reference_point != first.reference_point:
            raise ReportInputError(
                f"cannot compare runs with different reference points: {first.run_dir} has {first.reference_point}, "
                f"{other.run_dir} has {other.reference_point}"
            )


def shared_bounds(runs: Sequence[RunData]) -> tuple[RunObjective, ...]:
    """Per objective the widest range of all runs, so that every run's points are inside its own old box."""
    shared = []
    for k, objective in enumerate(runs[0].objectives):
        pairs = [run.objectives[k].bounds for run in runs if run.objectives[k].bounds is not None]
        bounds = (min(p[0] for p in pairs), max(p[1] for p in pairs)) if pairs else None
        shared.append(dataclasses.replace(objective, bounds=bounds))
    return tuple(shared)


def _labels(runs: Sequence[RunData]) -> list[str]:
    """Run names, made unique with their parent folder when two runs share a name."""
    names = [run.name for run in runs]
    return [f"{run.run_dir.parent.name}/{run.name}" if names.count(run.name) > 1 else run.name for run in runs]


def _distinct(runs: Sequence[RunData], column: str) -> set[str]:
    return {str(v) for run in runs for v in run.trials[column].dropna().unique() if str(v)}


def _notes(runs: Sequence[RunData], objectives: tuple[RunObjective, ...]) -> list[str]:
    notes = []
    for k, objective in enumerate(objectives):
        own = {run.objectives[k].bounds for run in runs}
        if len(own) > 1 and objective.bounds is not None:
            notes.append(
                f"{objective.name}: the runs used different bounds; all are normalised by the widest, "
                f"[{objective.bounds[0]:g}, {objective.bounds[1]:g}], so a hypervolume here can differ from the run's own report"
            )
    if any("observed range" in run.bounds_note for run in runs):
        notes.append("at least one run has no fixed bounds (normalised by its observed range); the shared bounds cover it")
    for column, what in (("latency_profile", "latency was measured on different profiles"),
                         ("deploy_shape", "GMACs were counted at different deployment shapes")):
        values = _distinct(runs, column)
        if len(values) > 1 and any(o.column == ("latency_ms" if column == "latency_profile" else "gmacs") for o in objectives):
            notes.append(f"{what} ({', '.join(sorted(values))}): those axes compare different things")
    return notes


def compare_runs(run_dirs: Sequence[str | Path]) -> Comparison:
    """Load, check and re-base the runs; raises :class:`ReportInputError` when they cannot be compared."""
    resolved = [Path(p).resolve() for p in run_dirs]
    if len(set(resolved)) != len(resolved):
        raise ReportInputError("the same run directory is given twice; give each run once")
    runs = [load_run(p) for p in run_dirs]
    _check_same_objectives(runs)
    objectives = shared_bounds(runs)
    compared = []
    for label, run in zip(_labels(runs), runs):
        rebased = dataclasses.replace(run, objectives=objectives)
        compared.append(ComparedRun(
            label=label,
            run=rebased,
            own_bounds=tuple(o.bounds for o in run.objectives),
            front=group_trials(rebased).front,
            n_candidates=len(front_candidates(rebased)),
            history=hypervolume_history(rebased),
        ))
    return Comparison(objectives, runs[0].reference_point, tuple(compared), tuple(_notes(runs, objectives)))


def best_architecture(compared: ComparedRun) -> pd.Series | None:
    """The front point best on the first objective (the most accurate one when accuracy comes first)."""
    front = compared.front
    if front.empty:
        return None
    first = compared.run.objectives[0]
    values = pd.to_numeric(front[first.column], errors="coerce")
    index = values.idxmax() if first.direction == "maximize" else values.idxmin()
    return front.loc[index]
