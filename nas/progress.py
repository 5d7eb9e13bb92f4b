"""A rich live view of a running search: trials by status, front size, hypervolume, a stable ETA.

It reads what a person reads elsewhere (``docs/cli-output.md``):

- statuses by the names the tables and the report use (COMPLETE, PRUNED, FAIL, INFEASIBLE, DUPLICATE,
  INVALID), never a private word like "skipped";
- the ETA is the mean time per trained trial so far times the trials left (capped by ``--time-budget``),
  computed when a trial finishes and counted down in between, so it never flips back to "unknown";
- a hypervolume of 0 with completed trials says why (they lie outside the objective bounds the run
  fixed at its start, automatically unless given);
- no log line cuts through it: what Ray and Optuna log during a search goes to the run's ``search.log``
  (:mod:`nas.searchlog`), never to the terminal.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nas.config import SearchConfig
from nas.trialsfile import trial_status
from nas.objectives import OBJECTIVES
from nas.pareto import hypervolume, normalize, pareto_mask

SHOWN_STATUSES = ("COMPLETE", "PRUNED", "FAIL", "INFEASIBLE", "DUPLICATE", "INVALID", "INTERRUPTED")


class SearchProgress:
    """Redraws one progress line; an executor calls :meth:`refresh` as it goes (``force`` when a trial ends)."""

    def __init__(self, config: SearchConfig, core: Any, bounds: dict, *, enabled: bool = True,
                 console: Console | None = None):
        self.config = config
        self.searcher = core  # the search core (nas.core.searchcore.SearchCore): counts, live trials, the study
        self.bounds = bounds
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        # Piped (not a terminal): no live bar, which a file would receive cut to 80 columns, but one plain,
        # complete line per change of the count or status, so a log or CI output still shows progress.
        self.plain = enabled and not self.console.is_terminal
        self._last_plain = ""
        self._progress = Progress(
            TextColumn("[bold]search[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            console=self.console,
            disable=not enabled or self.plain,
            transient=False,
        )
        self._task = self._progress.add_task("trials", total=config.trials, status="starting", eta="ETA: after the first trial")
        self._last = 0.0
        self._started = time.time()
        self._eta_at: tuple[int, float] | None = None  # (trained trials when estimated, finish time estimate)

    def __getstate__(self) -> dict:  # Ray pickles callbacks for its own restore, which we never use
        return {"enabled": False}

    def __enter__(self) -> "SearchProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh(force=True)
        self._progress.stop()

    def refresh(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < 2.0:
            return
        self._last = now
        trained = self.searcher.counted()
        status, eta = self.status_line(), self.eta_text(trained, now)
        self._progress.update(self._task, completed=trained, status=status, eta=eta)
        if self.plain:
            self._print_plain(f"search: {trained}/{self.config.trials} trained · {status} · {eta}")

    def _print_plain(self, line: str) -> None:
        """Write ``line`` whole (no wrapping, no markup) unless it repeats the previous one."""
        if line != self._last_plain:
            self._last_plain = line
            self.console.file.write(line + "\n")
            self.console.file.flush()

    # ----------------------------------------------------------------------------------------
    # What the line says
    # ----------------------------------------------------------------------------------------

    def status_line(self) -> str:
        counts, front, hv, outside = self.summary()
        parts = [f"running {len(self.searcher.live)}"]
        parts += [f"{status} {counts.get(status, 0)}" for status in SHOWN_STATUSES if counts.get(status) or status == "COMPLETE"]
        parts += [f"front {front}", f"HV {hv:.3f}"]
        if hv == 0.0 and outside:
            parts[-1] += f" ({outside})"
        if self.searcher.out_of_budget():
            parts.append("time budget reached")
        return " · ".join(parts)

    def eta_text(self, trained: int, now: float) -> str:
        """Mean seconds per trained trial times the trials left; re-estimated only when a trial is counted."""
        left = max(0, self.config.trials - trained)
        if left == 0:
            return "ETA: done"
        if trained and (self._eta_at is None or self._eta_at[0] != trained):
            elapsed = now - self._started
            finish = now + elapsed / trained * left
            if self.config.time_budget_s:
                finish = min(finish, self._started + self.config.time_budget_s)
            self._eta_at = (trained, finish)
        if self._eta_at is None:
            return "ETA: after the first trial"
        seconds = max(0.0, self._eta_at[1] - now)
        return f"ETA {int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"

    def summary(self) -> tuple[dict[str, int], int, float, str]:
        """Status counts, front size, hypervolume (normalised, reference point 1) and, when the hypervolume is
        0 with completed trials, which bounds they fall outside."""
        counts: dict[str, int] = {}
        points = []
        for trial in self.searcher.study.get_trials(deepcopy=False):
            status = trial_status(trial)
            counts[status] = counts.get(status, 0) + 1
            if status == "COMPLETE" and trial.user_attrs.get("feasible", True) and trial.values:
                points.append(trial.values)
        if not points:
            return counts, 0, 0.0, ""
        values = np.asarray(points, dtype=float)
        directions = [OBJECTIVES[o].direction for o in self.config.problem.objectives]
        bounds = [self.bounds[o] for o in self.config.problem.objectives]
        normalised = normalize(values, directions, bounds)
        hv = float(hypervolume(normalised, [1.0] * len(directions)))
        return counts, int(pareto_mask(normalised).sum()), hv, self._outside(normalised) if hv == 0.0 else ""

    def _outside(self, normalised: np.ndarray) -> str:
        beyond = normalised >= 1.0
        n = int(beyond.any(axis=1).sum())
        if not n:
            return ""
        reasons = []
        for k, name in enumerate(self.config.problem.objectives):
            if beyond[:, k].any():
                low, high = self.bounds[name]
                worst = f"> {high:.4g}" if OBJECTIVES[name].direction == "minimize" else f"< {low:.4g}"
                reasons.append(f"{name} {worst}")
        return f"{n} of {len(normalised)} outside the bounds: {', '.join(reasons)}"  # short: the line must fit
