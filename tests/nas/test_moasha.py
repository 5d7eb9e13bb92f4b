"""The rung rules against hand computations, the one factory, and a real Ray Tune run that stops a trial."""

from __future__ import annotations

import math

import pytest

from nas.config import SearchConfig
from nas.core.costaware import CostAwareRule
from nas.core.rungs import AshaRule, FifoRule, MoashaRule, TopKRule, rung_decision, rung_levels
from nas.core.schedulers import TOP_K, make_rule
from space.errors import UserInputError

ACC_GMACS = ["max", "min"]  # (accuracy: higher is better, gmacs: lower is better)


# ---- the pure rule ---------------------------------------------------------------------------


def test_first_result_at_a_rung_always_continues():
    assert rung_decision([], [0.0, 1e9], eta=3, modes=ACC_GMACS)


def test_fewer_results_than_eta_keep_only_the_best():
    # n = 2 < eta = 3: ceil(2/3) = 1 place. A dominating newcomer takes it, a dominated one does not.
    assert rung_decision([[0.4, 5.0]], [0.6, 3.0], eta=3, modes=ACC_GMACS)
    assert not rung_decision([[0.6, 3.0]], [0.4, 5.0], eta=3, modes=ACC_GMACS)


def test_tie_goes_to_the_earlier_arrival():
    # Equal vectors share front 0 with infinite crowding: the one recorded first ranks first.
    assert not rung_decision([[0.5, 2.0]], [0.5, 2.0], eta=3, modes=ACC_GMACS)
    # Two mutually non-dominated points (both extremes, both inf crowding): arrival decides too.
    assert not rung_decision([[0.9, 2.0]], [0.5, 1.0], eta=3, modes=ACC_GMACS)
    # With eta = 2 and n = 2 the later one is at p = 1 <= 2 / 2: Syne Tune's inclusive rule keeps both of two.
    assert rung_decision([[0.5, 2.0]], [0.5, 2.0], eta=2, modes=ACC_GMACS)


def test_front_index_ranks_first():
    # a dominates all; new dominates b and c -> fronts: [a], [new], [b], [c]; new is 2nd of 4,
    # ceil(4/3) = 2 places -> continues.
    recorded = [[0.9, 1.0], [0.5, 5.0], [0.4, 6.0]]
    assert rung_decision(recorded, [0.6, 4.0], eta=3, modes=ACC_GMACS)
    # A newcomer in the last front stops.
    assert not rung_decision(recorded, [0.3, 7.0], eta=3, modes=ACC_GMACS)


def test_crowding_distance_within_a_front_by_hand():
    # p0=(0.9, 9), p1=(0.5, 1), p2=(0.7, 4) and new=(0.6, 3) are all on front 0.
    # Extremes (inf): p0 and p1 (accuracy 0.9 / 0.5; gmacs 9 / 1).
    # p2: accuracy gap (0.9-0.6)/0.4 = 0.75, gmacs gap (9-3)/8 = 0.75 -> 1.5
    # new: accuracy gap (0.7-0.5)/0.4 = 0.5, gmacs gap (4-1)/8 = 0.375 -> 0.875
    # order p0, p1, p2, new: new is 4th of 4, ceil(4/3) = 2 places -> stops.
    recorded = [[0.9, 9.0], [0.5, 1.0], [0.7, 4.0]]
    assert not rung_decision(recorded, [0.6, 3.0], eta=3, modes=ACC_GMACS)
    # new=(0.95, 10) is an extreme in both objectives (inf), as is p1: order p1 (earlier), new, ...
    # -> 2nd of 4 -> continues (a floor rule, 1 place, would have stopped it).
    assert rung_decision(recorded, [0.95, 10.0], eta=3, modes=ACC_GMACS)
    # eta = 4: p = 1 <= 4 / 4 still continues (inclusive); at eta = 5 (1 <= 0.8 fails) it stops.
    assert rung_decision(recorded, [0.95, 10.0], eta=4, modes=ACC_GMACS)
    assert not rung_decision(recorded, [0.95, 10.0], eta=5, modes=ACC_GMACS)


def test_share_kept_tends_to_one_over_eta():
    # A single objective turns the rule into plain ASHA: with results arriving worst first every
    # newcomer is the best so far and continues; arriving best first, newcomer k (1-based) is k-th of k
    # and continues iff k - 1 <= k / eta, i.e. only for k = 1 when eta = 3.
    recorded: list[list[float]] = []
    kept = []
    for value in range(9, 0, -1):  # best (9) first
        kept.append(rung_decision(recorded, [value], eta=3, modes=["max"]))
        recorded.append([value])
    assert kept == [True] + [False] * 8
    recorded, kept = [], []
    for value in range(1, 10):  # worst first
        kept.append(rung_decision(recorded, [value], eta=3, modes=["max"]))
        recorded.append([value])
    assert all(kept)


