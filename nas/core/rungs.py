"""Rung rules: whether a trial continues or stops when it reports an epoch (``docs/search-space.md``), as pure Python.

Three rules share one frame (:class:`RungRule`): rungs sit at ``grace_period * eta**k`` epochs, strictly
below ``max_t`` (the full proxy budget); a result at or past ``max_t`` always continues, because the trial
trained its full budget and ends by itself (a stop there would tell a fully trained trial PRUNED, ``docs/search-space.md``);
baselines are exempt (they always train to the full budget and are never ranked); and
:meth:`RungRule.stop_at_next_rung` (the ``--time-budget`` hook) stops every trial at the next rung it reaches.

* :class:`FifoRule` (``--scheduler fifo``): never stops a trial by itself.
* :class:`AshaRule` (``asha``): asynchronous successive halving on one metric (Li et al. 2020), the rule of
  Ray Tune's ``AsyncHyperBandScheduler``: at a rung a trial continues unless its value is below the
  ``(1 - 1/eta)`` percentile of the values recorded there before it.
* :class:`MoashaRule` (``moasha``, the default): multi-objective ASHA (Schmucker et al. 2021, as Syne Tune's
  ``MOASHA``), stopping variant. A result arriving at a rung is ranked among every result recorded there
  (itself included) by (1) non-dominated sorting, (2) crowding distance within the front, larger first,
  (3) earlier arrival; with ``n`` results it continues iff its 0-based position ``p <= n / eta``: Syne Tune's
  inclusive rule (both of two results continue at eta 2). The strict quantile ``p < n / eta`` stopped one
  of every two at the first rung and made tpe + moasha end at a median final hypervolume of 0.7112 on the demo
  table against 0.7726 with the inclusive rule (docs/search-space.md). The ranking is :func:`rung_decision`.

* :class:`TopKRule` (``topk``): "keep the top k after one epoch", the simple baseline of early discarding
  (Egele et al. 2023): at the first rung only, a result continues iff its position among every result recorded
  there (itself included), ranked as MO-ASHA ranks, is below ``k``; past the first rung nothing is stopped.
  Where MO-ASHA keeps a share of a rung (``p <= n / eta``), this keeps a fixed number, whatever the rung holds.

Every rule records ``stopped`` (trial id -> epochs reached when it was stopped). A resumed search first
:meth:`RungRule.replay` s the trials its earlier attempts finished (:mod:`nas.core.resume`), so its rungs hold
what an uninterrupted search's would. Every executor drives these rules through :class:`nas.executors.loop.SearchLoop`; :func:`nas.core.schedulers.make_rule` makes them.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from nas.pareto import pareto_order

Objective = tuple[str, str]  # (metric reported by the trainable, "max" or "min")


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


def _check_modes(modes: Sequence[str]) -> None:
    for mode in modes:
        if mode not in ("max", "min"):
            raise ValueError(f"mode {mode!r} is not allowed; allowed: 'max', 'min'")


def rung_decision(recorded: Sequence[Sequence[float]], new: Sequence[float], eta: float, modes: Sequence[str]) -> bool:
    """MO-ASHA: whether a result arriving at a rung continues (True) or stops (False).

    ``recorded``: the objective vectors already recorded at this rung, in arrival order;
    ``new``: the arriving trial's vector; ``modes``: ``"max"`` or ``"min"`` per objective.
    The newcomer continues iff its 0-based position ``p <= n / eta`` among the ``n = len(recorded) + 1``
    results, ranked by front index, then crowding distance (larger first), then arrival.
    """
    _check_modes(modes)
    if eta <= 1:
        raise ValueError(f"eta={eta!r} is not allowed; allowed: a number > 1")
    points = _to_minimization([*recorded, new], modes)
    order = pareto_order(points)
    position = int(np.flatnonzero(order == len(points) - 1)[0])
    return position <= len(points) / eta


def asha_decision(recorded: Sequence[float], new: float, eta: float) -> bool:
    """ASHA on one metric (larger is better): continue unless ``new`` is below the ``(1 - 1/eta)``
    percentile of the values recorded at the rung before it (NaN values ignored); the first always continues."""
    if not recorded:
        return True
    cutoff = np.nanpercentile(np.asarray(recorded, dtype=float), (1 - 1 / eta) * 100)
    return not (new < cutoff)


class RungRule:
    """The frame every rule shares: rungs below ``max_t``, exemptions, the time-budget hook, ``stopped``."""

    def __init__(self, *, rungs: Sequence[float], max_t: float) -> None:
        self.rungs = tuple(rungs)
        self.max_t = max_t
        self.stopped: dict[str, float] = {}
        self._stop_everyone = False
        self._last_time: dict[str, float] = {}

    def stop_at_next_rung(self) -> None:
        """From now on every trial that reaches a rung it had not reached yet is stopped (``--time-budget``)."""
        self._stop_everyone = True

    def decide(self, trial_id: str, time: float | None, result: Mapping[str, Any], *, exempt: bool = False) -> bool:
        """One reported epoch: True = continue, False = stop (recorded in ``stopped``)."""
        if exempt or time is None:
            return True
        if time >= self.max_t:  # trained its full budget: it ends by itself, never stopped
            return True
        keep = self._rank(trial_id, time, result)
        crossed = self._crossed_rung(trial_id, time)
        if self._stop_everyone and crossed:
            keep = False
        if keep is False:
            self.stopped[trial_id] = time
            return False
        return True

    def completed(self, trial_id: str, time: float | None, result: Mapping[str, Any], *, exempt: bool = False) -> None:
        """A trial ended: rules that rank record its last result at a rung it had not been ranked at."""
        if exempt or time is None or time >= self.max_t:
            return
        self._record_final(trial_id, time, result)

    def replay(self, trial_id: str, epochs: Sequence[tuple[float, Mapping[str, Any]]], *,
               stopped_at: float | None = None) -> None:
        """Record a trial an earlier attempt of the search finished, before this attempt's first decision.

        ``epochs``: its reported ``(time, result)`` pairs in order. Each is recorded at the rungs exactly as
        :meth:`decide` would have, but the decision is not taken again (the trial is over) and the time-budget
        hook does not apply; ``stopped_at`` (a trial the rule stopped) goes into ``stopped``. Without this a
        resumed search ranks its new trials against empty rungs and keeps trials the uninterrupted search
        would have stopped (:mod:`nas.core.resume` reads the epochs from the study).
        """
        for time, result in epochs:
            if time < self.max_t:
                self._rank(trial_id, time, result)
            self._last_time[trial_id] = time
        if stopped_at is not None:
            self.stopped[trial_id] = stopped_at

    def _rank(self, trial_id: str, time: float, result: Mapping[str, Any]) -> bool | None:
        """The rule's own decision at a new rung (None: no rung reached, or already ranked there)."""
        return None

    def _record_final(self, trial_id: str, time: float, result: Mapping[str, Any]) -> None:
        pass

    def _crossed_rung(self, trial_id: str, time: float) -> bool:
        """Whether this report is the trial's first at or past some rung level."""
        before = self._last_time.get(trial_id, -math.inf)
        self._last_time[trial_id] = time
        return any(before < level <= time for level in self.rungs)


