"""A rich live view of a running search: trials done / running / pruned / failed, front size, hypervolume, ETA."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from ray.tune import Callback
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nas.config import SearchConfig
from nas.objectives import OBJECTIVES
from nas.pareto import hypervolume, normalize, pareto_mask


class SearchProgress(Callback):
    """Ray Tune callback that redraws one progress line whenever a trial starts or ends."""

    def __init__(self, config: SearchConfig, core: Any, scheduler: Any, bounds: dict, *, enabled: bool = True):
        self.config = config
        self.searcher = core  # the search core (nas.core.search.SearchCore): counts, live trials, the study
        self.scheduler = scheduler
        self.bounds = bounds
        self.enabled = enabled
        self.budget_hit = False
        self._progress = Progress(
            TextColumn("[bold]search[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
            transient=False,
        )
        self._task = self._progress.add_task("trials", total=config.trials, status="starting")
        self._last = 0.0

    def __getstate__(self) -> dict:  # Ray pickles callbacks for its own restore, which we never use
        return {"enabled": False}

    def __enter__(self) -> "SearchProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh(force=True)
        self._progress.stop()

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self.budget_hit and self.searcher.out_of_budget():
            self.budget_hit = True
            self.scheduler.stop_at_next_rung()  # --time-budget: running trials stop at their next rung
        self.refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < 2.0:
            return
        self._last = now
        counts, front, hv = self.summary()
        status = (
            f"running {len(self.searcher.live)} · done {counts.get('COMPLETE', 0)} · pruned {counts.get('PRUNED', 0)}"
            f" · failed {counts.get('FAIL', 0)} · skipped {counts.get('skipped', 0)} · front {front} · HV {hv:.3f}"
        )
        if self.budget_hit:
            status += " · time budget reached"
        self._progress.update(self._task, completed=self.searcher.counted(), status=status)

    def summary(self) -> tuple[dict[str, int], int, float]:
        """Status counts, front size and hypervolume (normalised, reference point 1) of the search so far."""
        counts: dict[str, int] = {}
        points = []
        for trial in self.searcher.study.get_trials(deepcopy=False):
            status = trial.user_attrs.get("status", "RUNNING")
            key = "skipped" if status in ("INFEASIBLE", "INVALID", "DUPLICATE") else status
            counts[key] = counts.get(key, 0) + 1
            if status == "COMPLETE" and trial.user_attrs.get("feasible", True) and trial.values:
                points.append(trial.values)
        if not points:
            return counts, 0, 0.0
        values = np.asarray(points, dtype=float)
        directions = [OBJECTIVES[o].direction for o in self.config.objectives]
        bounds = [self.bounds[o] for o in self.config.objectives]
        normalised = normalize(values, directions, bounds)
        return counts, int(pareto_mask(normalised).sum()), float(hypervolume(normalised, [1.0] * len(directions)))
