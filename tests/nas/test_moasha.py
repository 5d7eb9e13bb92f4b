"""MO-ASHA: the rung rule against hand computations, and a real Ray Tune run that stops a trial."""

from __future__ import annotations

import math

import pytest

from nas.moasha import (
    MOASHAScheduler,
    StoppingASHAScheduler,
    StoppingFIFOScheduler,
    make_scheduler,
    rung_decision,
    rung_levels,
)
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
    # With eta = 2 and n = 2 there are ceil(2/2) = 1 places: still only the earlier one.
    assert not rung_decision([[0.5, 2.0]], [0.5, 2.0], eta=2, modes=ACC_GMACS)


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
    # eta = 4: ceil(4/4) = 1 place, taken by p1 (inf, earlier) -> the same newcomer stops.
    assert not rung_decision(recorded, [0.95, 10.0], eta=4, modes=ACC_GMACS)


def test_share_kept_tends_to_one_over_eta():
    # A single objective turns the rule into plain ASHA: with results arriving worst first every
    # newcomer is the best so far and continues; arriving best first, newcomer k (1-based) is k-th of k
    # and continues iff k - 1 < k / eta, i.e. only for k = 1 when eta = 3.
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
    # eta = 1.5, n = 3: ceil(2) = 2 places. (0.2, 8) dominates (0.1, 9); a NaN newcomer is dominated by both
    # (3rd of 3) -> stops; the same newcomer with a real accuracy of 0.3 would be 1st.
    recorded = [[0.1, 9.0], [0.2, 8.0]]
    assert not rung_decision(recorded, [math.nan, 9.0], eta=1.5, modes=ACC_GMACS)
    assert rung_decision(recorded, [0.3, 9.0], eta=1.5, modes=ACC_GMACS)


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
    scheduler = MOASHAScheduler([("accuracy", "max"), ("gmacs", "min")], grace_period=1, eta=3, max_t=9)
    assert scheduler.rungs == (1, 3)
    assert scheduler.record("a", 1, [0.5, 2.0]) is True  # first at rung 1
    assert scheduler.record("a", 2, [0.6, 2.0]) is None  # between rungs: no decision
    assert scheduler.record("b", 1, [0.4, 3.0]) is False  # dominated by a, 2nd of 2
    assert scheduler.record("a", 3, [0.7, 2.0]) is True  # first at rung 3
    assert scheduler.record("a", 3, [0.7, 2.0]) is None  # already ranked there
    assert scheduler.recorded == {1: {"a": [0.5, 2.0], "b": [0.4, 3.0]}, 3: {"a": [0.7, 2.0]}}
    # a trial that skipped rung 1 and first reports at 4 is ranked at rung 3 only
    assert scheduler.record("c", 4, [0.9, 1.0]) is True
    assert "c" not in scheduler.recorded[1]


def test_make_scheduler_kinds_and_errors():
    objectives = [("accuracy", "max"), ("gmacs", "min"), ("latency_ms", "min")]
    assert isinstance(make_scheduler("moasha", objectives, 1, 3, 9), MOASHAScheduler)
    asha = make_scheduler("asha", objectives, 1, 3, 9)
    assert isinstance(asha, StoppingASHAScheduler) and asha.metric == "accuracy"
    assert isinstance(make_scheduler("fifo", objectives, 1, 3, 9), StoppingFIFOScheduler)
    with pytest.raises(UserInputError, match="allowed: moasha, asha, fifo"):
        make_scheduler("hyperband", objectives, 1, 3, 9)
    with pytest.raises(UserInputError, match="eta"):
        make_scheduler("moasha", objectives, 1, 1, 9)
    with pytest.raises(UserInputError, match="grace period"):
        make_scheduler("moasha", objectives, 4, 3, 2)
    with pytest.raises(UserInputError, match="accuracy"):
        make_scheduler("asha", [("gmacs", "min"), ("params", "min")], 1, 3, 9)


def test_set_search_properties_accepts_only_our_objectives():
    scheduler = MOASHAScheduler([("accuracy", "max"), ("gmacs", "min")], max_t=9)
    assert scheduler.set_search_properties(None, None)
    assert scheduler.set_search_properties("accuracy", "max")
    assert not scheduler.set_search_properties("loss", "min")


# ---- a real Ray Tune run ------------------------------------------------------------------------


def _trainable(config):
    from ray import tune

    for epoch in range(1, 10):
        tune.report({"accuracy": config["quality"] * epoch / 9, "gmacs": config["gmacs"]})


def _run(scheduler, trials, tmp_path):
    from ray import tune

    tuner = tune.Tuner(
        _trainable,
        param_space={"case": tune.grid_search(trials), "quality": tune.sample_from(lambda s: s.config.case[0]),
                     "gmacs": tune.sample_from(lambda s: s.config.case[1])},
        tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="moasha", verbose=0),
    )
    grid = tuner.fit()
    return {tuple(r.config["case"]): r for r in grid}