class FifoRule(RungRule):
    """Every trial runs to ``max_t`` unless :meth:`stop_at_next_rung` was called."""


class AshaRule(RungRule):
    """ASHA on ``metric`` (``mode`` ``"max"`` or ``"min"``): :func:`asha_decision` at each rung."""

    def __init__(self, metric: str, mode: str, *, rungs: Sequence[float], max_t: float, eta: float) -> None:
        super().__init__(rungs=rungs, max_t=max_t)
        _check_modes([mode])
        self.metric, self.mode, self.eta = metric, mode, eta
        self.recorded: dict[float, dict[str, float]] = {level: {} for level in self.rungs}

    def _value(self, result: Mapping[str, Any]) -> float | None:
        value = result.get(self.metric)
        return None if value is None else (float(value) if self.mode == "max" else -float(value))

    def _rank(self, trial_id: str, time: float, result: Mapping[str, Any]) -> bool | None:
        value = self._value(result)
        for level in reversed(self.rungs):
            if time < level:
                continue
            at_rung = self.recorded[level]
            if trial_id in at_rung or value is None:
                return None
            keep = asha_decision(list(at_rung.values()), value, self.eta)
            at_rung[trial_id] = value
            return keep
        return None

    def _record_final(self, trial_id: str, time: float, result: Mapping[str, Any]) -> None:
        self._rank(trial_id, time, result)


