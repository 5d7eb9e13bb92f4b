"""The cost-aware Pareto stopping rule (``--scheduler costaware``; ``docs/search-space.md``), as pure Python.

In hardware-aware NAS the costs (GMACs, parameters, latency) are known before a trial trains; only accuracy is
learned over time. MO-ASHA (Schmucker et al. 2021, Syne Tune's ``MOASHA``) ranks every objective at a rung as
if all were noisy partial observations, and keeps a fixed share ``1/eta`` of each rung: a cheap architecture
that learns slowly is stopped at the first rung because its early accuracy is low, although nothing at that
rung is both as cheap and clearly better. This rule asks instead the question a Pareto front asks:

    At a rung, a trial is stopped only when another result at that rung costs no more on every known cost and
    is more accurate by more than the noise of the two accuracies (:class:`AccuracyNoise`).

Consequences, each tested on hand-made rungs:

* a cheap slow learner survives a costlier, more accurate trial (it is not dominated on cost);
* two non-dominated trials both survive, whatever ``eta`` would say: there is no quota;
* results within the margin of each other both survive (a difference within noise decides nothing);
* a trial within the margin of the rung's current front is never stopped (anything that beats it by more than
  the margin at no more cost is itself dominated by a front member that does the same);
* no decision while the rung holds fewer than ``min_results`` results (counting the newcomer): the first
  trials of a search continue, as synchronous successive halving waits for its rung to fill.

Where it differs from MO-ASHA: no quota (``eta`` only places the rungs), costs are exact and compared without
noise, accuracy is compared with a margin, and the decision is "dominated by a clear margin", not "ranked in
the top 1/eta". Like every rule it inherits the frame of :class:`~nas.core.rungs.RungRule` (rungs, exemptions,
the time-budget hook, replay on resume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from nas.core.rungs import RungRule


@dataclass(frozen=True)
class AccuracyNoise:
    """The noise of a proxy accuracy reading: binomial over ``val_clips`` validation clips plus a training-seed part.

    The margin two readings must differ by is ``z`` standard deviations of their difference:
    ``z * sqrt(a(1-a)/n + b(1-b)/n + 2 * seed_sd**2)``. ``seed_sd`` is the standard deviation of one reading
    between training seeds at the same validation set (measured on a recorded table, ``docs/proxy.md``).
    """

    val_clips: int
    seed_sd: float = 0.0
    z: float = 1.0

    def __post_init__(self) -> None:
        if self.val_clips < 1:
            raise ValueError(f"val_clips={self.val_clips!r} is not allowed; allowed: an integer >= 1")
        if not (math.isfinite(self.seed_sd) and self.seed_sd >= 0 and math.isfinite(self.z) and self.z >= 0):
            raise ValueError(f"seed_sd={self.seed_sd!r}, z={self.z!r}: allowed: finite numbers >= 0")

    def margin(self, a: float, b: float) -> float:
        binomial = binomial_se(a, self.val_clips) ** 2 + binomial_se(b, self.val_clips) ** 2
        return self.z * math.sqrt(binomial + 2 * self.seed_sd**2)


def binomial_se(accuracy: float, clips: int) -> float:
    """Standard error of a top-1 accuracy read on ``clips`` validation clips: ``sqrt(a(1-a)/n)`` (docs/proxy.md)."""
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / clips)


@dataclass(frozen=True)
class RungResult:
    """What a rung keeps of one trial: its accuracy there and its (known, exact) costs, lower is better."""

    accuracy: float
    costs: tuple[float, ...]


def margin_dominated(new: RungResult, others: Sequence[RungResult], noise: AccuracyNoise) -> bool:
    """Whether some other result costs no more on every cost and is more accurate by more than the margin."""
    return any(
        all(o <= n for o, n in zip(other.costs, new.costs))
        and other.accuracy - new.accuracy > noise.margin(other.accuracy, new.accuracy)
        for other in others
    )


class CostAwareRule(RungRule):
    """Stop a trial at a rung only when a no-costlier result there is clearly more accurate (module docstring).

    ``accuracy``: the reported metric to maximise; ``costs``: the reported cost metrics (minimised, known
    before training); ``min_results``: no decision at a rung holding fewer results than this (newcomer included).
    """

    def __init__(self, accuracy: str, costs: Sequence[str], *, rungs: Sequence[float], max_t: float,
                 noise: AccuracyNoise, min_results: int = 3) -> None:
        super().__init__(rungs=rungs, max_t=max_t)
        if min_results < 1:
            raise ValueError(f"min_results={min_results!r} is not allowed; allowed: an integer >= 1")
        self.accuracy, self.costs = accuracy, tuple(costs)
        self.noise, self.min_results = noise, min_results
        self.recorded: dict[float, dict[str, RungResult]] = {level: {} for level in self.rungs}

    def result_of(self, result: Mapping[str, Any]) -> RungResult | None:
        """The reported accuracy and costs; None when any is missing (such a result is never ranked)."""
        values = [result.get(name) for name in (self.accuracy, *self.costs)]
        if any(v is None or not math.isfinite(float(v)) for v in values):
            return None
        return RungResult(float(values[0]), tuple(float(v) for v in values[1:]))

    def _rank(self, trial_id: str, time: float, result: Mapping[str, Any]) -> bool | None:
        for level in reversed(self.rungs):
            if time < level:
                continue
            at_rung = self.recorded[level]
            new = self.result_of(result)
            if trial_id in at_rung or new is None:
                return None
            others = list(at_rung.values())
            at_rung[trial_id] = new
            if len(others) + 1 < self.min_results:
                return True
            return not margin_dominated(new, others, self.noise)
        return None

    def _record_final(self, trial_id: str, time: float, result: Mapping[str, Any]) -> None:
        self._rank(trial_id, time, result)