def test_nan_counts_as_worst():
    # A recorded NaN (e.g. a diverged loss) is beaten by anything: the newcomer dominates it -> 1st of 2.
    assert rung_decision([[math.nan, 9.0]], [0.1, 9.0], eta=3, modes=ACC_GMACS)
    # eta = 2, n = 3: p <= 1.5 continues. (0.2, 8) dominates (0.1, 9); a NaN newcomer is dominated by both
    # (p = 2) -> stops; the same newcomer with a real accuracy of 0.3 would be 1st.
    recorded = [[0.1, 9.0], [0.2, 8.0]]
    assert not rung_decision(recorded, [math.nan, 9.0], eta=2, modes=ACC_GMACS)
    assert rung_decision(recorded, [0.3, 9.0], eta=2, modes=ACC_GMACS)


def test_bad_mode_and_eta_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        rung_decision([], [1.0], eta=3, modes=["maximize"])
    with pytest.raises(ValueError, match="eta"):
        rung_decision([], [1.0], eta=1, modes=["max"])


# ---- rungs and the scheduler's bookkeeping (no Ray controller needed) -------------------------


def test_rung_levels():
    assert rung_levels(1, 3, 9) == (1, 3)
    assert rung_levels(1, 3, 10) == (1, 3, 9)
    assert rung_levels(2, 2, 16) == (2, 4, 8)
    assert rung_levels(4, 3, 4) == ()


def test_record_ranks_each_trial_once_per_rung():
    rule = MoashaRule([("accuracy", "max"), ("gmacs", "min")], rungs=rung_levels(1, 3, 9), max_t=9, eta=3)
    assert rule.rungs == (1, 3)
    assert rule.record("a", 1, [0.5, 2.0]) is True  # first at rung 1
    assert rule.record("a", 2, [0.6, 2.0]) is None  # between rungs: no decision
    assert rule.record("b", 1, [0.4, 3.0]) is False  # dominated by a, 2nd of 2
    assert rule.record("a", 3, [0.7, 2.0]) is True  # first at rung 3
    assert rule.record("a", 3, [0.7, 2.0]) is None  # already ranked there
    assert rule.recorded == {1: {"a": [0.5, 2.0], "b": [0.4, 3.0]}, 3: {"a": [0.7, 2.0]}}
    # a trial that skipped rung 1 and first reports at 4 is ranked at rung 3 only
    assert rule.record("c", 4, [0.9, 1.0]) is True
    assert "c" not in rule.recorded[1]


def _config(scheduler: str, **flags) -> SearchConfig:
    settings = dict(objectives=("accuracy", "gmacs", "latency"), proxy_epochs=9, grace_period=1, reduction_factor=3)
    return SearchConfig.from_flags(scheduler=scheduler, **{**settings, **flags})


def test_one_factory_makes_every_rule_with_the_same_rungs():
    kinds = {"moasha": MoashaRule, "asha": AshaRule, "fifo": FifoRule, "costaware": CostAwareRule, "topk": TopKRule}
    for name, kind in kinds.items():
        rule = make_rule(_config(name), val_clips=420)
        assert isinstance(rule, kind) and rule.rungs == (1, 3) and rule.max_t == 9
    assert make_rule(_config("asha"), val_clips=420).metric == "accuracy"
    assert make_rule(_config("costaware"), val_clips=420).costs == ("gmacs", "latency_ms")
    assert make_rule(_config("topk"), val_clips=420).k == TOP_K
    with pytest.raises(UserInputError, match="allowed: moasha, asha, fifo, costaware, topk"):
        _config("hyperband")
    with pytest.raises(UserInputError, match="reduction-factor"):
        _config("moasha", reduction_factor=1)
    with pytest.raises(UserInputError, match="--grace-period 5 .*--proxy-epochs 2"):
        SearchConfig.from_flags(grace_period=5, proxy_epochs=2)


# ---- a real Ray Tune run ------------------------------------------------------------------------


class _RuleLoop:
    """A loop over one rule, for Tune's scheduler adapter: the trainable reports its GMACs as ``loss``."""

    def __init__(self, rule):
        self.rule = rule

    def report(self, report) -> bool:
        return self.rule.decide(report.trial_id, report.epoch, {"accuracy": report.accuracy, "gmacs": report.loss})


def _trainable(config):
    from ray import tune

    for epoch in range(1, 10):
        tune.report({"epoch": epoch, "accuracy": config["quality"] * epoch / 9, "loss": config["gmacs"], "seconds": 0.0})


def _run(rule, trials, tmp_path):
    from ray import tune

    from nas.executors.raytune import LoopScheduler

    tuner = tune.Tuner(
        _trainable,
        param_space={"case": tune.grid_search(trials), "quality": tune.sample_from(lambda s: s.config.case[0]),
                     "gmacs": tune.sample_from(lambda s: s.config.case[1])},
        tune_config=tune.TuneConfig(scheduler=LoopScheduler(_RuleLoop(rule)), max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="moasha", verbose=0),
    )
    grid = tuner.fit()
    return {tuple(r.config["case"]): r for r in grid}