@pytest.mark.slow
def test_ray_run_stops_a_dominated_trial(ray_address, tmp_path):
    scheduler = make_scheduler("moasha", [("accuracy", "max"), ("gmacs", "min")], grace_period=1, eta=3, max_t=9)
    # One at a time, in grid order, (accuracy at epoch e = quality * e / 9, gmacs):
    # rung 1: A=(1/9, 4) first -> continues. B=(0.5/9, 8) dominated by A, 2nd of 2 (1 place) -> stopped.
    #   C=(0.9/9, 1): fronts [A, C], [B]; A and C both inf-crowded, A earlier -> C 2nd of 3 (1 place) -> stopped.
    #   D=(2/9, 0.5) dominates everyone -> 1st of 4 -> continues.
    # rung 3: A first -> continues; D dominates A -> 1st of 2 -> continues. Both run to max_t = 9.
    results = _run(scheduler, [[1.0, 4.0], [0.5, 8.0], [0.9, 1.0], [2.0, 0.5]], tmp_path)
    epochs = {case: r.metrics["training_iteration"] for case, r in results.items()}
    assert epochs == {(1.0, 4.0): 9, (0.5, 8.0): 1, (0.9, 1.0): 1, (2.0, 0.5): 9}
    trial_ids = {case: r.metrics["trial_id"] for case, r in results.items()}
    assert scheduler.stopped == {trial_ids[(0.5, 8.0)]: 1, trial_ids[(0.9, 1.0)]: 1}
    assert set(scheduler.recorded[1]) == set(trial_ids.values())
    assert set(scheduler.recorded[3]) == {trial_ids[(1.0, 4.0)], trial_ids[(2.0, 0.5)]}


@pytest.mark.slow
def test_ray_fifo_stops_everyone_at_the_next_rung_after_the_budget(ray_address, tmp_path):
    scheduler = make_scheduler("fifo", [("accuracy", "max")], grace_period=1, eta=3, max_t=9)
    scheduler.stop_at_next_rung()
    results = _run(scheduler, [[1.0, 1.0], [2.0, 1.0]], tmp_path)
    assert {case: r.metrics["training_iteration"] for case, r in results.items()} == {(1.0, 1.0): 1, (2.0, 1.0): 1}
    assert sorted(scheduler.stopped.values()) == [1, 1]


@pytest.mark.slow
def test_ray_asha_wrapper_records_what_it_stopped(ray_address, tmp_path):
    scheduler = make_scheduler("asha", [("accuracy", "max"), ("gmacs", "min")], grace_period=1, eta=3, max_t=9)
    # Ray's ASHA on accuracy alone: at rung 1, B (0.5/9) is below the 66.7th percentile of {A: 1/9} -> stopped;
    # C (0.9/9) is above the 66.7th percentile of {A, B} (0.093) -> continues; at rung 3, C (2.7/9) is below
    # {A: 3/9} -> stopped there. A runs to the end.
    results = _run(scheduler, [[1.0, 9.0], [0.5, 1.0], [0.9, 1.0]], tmp_path)
    epochs = {case: r.metrics["training_iteration"] for case, r in results.items()}
    assert epochs == {(1.0, 9.0): 9, (0.5, 1.0): 1, (0.9, 1.0): 3}
    assert sorted(scheduler.stopped.values()) == [1, 3]


def test_baselines_are_never_stopped_nor_recorded():
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from nas.moasha import make_scheduler

    objectives = [("accuracy", "max"), ("gmacs", "min")]
    for name in ("moasha", "asha", "fifo"):
        scheduler = make_scheduler(name, objectives, grace_period=1, eta=2, max_t=4, time_attr="epoch")
        leader = SimpleNamespace(trial_id="a", config={"baseline": None})
        baseline = SimpleNamespace(trial_id="b", config={"baseline": "r3d-18"})
        for trial in (leader, baseline):
            scheduler.on_trial_add(None, trial)
        assert scheduler.on_trial_result(None, leader, {"epoch": 1, "accuracy": 0.9, "gmacs": 1.0}) == "CONTINUE"
        scheduler.stop_at_next_rung()  # even the time budget does not cut a baseline short
        decision = scheduler.on_trial_result(None, baseline, {"epoch": 1, "accuracy": 0.1, "gmacs": 5.0})
        assert decision == TrialScheduler.CONTINUE, name
        assert "b" not in scheduler.stopped
        if name == "moasha":
            assert "b" not in scheduler.recorded[1]


@pytest.mark.parametrize("name", ["fifo", "asha", "moasha"])
@pytest.mark.parametrize("max_t", [4, 3, 8, 6])  # 4 and 8 are grace * eta**k (a Ray ASHA rung at max_t); 3, 6 not
def test_no_scheduler_stops_a_trial_at_its_full_budget(name, max_t):
    """Issue 11.2: a trial that loses at the last report (epoch max_t) trained its full budget: never stopped.

    The leader trains first (accuracy 0.1 * epoch, 1 GMAC). The late trial is ahead at every epoch
    before the last (0.9, 0.5 GMAC: it survives every rung) and far behind at max_t (0.01, 9 GMACs). The
    time-budget hook is armed before its last report, so even "stop everyone at the next rung" must not
    cut it at max_t.
    """
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    scheduler = make_scheduler(name, [("accuracy", "max"), ("gmacs", "min")], grace_period=1, eta=2, max_t=max_t,
                               time_attr="epoch")
    leader = SimpleNamespace(trial_id="leader", config={"baseline": None})
    late = SimpleNamespace(trial_id="late", config={"baseline": None})
    for trial in (leader, late):
        scheduler.on_trial_add(None, trial)
    for epoch in range(1, max_t + 1):
        result = {"epoch": epoch, "accuracy": 0.1 * epoch, "gmacs": 1.0}
        assert scheduler.on_trial_result(None, leader, result) == TrialScheduler.CONTINUE
    for epoch in range(1, max_t):
        result = {"epoch": epoch, "accuracy": 0.9, "gmacs": 0.5}
        assert scheduler.on_trial_result(None, late, result) == TrialScheduler.CONTINUE, epoch
    scheduler.stop_at_next_rung()
    last = scheduler.on_trial_result(None, late, {"epoch": max_t, "accuracy": 0.01, "gmacs": 9.0})
    assert last == TrialScheduler.CONTINUE
    assert scheduler.stopped == {}
