"""The cost-aware Pareto stopping rule on hand-made rungs (nas/core/costaware.py)."""

from __future__ import annotations

import math

import pytest

from nas.core.costaware import AccuracyNoise, CostAwareRule, RungResult, margin_dominated

NOISE = AccuracyNoise(val_clips=400, seed_sd=0.0, z=1.0)  # margin ~0.03 between accuracies near 0.5


def rule(min_results: int = 2, noise: AccuracyNoise = NOISE) -> CostAwareRule:
    return CostAwareRule("accuracy", ("gmacs", "latency_ms"), rungs=(1, 2), max_t=4, noise=noise,
                         min_results=min_results)


def report(accuracy: float, gmacs: float, latency: float = 10.0) -> dict:
    return {"accuracy": accuracy, "gmacs": gmacs, "latency_ms": latency}


def test_a_cheap_slow_learner_survives_a_costlier_more_accurate_trial() -> None:
    r = rule()
    assert r.decide("big", 1, report(0.80, gmacs=40.0, latency=50.0))
    assert r.decide("cheap", 1, report(0.30, gmacs=2.0, latency=5.0))  # MO-ASHA at eta 2 would stop one of them
    assert r.stopped == {}


def test_a_clearly_worse_trial_that_costs_no_less_is_stopped() -> None:
    r = rule()
    r.decide("good", 1, report(0.80, gmacs=10.0))
    assert not r.decide("worse", 1, report(0.50, gmacs=10.0, latency=10.0))
    assert r.stopped == {"worse": 1}


def test_two_non_dominated_trials_both_survive_without_any_quota() -> None:
    r = rule()
    outcomes = [r.decide(f"t{i}", 1, report(0.2 + 0.1 * i, gmacs=1.0 + i)) for i in range(6)]
    assert outcomes == [True] * 6  # each is cheaper than every more accurate one: a front of six


def test_results_within_the_margin_both_survive() -> None:
    margin = NOISE.margin(0.52, 0.50)
    assert 0.03 < margin < 0.04
    r = rule()
    r.decide("a", 1, report(0.52, gmacs=10.0))
    assert r.decide("b", 1, report(0.50, gmacs=10.0))  # same cost, 2 points behind: within noise
    assert not r.decide("c", 1, report(0.52 - margin - 0.01, gmacs=11.0))


def test_no_decision_below_the_minimum_rung_population() -> None:
    r = rule(min_results=3)
    r.decide("good", 1, report(0.90, gmacs=1.0))
    assert r.decide("bad", 1, report(0.10, gmacs=50.0))  # only 2 results at the rung: no decision yet
    assert not r.decide("bad2", 1, report(0.10, gmacs=50.0))  # the third result is judged


def test_a_trial_is_judged_once_per_rung_and_again_at_the_next() -> None:
    r = rule()
    r.decide("good", 1, report(0.60, gmacs=1.0))
    r.decide("good", 2, report(0.80, gmacs=1.0))
    assert r.decide("late", 1, report(0.58, gmacs=5.0))
    assert r.decide("late", 1, report(0.10, gmacs=5.0))  # already ranked at rung 1: no second decision there
    assert not r.decide("late", 2, report(0.60, gmacs=5.0))


def test_its_state_survives_a_resume() -> None:
    """A resumed search replays finished trials into a fresh rule; it then decides as the uninterrupted one."""
    history = [("a", [(1, report(0.70, 5.0)), (2, report(0.80, 5.0))]), ("b", [(1, report(0.72, 3.0))])]
    straight = rule()
    for trial, epochs in history:
        for time, result in epochs:
            straight.decide(trial, time, result)
    resumed = rule()
    for trial, epochs in history:
        resumed.replay(trial, epochs)
    newcomer = report(0.40, gmacs=6.0)
    assert straight.decide("new", 1, newcomer) is resumed.decide("new", 1, newcomer) is False


def test_missing_or_non_finite_values_are_never_ranked() -> None:
    r = rule()
    assert r.decide("x", 1, {"accuracy": 0.5, "gmacs": 1.0})  # no latency: not ranked, continues
    assert r.decide("y", 1, report(math.nan, 1.0))
    assert r.recorded[1] == {}


def test_margin_dominance_is_exact_on_costs() -> None:
    base = RungResult(0.5, (10.0, 10.0))
    assert margin_dominated(base, [RungResult(0.9, (10.0, 10.0))], NOISE)
    assert not margin_dominated(base, [RungResult(0.9, (10.0, 10.0001))], NOISE)
    with pytest.raises(ValueError):
        AccuracyNoise(val_clips=0)
