"""A resumed search remembers its rungs: simulated on the shipped demo table, an interrupted and resumed search
continues and stops exactly the trials the same search run without interruption does.

The simulator always starts from a fresh in-memory study and has no resume of its own, so these tests give it
one from the outside, as ``nas search --resume`` does for Ray: the study persists in SQLite between the two
calls of :func:`~nas.sim.replay.simulate` (``optuna.create_study`` with ``load_if_exists``), and the rule of
the second call is primed with :func:`~nas.core.resume.replay_earlier_trials` (what :mod:`nas.search` does
before Ray starts). The architectures the uninterrupted search trained after the interruption point are
enqueued, in its order, into the resumed study: a resumed sampler restarts its random stream, and the point is
the rungs, not the sampler.
"""

from __future__ import annotations

import shutil

import optuna
import pytest

import nas.sim.replay
from nas.bench.search import bench_config, default_table
from nas.core.resume import replay_earlier_trials
from nas.sim.compare import table_bounds
from nas.sim.replay import Overheads, simulate
from nas.sim.table import read_table
from space.searchspace import parse_space

TRIALS = 14  # trained trials of the whole search
INTERRUPTED_AFTER = 5  # trained trials before the interruption: past the first decisions at rungs 1 and 2


def _space(table):
    return parse_space(table.manifest["space_yaml"])


@pytest.fixture(scope="module")
def demo_table():
    return read_table(default_table(quick=False))


def _config(table, scheduler: str, trials: int):
    return bench_config(table.manifest, trials=trials).replace(sampler="random", scheduler=scheduler, seed=3)


def _simulate(table, config):
    """One worker, nothing suggested ahead, every trial replaying recorded seed 0: a deterministic order."""
    return simulate(config=config, table=table, space=_space(table), workers=1, overheads=Overheads.none(),
                    table_seed=0, pending=0, bounds=table_bounds(table, config.problem.objectives))


def _trained(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") in ("COMPLETE", "PRUNED")]


def decisions(study: optuna.Study) -> list[tuple[str, str, int]]:
    """Per trained trial, in training order: architecture, COMPLETE or PRUNED, and the epoch it reached."""
    return [(t.user_attrs["spec_key"], t.user_attrs["status"], t.user_attrs["fidelity"]) for t in _trained(study)]


def _persistent_studies(monkeypatch, storage: str) -> None:
    """Every study the simulator creates lives in ``storage`` and is loaded again by the next call."""
    create = optuna.create_study

    def create_study(**kwargs):
        return create(storage=storage, load_if_exists=True, **kwargs)

    monkeypatch.setattr(optuna, "create_study", create_study)


def _replaying_rules(monkeypatch, storage: str) -> None:
    """The simulator's rule is primed with the study's finished trials, as a resumed ``nas search`` primes its own."""
    make_rule = nas.sim.replay.make_rule

    def primed(config, **options):
        rule = make_rule(config, **options)
        study = optuna.load_study(study_name=config.name, storage=storage)
        replay_earlier_trials(rule, study, max_fidelity=config.proxy.epochs)
        return rule

    monkeypatch.setattr(nas.sim.replay, "make_rule", primed)


def _interrupt(table, scheduler: str, storage: str, monkeypatch, remaining: list[dict]) -> None:
    """The first attempt: the search stops after ``INTERRUPTED_AFTER`` trained trials; then the rest is enqueued."""
    _persistent_studies(monkeypatch, storage)
    first = _simulate(table, _config(table, scheduler, INTERRUPTED_AFTER))
    for params in remaining:
        first.study.enqueue_trial(params)


def _resume(table, scheduler: str, storage: str, monkeypatch, *, replay: bool) -> list[tuple[str, str, int]]:
    with monkeypatch.context() as patch:
        _persistent_studies(patch, storage)
        if replay:
            _replaying_rules(patch, storage)
        resumed = _simulate(table, _config(table, scheduler, TRIALS))
    return decisions(resumed.study)


@pytest.mark.slow  # four simulations of the demo table: ~10 s on 2 cores
@pytest.mark.parametrize("scheduler", ["moasha", "asha"])
def test_a_resumed_simulated_search_continues_and_stops_the_trials_an_uninterrupted_one_does(
        demo_table, scheduler, tmp_path, monkeypatch):
    whole = _simulate(demo_table, _config(demo_table, scheduler, TRIALS))
    expected = decisions(whole.study)
    assert len(expected) == TRIALS
    before, after = expected[:INTERRUPTED_AFTER], expected[INTERRUPTED_AFTER:]
    assert any(status == "PRUNED" for _, status, _ in before)  # interrupted after the first rung decisions
    remaining = [t.params for t in _trained(whole.study)[INTERRUPTED_AFTER:]]

    storage = f"sqlite:///{tmp_path / 'resumed.db'}"
    with monkeypatch.context() as patch:
        _interrupt(demo_table, scheduler, storage, patch, remaining)
    shutil.copy(tmp_path / "resumed.db", tmp_path / "forgetful.db")

    assert _resume(demo_table, scheduler, storage, monkeypatch, replay=True) == expected

    # the defect this guards against: the same resume with empty rungs keeps trials the whole search stopped
    forgetful = _resume(demo_table, scheduler, f"sqlite:///{tmp_path / 'forgetful.db'}", monkeypatch, replay=False)
    assert forgetful[:INTERRUPTED_AFTER] == before
    assert forgetful[INTERRUPTED_AFTER:] != after


def test_the_replay_restores_the_rungs_and_the_stopped_trials(demo_table):
    """What the replay puts into a fresh rule is what the uninterrupted search's rule held at its end."""
    config = _config(demo_table, "moasha", TRIALS)
    whole = _simulate(demo_table, config)
    fresh = nas.sim.replay.make_rule(config, val_clips=420)
    assert replay_earlier_trials(fresh, whole.study, max_fidelity=config.proxy.epochs) == TRIALS
    number = {trial_id: int(trial_id.rsplit("-", 1)[1]) for trial_id in fresh.stopped}
    for level in whole.rule.rungs:
        assert sorted(map(sorted, whole.rule.recorded[level].values())) == \
            sorted(map(sorted, fresh.recorded[level].values()))
    assert sorted(whole.rule.stopped.values()) == sorted(fresh.stopped.values())
    assert all(whole.study.trials[n].user_attrs["status"] == "PRUNED" for n in number.values())


def test_a_fresh_study_replays_nothing():
    from nas.core.rungs import FifoRule

    rule = FifoRule(rungs=(1, 2), max_t=3)
    assert replay_earlier_trials(rule, optuna.create_study(), max_fidelity=3) == 0
    assert rule.stopped == {}

