"""Trial schedulers for the search (SPEC 5): ``moasha`` (default), ``asha`` and ``fifo``.

**MO-ASHA** is asynchronous successive halving on all objectives at once (Schmucker et al. 2021, as
Syne Tune's ``MOASHA``; Ray Tune has none), stopping variant. Rungs sit at
``grace_period * eta**k`` epochs, below ``max_t``. When a trial reports at a rung it has not been
ranked at yet, its objective vector is ranked among every result recorded at that rung so far
(itself included), by:

1. non-dominated sorting: the front index (0 = Pareto front);
2. crowding distance within the front, larger first (it keeps the front spread out);
3. earlier arrival at the rung (so a tie never favours the newcomer).

With ``n`` results at the rung, the newcomer continues iff its 0-based position ``p`` satisfies
``p < n / eta``, i.e. it is among the top ``ceil(n / eta)``. So the first result at a rung always
continues, a rung with at most ``eta`` results keeps only the best, and the share kept tends to
``1 / eta`` as the rung fills. (Syne Tune keeps ``p <= n / eta``, one more at exact multiples; we
take the strict quantile.) The rule is :func:`rung_decision`, pure and testable without Ray;
:class:`MOASHAScheduler` is a thin Ray Tune wrapper around it.

All three schedulers share what the search driver needs from a scheduler:

- ``stopped``: trial id -> the ``time_attr`` value (epochs) at which this scheduler stopped it, so the
  driver tells Optuna PRUNED with the fidelity reached (Ray itself reports a stopped trial as an
  ordinary TERMINATED one);
- ``stop_at_next_rung()``: the ``--time-budget`` hook: from then on every trial reaching a rung stops
  (for ``fifo`` the rungs are the same ``grace_period * eta**k`` levels).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from nas.pareto import pareto_order
from space.errors import UserInputError

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

__all__ = [
    "SCHEDULERS",
    "MOASHAScheduler",
    "StoppingASHAScheduler",
    "StoppingFIFOScheduler",
    "make_scheduler",
    "rung_decision",
    "rung_levels",
]

SCHEDULERS = ("moasha", "asha", "fifo")
Objective = tuple[str, str]  # (metric reported by the trainable, "max" or "min")


# --------------------------------------------------------------------------------------------
# The pure rule
# --------------------------------------------------------------------------------------------


def rung_levels(grace_period: float, eta: float, max_t: float) -> tuple[float, ...]:
    """Rung levels ``grace_period * eta**k`` strictly below ``max_t`` (a trial at ``max_t`` is done)."""
    levels = []
    level = grace_period
    while level < max_t:
        levels.append(int(level) if float(level).is_integer() else level)
        level *= eta
    return tuple(levels)


def _to_minimization(vectors: Sequence[Sequence[float]], modes: Sequence[str]) -> np.ndarray:
    """Negate maximised columns; a missing or NaN value becomes +inf, the worst possible."""
    signs = np.array([-1.0 if mode == "max" else 1.0 for mode in modes])
    array = np.array([[np.nan if v is None else float(v) for v in row] for row in vectors], dtype=float)
    array = array.reshape(len(vectors), len(modes)) * signs
    array[np.isnan(array)] = np.inf
    return array


def rung_decision(recorded: Sequence[Sequence[float]], new: Sequence[float], eta: float, modes: Sequence[str]) -> bool:
    """Whether a result arriving at a rung continues (True) or stops (False).

    ``recorded``: the objective vectors already recorded at this rung, in arrival order;
    ``new``: the arriving trial's vector; ``modes``: ``"max"`` or ``"min"`` per objective.
    The newcomer continues iff it ranks in the top ``ceil(n / eta)`` of the ``n = len(recorded) + 1``
    results, ranked by front index, then crowding distance (larger first), then arrival.
    """
    for mode in modes:
        if mode not in ("max", "min"):
            raise ValueError(f"mode {mode!r} is not allowed; allowed: 'max', 'min'")
    if eta <= 1:
        raise ValueError(f"eta={eta!r} is not allowed; allowed: a number > 1")
    points = _to_minimization([*recorded, new], modes)
    order = pareto_order(points)
    position = int(np.flatnonzero(order == len(points) - 1)[0])
    return position < len(points) / eta


# --------------------------------------------------------------------------------------------
# Shared bookkeeping: who was stopped, and the time-budget hook
# --------------------------------------------------------------------------------------------


def _is_exempt(trial: Trial) -> bool:
    """Baselines (``config["baseline"]`` set by the search) always train to the full proxy budget.

    They are the papers' designs measured under the same proxy for comparison; a pruned baseline would
    compare a partly trained network against the front.
    """
    config = getattr(trial, "config", None) or {}
    return bool(config.get("baseline"))


class _StoppingRecord:
    """Mixed into each scheduler: records its STOP decisions and stops everything at rungs once told to."""

    rungs: tuple[float, ...]
    time_attr: str

    def _init_record(self, rungs: tuple[float, ...], time_attr: str, max_t: float) -> None:
        self.rungs = rungs
        self.time_attr = time_attr
        self.max_t = max_t
        self.stopped: dict[str, float] = {}
        self._stop_everyone = False
        self._last_time: dict[str, float] = {}

    def stop_at_next_rung(self) -> None:
        """From now on every trial that reaches a rung it had not reached yet is stopped (``--time-budget``)."""
        self._stop_everyone = True

    def _crossed_rung(self, trial_id: str, time: float) -> bool:
        """Whether this report is the trial's first at or past some rung level."""
        before = self._last_time.get(trial_id, -math.inf)
        self._last_time[trial_id] = time
        return any(before < level <= time for level in self.rungs)

    def at_full_budget(self, result: dict) -> bool:
        """A result at (or past) ``max_t``: the trial trained its full budget and ends by itself.

        No scheduler may stop it there (that would tell a fully trained trial PRUNED), whatever the rung
        levels: Ray's ASHA bracket puts a rung at ``max_t`` whenever ``max_t = grace * eta**k``.
        """
        time = result.get(self.time_attr)
        return time is not None and time >= self.max_t

    def _finish_decision(self, trial: Trial, result: dict, decision: str) -> str:
        if _is_exempt(trial) or self.at_full_budget(result):
            return TrialScheduler.CONTINUE
        time = result.get(self.time_attr)
        if time is None:
            return decision
        crossed = self._crossed_rung(trial.trial_id, time)
        if self._stop_everyone and crossed:
            decision = TrialScheduler.STOP
        if decision == TrialScheduler.STOP:
            self.stopped[trial.trial_id] = time
        return decision

    # Ray's own checkpointing (``Tuner.restore``), which we never use: a resumed search builds a fresh scheduler
    # against the Optuna study. Nothing is ever unpickled from a run directory, which someone else may have
    # written (loading a pickle runs code).

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as handle:
            json.dump({"note": "scheduler state is not saved; resume with `nas search --resume RUN`"}, handle)

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("restore a search with `nas search --resume RUN`, not through Ray Tune")


