"""Ray Tune adapters for the rung rules of :mod:`nas.core.rungs`: ``moasha`` (default), ``asha``, ``fifo``.

The decisions are the pure rules; this module only turns a Ray Tune report into a rule's ``decide`` call
(CONTINUE / STOP) and exposes what the search driver reads:

- ``stopped``: trial id -> the ``time_attr`` value (epochs) at which the rule stopped it (Ray itself reports
  a stopped trial as an ordinary TERMINATED one);
- ``stop_at_next_rung()``: the ``--time-budget`` hook.

Baselines (``config["baseline"]`` set by the search) are exempt: they always train to the full proxy budget
and are never ranked (a pruned baseline would compare a partly trained network against the front).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from nas.core.rungs import AshaRule, FifoRule, MoashaRule, Objective, RungRule, rung_decision, rung_levels
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


def _is_exempt(trial: Trial) -> bool:
    config = getattr(trial, "config", None) or {}
    return bool(config.get("baseline"))


class RuleScheduler(FIFOScheduler):
    """A Ray Tune ``TrialScheduler`` that asks a :class:`~nas.core.rungs.RungRule` at every reported epoch."""

    _supports_buffered_results = False  # decide on every epoch's result, not on a batch of them

    def __init__(self, rule: RungRule, *, time_attr: str, metric: str | None = None, mode: str | None = None):
        super().__init__()
        self.rule = rule
        self.time_attr = time_attr
        self._metric, self._mode = metric, mode  # lets Ray check that results carry the metric

    @property
    def stopped(self) -> dict[str, float]:
        return self.rule.stopped

    @property
    def rungs(self) -> tuple[float, ...]:
        return self.rule.rungs

    def stop_at_next_rung(self) -> None:
        self.rule.stop_at_next_rung()

    def on_trial_result(self, tune_controller: "TuneController", trial: Trial, result: dict) -> str:
        keep = self.rule.decide(trial.trial_id, result.get(self.time_attr), result, exempt=_is_exempt(trial))
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    def on_trial_complete(self, tune_controller: "TuneController", trial: Trial, result: dict) -> None:
        self.rule.completed(trial.trial_id, (result or {}).get(self.time_attr), result or {}, exempt=_is_exempt(trial))

    # Ray's own checkpointing (``Tuner.restore``), which we never use: a resumed search builds a fresh scheduler
    # against the Optuna study. Nothing is ever unpickled from a run directory, which someone else may have
    # written (loading a pickle runs code).

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as handle:
            json.dump({"note": "scheduler state is not saved; resume with `nas search --resume RUN`"}, handle)

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("restore a search with `nas search --resume RUN`, not through Ray Tune")


class MOASHAScheduler(RuleScheduler):
    """Multi-objective ASHA (:class:`~nas.core.rungs.MoashaRule`) on ``(metric, mode)`` objectives.

    ``rungs`` overrides the levels ``grace_period * eta**k < max_t``.
    """

    def __init__(self, objectives: Sequence[Objective], *, grace_period: float = 1, eta: float = 3, max_t: float,
                 time_attr: str = "training_iteration", rungs: Sequence[float] | None = None):
        levels = tuple(sorted(rungs)) if rungs is not None else rung_levels(grace_period, eta, max_t)
        rule = MoashaRule(objectives, rungs=levels, max_t=max_t, eta=eta)
        super().__init__(rule, time_attr=time_attr, metric=rule.objectives[0][0])
        self.objectives, self.eta, self.max_t = rule.objectives, eta, max_t

    @property
    def recorded(self) -> dict[float, dict[str, list[float]]]:
        return self.rule.recorded

    @property
    def modes(self) -> tuple[str, ...]:
        return self.rule.modes

    def record(self, trial_id: str, time: float, values: Sequence[float]) -> bool | None:
        return self.rule.record(trial_id, time, values)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Accept Tune's metric/mode only if they agree with one of our objectives."""
        if metric is None:
            return True
        return (metric, mode) in self.objectives or (mode is None and metric in dict(self.objectives))

    def debug_string(self) -> str:
        rungs = ", ".join(f"{level}: {len(self.recorded[level])}" for level in self.rungs)
        return f"Using MO-ASHA (eta={self.eta}): stopped={len(self.stopped)}; results per rung: {rungs or 'no rungs'}"


class StoppingASHAScheduler(RuleScheduler):
    """ASHA on one metric (:class:`~nas.core.rungs.AshaRule`, the rule of Ray's ``AsyncHyperBandScheduler``)."""

    def __init__(self, metric: str, mode: str, *, grace_period: float = 1, eta: float = 3, max_t: float,
                 time_attr: str = "training_iteration"):
        rule = AshaRule(metric, mode, rungs=rung_levels(grace_period, eta, max_t), max_t=max_t, eta=eta)
        super().__init__(rule, time_attr=time_attr, metric=metric, mode=mode)


class StoppingFIFOScheduler(RuleScheduler):
    """FIFO: every trial runs to ``max_t`` unless :meth:`stop_at_next_rung` was called."""

    def __init__(self, *, grace_period: float = 1, eta: float = 3, max_t: float, time_attr: str = "training_iteration"):
        super().__init__(FifoRule(rungs=rung_levels(grace_period, eta, max_t), max_t=max_t), time_attr=time_attr)


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

    ``asha`` ranks by the objective named ``accuracy`` only (ASHA is single-objective).
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