class MoashaRule(RungRule):
    """MO-ASHA on ``objectives`` (``(metric, mode)`` pairs): :func:`rung_decision` at each rung."""

    def __init__(self, objectives: Sequence[Objective], *, rungs: Sequence[float], max_t: float, eta: float) -> None:
        super().__init__(rungs=rungs, max_t=max_t)
        self.objectives = tuple((str(metric), str(mode)) for metric, mode in objectives)
        if not self.objectives:
            raise ValueError("MO-ASHA needs at least one (metric, mode) objective")
        for metric, mode in self.objectives:
            if mode not in ("max", "min"):
                raise ValueError(f"objective {metric!r}: mode {mode!r} is not allowed; allowed: 'max', 'min'")
        self.eta = eta
        self.recorded: dict[float, dict[str, list[float]]] = {level: {} for level in self.rungs}

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(mode for _, mode in self.objectives)

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

    def values(self, result: Mapping[str, Any]) -> list[float]:
        missing = [metric for metric, _ in self.objectives if metric not in result]
        if missing:
            raise KeyError(f"MO-ASHA: the trial's result lacks objective(s) {missing}; it has {sorted(result)}")
        return [result[metric] for metric, _ in self.objectives]

    def _rank(self, trial_id: str, time: float, result: Mapping[str, Any]) -> bool | None:
        return self.record(trial_id, time, self.values(result))

    def _record_final(self, trial_id: str, time: float, result: Mapping[str, Any]) -> None:
        if all(metric in result for metric, _ in self.objectives):
            self.record(trial_id, time, self.values(result))


class TopKRule(RungRule):
    """Keep the top ``k`` after the first rung (module docstring): MO-ASHA's ranking, a fixed number kept.

    The other rungs are kept only for :meth:`stop_at_next_rung` (``--time-budget``), as :class:`FifoRule` does.
    """

    def __init__(self, objectives: Sequence[Objective], *, rungs: Sequence[float], max_t: float, k: int) -> None:
        super().__init__(rungs=rungs, max_t=max_t)
        if k < 1:
            raise ValueError(f"k={k!r} is not allowed; allowed: an integer >= 1")
        self.objectives = tuple((str(metric), str(mode)) for metric, mode in objectives)
        _check_modes([mode for _, mode in self.objectives])
        self.k = k
        self.recorded: dict[str, list[float]] = {}  # the first rung's results, by trial

    def _rank(self, trial_id: str, time: float, result: Mapping[str, Any]) -> bool | None:
        if not self.rungs or time < self.rungs[0] or trial_id in self.recorded:
            return None
        values = [result.get(metric) for metric, _ in self.objectives]
        points = _to_minimization([*self.recorded.values(), values], [mode for _, mode in self.objectives])
        position = int(np.flatnonzero(pareto_order(points) == len(points) - 1)[0])
        self.recorded[trial_id] = values
        return position < self.k

    def _record_final(self, trial_id: str, time: float, result: Mapping[str, Any]) -> None:
        self._rank(trial_id, time, result)