# --------------------------------------------------------------------------------------------
# Schedulers
# --------------------------------------------------------------------------------------------


class MOASHAScheduler(_StoppingRecord, FIFOScheduler):
    """Multi-objective ASHA, stopping variant (see the module docstring for the rule).

    ``objectives``: ``(metric, mode)`` pairs; every result the trainable reports must carry each metric
    and ``time_attr`` (default ``training_iteration``, i.e. epochs when a trial reports once per epoch).
    ``rungs`` overrides the levels ``grace_period * eta**k < max_t``.
    """

    _supports_buffered_results = False  # decide on every epoch's result, not on a batch of them

    def __init__(
        self,
        objectives: Sequence[Objective],
        *,
        grace_period: float = 1,
        eta: float = 3,
        max_t: float,
        time_attr: str = "training_iteration",
        rungs: Sequence[float] | None = None,
    ):
        super().__init__()
        self.objectives = tuple((str(metric), str(mode)) for metric, mode in objectives)
        if not self.objectives:
            raise ValueError("MOASHAScheduler needs at least one (metric, mode) objective")
        for metric, mode in self.objectives:
            if mode not in ("max", "min"):
                raise ValueError(f"objective {metric!r}: mode {mode!r} is not allowed; allowed: 'max', 'min'")
        self.eta = eta
        self.max_t = max_t
        levels = tuple(sorted(rungs)) if rungs is not None else rung_levels(grace_period, eta, max_t)
        self._init_record(levels, time_attr, max_t)
        self.recorded: dict[float, dict[str, list[float]]] = {level: {} for level in levels}
        self._metric = self.objectives[0][0]  # lets Ray check that results carry it

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(mode for _, mode in self.objectives)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Accept Tune's metric/mode only if they agree with one of our objectives."""
        if metric is None:
            return True
        return (metric, mode) in self.objectives or (mode is None and metric in dict(self.objectives))

    def record(self, trial_id: str, time: float, values: Sequence[float]) -> bool | None:
        """Rank ``values`` at the highest rung ``<= time`` this trial has not been ranked at yet, and record them.

        Returns the decision (True = continue), or None when no new rung was reached. Public so that a
        resumed search can replay earlier trials' per-epoch results into the rungs.
        """
        for level in reversed(self.rungs):
            if time < level:
                continue
            at_rung = self.recorded[level]
            if trial_id in at_rung:
                return None
            keep = rung_decision(list(at_rung.values()), values, self.eta, self.modes)
            at_rung[trial_id] = list(values)
            return keep
        return None

    def _values(self, result: dict) -> list[float]:
        missing = [metric for metric, _ in self.objectives if metric not in result]
        if missing:
            raise KeyError(f"MOASHAScheduler: the trial's result lacks objective(s) {missing}; it has {sorted(result)}")
        return [result[metric] for metric, _ in self.objectives]

    def on_trial_result(self, tune_controller: "TuneController", trial: Trial, result: dict) -> str:
        decision = TrialScheduler.CONTINUE
        if _is_exempt(trial):  # never ranked, never recorded: it must not raise or lower the bar either
            return decision
        time = result.get(self.time_attr)
        if time is not None and time < self.max_t:
            keep = self.record(trial.trial_id, time, self._values(result))
            if keep is False:
                decision = TrialScheduler.STOP
        return self._finish_decision(trial, result, decision)

    def on_trial_complete(self, tune_controller: "TuneController", trial: Trial, result: dict) -> None:
        if _is_exempt(trial):
            return
        time = result.get(self.time_attr)
        if time is not None and time < self.max_t and all(metric in result for metric, _ in self.objectives):
            self.record(trial.trial_id, time, self._values(result))

    def debug_string(self) -> str:
        rungs = ", ".join(f"{level}: {len(self.recorded[level])}" for level in self.rungs)
        return f"Using MO-ASHA (eta={self.eta}): stopped={len(self.stopped)}; results per rung: {rungs or 'no rungs'}"


