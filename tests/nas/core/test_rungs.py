"""The pure rung rules (nas.core.rungs), without Ray."""

from __future__ import annotations

import pytest

from nas.core.rungs import AshaRule, FifoRule, MoashaRule, asha_decision, rung_levels


def test_asha_keeps_the_top_share_by_percentile():
    assert asha_decision([], 0.1, 3)  # first at a rung
    assert not asha_decision([0.5], 0.4, 3)
    assert asha_decision([0.5, 0.1], 0.4, 3)  # above the 66.7th percentile of {0.1, 0.5} = 0.367


@pytest.mark.parametrize("rule", [
    FifoRule(rungs=rung_levels(1, 2, 4), max_t=4),
    AshaRule("accuracy", "max", rungs=rung_levels(1, 2, 4), max_t=4, eta=2),
    MoashaRule([("accuracy", "max")], rungs=rung_levels(1, 2, 4), max_t=4, eta=2),
])
def test_every_rule_lets_a_trial_finish_its_budget_and_exempts_baselines(rule):
    rule.decide("a", 1, {"accuracy": 0.9})
    rule.stop_at_next_rung()
    assert rule.decide("base", 1, {"accuracy": 0.0}, exempt=True)
    assert rule.decide("a", 4, {"accuracy": 0.0})  # at max_t: never stopped
    assert not rule.decide("b", 2, {"accuracy": 0.9})  # the time budget: stopped at its next rung
    assert rule.stopped == {"b": 2}