@pytest.mark.slow
def test_ray_run_stops_a_dominated_trial(ray_address, tmp_path):
    rule = MoashaRule([("accuracy", "max"), ("gmacs", "min")], rungs=rung_levels(1, 3, 9), max_t=9, eta=3)
    # One at a time, in grid order, (accuracy at epoch e = quality * e / 9, gmacs):
    # rung 1: A=(1/9, 4) first -> continues. B=(0.5/9, 8) dominated by A: p = 1 > 2/3 -> stopped.
    #   C=(0.9/9, 1): fronts [A, C], [B]; A and C both inf-crowded, A earlier -> C at p = 1 <= 3/3 -> continues.
    #   D=(2/9, 0.5) dominates everyone -> p = 0 -> continues.
    # rung 3: A first -> continues; C=(2.7/9, 1) beside A=(3/9, 4), both inf-crowded, A earlier: p = 1 > 2/3 ->
    #   stopped at 3; D dominates both -> continues. A and D run to max_t = 9.
    results = _run(rule, [[1.0, 4.0], [0.5, 8.0], [0.9, 1.0], [2.0, 0.5]], tmp_path)
    epochs = {case: r.metrics["epoch"] for case, r in results.items()}
    assert epochs == {(1.0, 4.0): 9, (0.5, 8.0): 1, (0.9, 1.0): 3, (2.0, 0.5): 9}
    trial_ids = {case: r.metrics["trial_id"] for case, r in results.items()}
    assert rule.stopped == {trial_ids[(0.5, 8.0)]: 1, trial_ids[(0.9, 1.0)]: 3}
    assert set(rule.recorded[1]) == set(trial_ids.values())
    assert set(rule.recorded[3]) == {trial_ids[(1.0, 4.0)], trial_ids[(0.9, 1.0)], trial_ids[(2.0, 0.5)]}


def test_fifo_stops_everyone_at_the_next_rung_after_the_budget():
    rule = FifoRule(rungs=rung_levels(1, 3, 9), max_t=9)
    rule.stop_at_next_rung()
    assert not rule.decide("a", 1, {"accuracy": 0.5}) and not rule.decide("b", 1, {"accuracy": 0.9})
    assert sorted(rule.stopped.values()) == [1, 1]


def test_asha_stops_what_rays_asha_would():
    rule = AshaRule("accuracy", "max", rungs=rung_levels(1, 3, 9), max_t=9, eta=3)
    # At rung 1, B (0.5/9) is below the 66.7th percentile of {A: 1/9} -> stopped; C (0.9/9) is above the 66.7th
    # percentile of {A, B} (0.093) -> continues; at rung 3, C (2.7/9) is below {A: 3/9} -> stopped there.
    assert rule.decide("A", 1, {"accuracy": 1 / 9}) and rule.decide("A", 3, {"accuracy": 3 / 9})
    assert not rule.decide("B", 1, {"accuracy": 0.5 / 9})
    assert rule.decide("C", 1, {"accuracy": 0.9 / 9}) and not rule.decide("C", 3, {"accuracy": 2.7 / 9})
    assert sorted(rule.stopped.values()) == [1, 3]


@pytest.mark.parametrize("name", ["fifo", "asha", "moasha", "costaware"])
def test_baselines_are_never_stopped_nor_recorded(name):
    rule = make_rule(_config(name).replace(proxy_epochs=4, reduction_factor=2), val_clips=100)
    assert rule.decide("a", 1, {"accuracy": 0.9, "gmacs": 1.0, "latency_ms": 1.0})
    rule.stop_at_next_rung()  # even the time budget does not cut a baseline short
    assert rule.decide("b", 1, {"accuracy": 0.1, "gmacs": 5.0, "latency_ms": 5.0}, exempt=True)
    assert "b" not in rule.stopped
    assert all("b" not in at_rung for at_rung in getattr(rule, "recorded", {}).values())


@pytest.mark.parametrize("name", ["fifo", "asha", "moasha", "costaware"])
@pytest.mark.parametrize("max_t", [4, 3, 8, 6])  # 4 and 8 are grace * eta**k (a Ray ASHA rung at max_t); 3, 6 not
def test_no_rule_stops_a_trial_at_its_full_budget(name, max_t):
    """A trial that loses at the last report (epoch max_t) trained its full budget: never stopped.

    The leader trains first (accuracy 0.1 * epoch, 1 GMAC). The late trial is ahead at every epoch before the
    last (0.9, 0.5 GMAC: it survives every rung) and far behind at max_t (0.01, 9 GMACs). The time-budget hook
    is armed before its last report, so even "stop everyone at the next rung" must not cut it at max_t.
    """
    rule = make_rule(_config(name).replace(proxy_epochs=max_t, reduction_factor=2), val_clips=100)
    for epoch in range(1, max_t + 1):
        assert rule.decide("leader", epoch, {"accuracy": 0.1 * epoch, "gmacs": 1.0, "latency_ms": 1.0})
    for epoch in range(1, max_t):
        assert rule.decide("late", epoch, {"accuracy": 0.9, "gmacs": 0.5, "latency_ms": 0.5}), epoch
    rule.stop_at_next_rung()
    assert rule.decide("late", max_t, {"accuracy": 0.01, "gmacs": 9.0, "latency_ms": 9.0})
    assert rule.stopped == {}
