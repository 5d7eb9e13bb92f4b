"""The pure rung rules (nas.core.rungs), without Ray."""

from __future__ import annotations

import pytest

from nas.core.rungs import AshaRule, FifoRule, MoashaRule, TopKRule, asha_decision, rung_levels


def test_asha_keeps_the_top_share_by_percentile():
    assert asha_decision([], 0.1, 3)  # first at a rung
    assert not asha_decision([0.5], 0.4, 3)
    assert asha_decision([0.5, 0.1], 0.4, 3)  # above the 66.7th percentile of {0.1, 0.5} = 0.367


@pytest.mark.parametrize("rule", [
    FifoRule(rungs=rung_levels(1, 2, 4), max_t=4),
    AshaRule("accuracy", "max", rungs=rung_levels(1, 2, 4), max_t=4, eta=2),
    MoashaRule([("accuracy", "max")], rungs=rung_levels(1, 2, 4), max_t=4, eta=2),
    TopKRule([("accuracy", "max")], rungs=rung_levels(1, 2, 4), max_t=4, k=2),
])
def test_every_rule_lets_a_trial_finish_its_budget_and_exempts_baselines(rule):
    rule.decide("a", 1, {"accuracy": 0.9})
    rule.stop_at_next_rung()
    assert rule.decide("base", 1, {"accuracy": 0.0}, exempt=True)
    assert rule.decide("a", 4, {"accuracy": 0.0})  # at max_t: never stopped
    assert not rule.decide("b", 2, {"accuracy": 0.9})  # the time budget: stopped at its next rung
    assert rule.stopped == {"b": 2}


def _rules() -> list:
    levels = rung_levels(1, 2, 4)  # rungs at epochs 1 and 2, budget 4
    return [FifoRule(rungs=levels, max_t=4), AshaRule("accuracy", "max", rungs=levels, max_t=4, eta=2),
            MoashaRule([("accuracy", "max")], rungs=levels, max_t=4, eta=3),  # eta 3: one of two continues
            TopKRule([("accuracy", "max")], rungs=levels, max_t=4, k=1)]


@pytest.mark.parametrize("make", range(4), ids=["fifo", "asha", "moasha", "topk"])
def test_a_replayed_trial_fills_the_rungs_as_if_the_rule_had_seen_it(make):
    """A resume replays finished trials (nas.core.resume): the next decision is the uninterrupted rule's."""
    seen, replayed = _rules()[make], _rules()[make]
    epochs = [(1, {"accuracy": 0.8}), (2, {"accuracy": 0.9}), (4, {"accuracy": 0.95})]
    for time, result in epochs:
        seen.decide("old", time, result)
    replayed.replay("study-trial-0", epochs)
    assert replayed.stopped == {} and replayed.decide("new", 1, {"accuracy": 0.1}) == seen.decide("new", 1, {"accuracy": 0.1})
    if make:  # the ranking rules stop the weaker newcomer: it meets the replayed result at rung 1
        assert "new" in replayed.stopped
    replayed.replay("study-trial-1", [(1, {"accuracy": 0.0})], stopped_at=1)  # a trial the rule had stopped
    assert replayed.stopped["study-trial-1"] == 1


def test_topk_keeps_a_fixed_number_at_the_first_rung_and_nothing_later():
    """Keep the top k after one epoch: the first k always continue; later, a result continues only if fewer than
    k recorded there rank above it (MO-ASHA's ranking on every objective); past the first rung nothing stops."""
    rule = TopKRule([("accuracy", "max"), ("gmacs", "min")], rungs=rung_levels(1, 2, 4), max_t=4, k=2)
    assert rule.decide("a", 1, {"accuracy": 0.5, "gmacs": 10.0})
    assert rule.decide("b", 1, {"accuracy": 0.6, "gmacs": 10.0})  # second of k = 2
    assert not rule.decide("c", 1, {"accuracy": 0.4, "gmacs": 10.0})  # dominated by both: third
    assert rule.decide("d", 1, {"accuracy": 0.3, "gmacs": 1.0})  # cheap: on the front, with the larger crowding
    assert not rule.decide("e", 1, {"accuracy": 0.55, "gmacs": 10.0})  # b dominates it: behind the front of b and d
    assert rule.decide("a", 2, {"accuracy": 0.1, "gmacs": 10.0})  # past the first rung: never stopped
    assert rule.stopped == {"c": 1, "e": 1}