class StoppingASHAScheduler(_StoppingRecord, AsyncHyperBandScheduler):
    """Ray's stock ASHA on one metric, plus the shared ``stopped`` record and the time-budget hook.

    A result at ``max_t`` never reaches Ray's bracket (it has a rung there when ``max_t = grace * eta**k``
    and would stop a fully trained trial): such a trial ends by itself, so a STOP here always means pruned.
    """

    def __init__(self, metric: str, mode: str, *, grace_period: float = 1, eta: float = 3, max_t: float,
                 time_attr: str = "training_iteration"):
        super().__init__(time_attr=time_attr, metric=metric, mode=mode, max_t=max_t, grace_period=grace_period,
                         reduction_factor=eta, stop_last_trials=False)
        self._init_record(rung_levels(grace_period, eta, max_t), time_attr, max_t)

    def on_trial_result(self, tune_controller: "TuneController", trial: Trial, result: dict) -> str:
        if _is_exempt(trial) or self.at_full_budget(result):
            return TrialScheduler.CONTINUE
        decision = super().on_trial_result(tune_controller, trial, result)
        return self._finish_decision(trial, result, decision)


class StoppingFIFOScheduler(_StoppingRecord, FIFOScheduler):
    """FIFO: every trial runs to ``max_t`` unless :meth:`stop_at_next_rung` was called."""

    def __init__(self, *, grace_period: float = 1, eta: float = 3, max_t: float, time_attr: str = "training_iteration"):
        super().__init__()
        self._init_record(rung_levels(grace_period, eta, max_t), time_attr, max_t)

    def on_trial_result(self, tune_controller: "TuneController", trial: Trial, result: dict) -> str:
        return self._finish_decision(trial, result, TrialScheduler.CONTINUE)


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------


def make_scheduler(
    name: str,
    objectives: Sequence[Objective],
    grace_period: float,
    eta: float,
    max_t: float,
    *,
    time_attr: str = "training_iteration",
) -> TrialScheduler:
    """The scheduler ``--scheduler NAME`` asks for; ``objectives`` are ``(metric, "max"|"min")`` pairs.

    ``asha`` ranks by the objective named ``accuracy`` only (Ray's stock ASHA is single-objective).
    """
    if name not in SCHEDULERS:
        raise UserInputError(f"scheduler {name!r} is not allowed; allowed: {', '.join(SCHEDULERS)}")
    if not (isinstance(eta, (int, float)) and eta > 1):
        raise UserInputError(f"eta={eta!r} is not allowed; allowed: a number > 1 (3 is usual)")
    if not grace_period > 0:
        raise UserInputError(f"grace period={grace_period!r} is not allowed; allowed: a number of epochs > 0")
    if not max_t >= grace_period:
        raise UserInputError(f"max_t={max_t!r} (the proxy epochs) must be >= the grace period {grace_period!r}")
    if name == "moasha":
        return MOASHAScheduler(objectives, grace_period=grace_period, eta=eta, max_t=max_t, time_attr=time_attr)
    if name == "asha":
        modes = dict(objectives)
        if "accuracy" not in modes:
            raise UserInputError("scheduler 'asha' ranks by accuracy; add accuracy to the objectives or use moasha/fifo")
        return StoppingASHAScheduler("accuracy", modes["accuracy"], grace_period=grace_period, eta=eta, max_t=max_t,
                                     time_attr=time_attr)
    return StoppingFIFOScheduler(grace_period=grace_period, eta=eta, max_t=max_t, time_attr=time_attr)
