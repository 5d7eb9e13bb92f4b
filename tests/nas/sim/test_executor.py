"""The simulated executor over recorded tables: hand-made ones (exact expectations) and the shipped small one.

No Ray anywhere: the simulator drives the Ray-free search core over an in-memory Optuna study.
"""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pandas as pd
import pytest

from nas.config import SearchConfig
from nas.core.rungs import rung_decision
from nas.sim.replay import Overheads, simulate
from nas.sim.table import TABLE_VERSION, Table, read_table, recorded_settings, space_digest, table_frame, write_table
from space.errors import UserInputError
from space.searchspace import load_space, parse_space
from tests.nas.search_helpers import TINY_SPACE, write_tiny_space

SMALL_TABLE = "nas/sim/tables/small.parquet"
BOUNDS = {"accuracy": (0.0, 1.0), "gmacs": (0.0, 60.0), "latency": (0.0, 1e4)}


def hand_config(tmp_path, **overrides) -> SearchConfig:
    settings = dict(name="hand", runs_dir=str(tmp_path), space=str(write_tiny_space(tmp_path)), trials=6,
                    objectives=("accuracy", "gmacs", "latency"), sampler="random", scheduler="moasha",
                    proxy_epochs=3, grace_period=1, reduction_factor=2, seed=0, num_clips=96)
    settings.update(overrides)
    return SearchConfig.from_flags(**settings)


def hand_table(config: SearchConfig, seeds=(0,)) -> Table:
    """Every architecture of the tiny space: made-up accuracies (per epoch), GMACs, latency and epoch seconds."""
    space = load_space(config.space)
    rows = []
    for index, spec in enumerate(space.enumerate()):
        for seed in seeds:
            for epoch in range(1, config.proxy.epochs + 1):
                rows.append({
                    "spec_key": spec.key(), "spec": json.dumps(spec.to_dict()), "family": spec.family, "baseline": None,
                    "gmacs": 10.0 + 5 * ((index * 7) % 6), "params": 1_000_000 + index, "recurrent_params": 0,
                    "latency_ms": 100.0 + 37 * ((index * 5) % 6), "latency_seconds": 2.0 + index, "seed": seed,
                    "trial_seed": seed, "startup_seconds": 1.5, "error": None, "epoch": epoch,
                    "accuracy": round(0.1 + 0.05 * ((index * 3 + seed) % 6) + 0.02 * epoch, 4), "loss": 1.0,
                    "seconds": 10.0 + index + 0.25 * epoch + seed, "report_seconds": 10.0 + index,
                })
    manifest = {"version": TABLE_VERSION, "space": config.space, "space_yaml": TINY_SPACE,
                "space_digest": space_digest(s.key() for s in space.enumerate()),
                "settings": recorded_settings(config), "seeds": list(seeds)}
    return Table(table_frame(rows), manifest)


def run(config, table, **options):
    space = parse_space(table.manifest["space_yaml"])
    return simulate(config=config, table=table, space=space, bounds=BOUNDS, **options)


def statuses(outcome) -> list[tuple]:
    return [(t.number, t.user_attrs.get("status"), t.user_attrs.get("spec_key"), t.user_attrs.get("finished_at"),
             t.user_attrs.get("fidelity")) for t in outcome.study.get_trials(deepcopy=False)]


def test_fifo_with_one_worker_takes_the_sum_of_the_recorded_epoch_times(tmp_path):
    config = hand_config(tmp_path, scheduler="fifo")
    table = hand_table(config)
    outcome = run(config, table, workers=1, overheads=Overheads.none())
    assert outcome.core.counted() == 6  # every architecture once
    assert outcome.elapsed_s == pytest.approx(table.rows["seconds"].sum(), abs=1e-9)
    # with the modelled overheads: each trial adds its start-up and waits for its latency past its first epoch
    with_overheads = run(config, table, workers=1, overheads=Overheads(startup_s=1.5, latency_s={}))
    assert with_overheads.elapsed_s == pytest.approx(table.rows["seconds"].sum() + 6 * 1.5)


def test_two_workers_overlap_trials(tmp_path):
    config = hand_config(tmp_path, scheduler="fifo")
    table = hand_table(config)
    one = run(config, table, workers=1, overheads=Overheads.none())
    two = run(config, table, workers=2, overheads=Overheads.none())
    assert two.core.counted() == one.core.counted() == 6
    assert two.elapsed_s < one.elapsed_s
    assert two.elapsed_s >= table.rows["seconds"].sum() / 2 - 1e-9


def test_simulated_moasha_stops_exactly_the_trials_the_pure_rule_says(tmp_path):
    """One worker: each trial reaches rungs 1 and 2 in trial order; replay rung_decision by hand over the table."""
    config = hand_config(tmp_path, scheduler="moasha")
    table = hand_table(config)
    outcome = run(config, table, workers=1, overheads=Overheads.none())
    trained = [t for t in outcome.study.get_trials() if t.user_attrs.get("status") in ("COMPLETE", "PRUNED")]
    assert len(trained) == 6
    values = {(r.spec_key, r.epoch): [r.accuracy, r.gmacs, r.latency_ms] for r in table.rows.itertuples()}
    modes = ("max", "min", "min")
    rungs: dict[int, list] = {1: [], 2: []}
    expected = {}
    for trial in sorted(trained, key=lambda t: t.number):
        key = trial.user_attrs["spec_key"]
        reached = 3
        for level in (1, 2):
            keep = rung_decision(rungs[level], values[(key, level)], 2, modes)
            rungs[level].append(values[(key, level)])
            if not keep:
                reached = level
                break
        expected[trial.number] = reached
    got = {t.number: t.user_attrs["fidelity"] for t in trained}
    assert got == expected
    assert any(f < 3 for f in got.values()) and any(f == 3 for f in got.values())  # the rule did stop some
    for trial in trained:
        assert trial.user_attrs["status"] == ("COMPLETE" if expected[trial.number] == 3 else "PRUNED")


@pytest.mark.slow
def test_a_simulation_is_deterministic_for_a_seed():
    table = read_table(SMALL_TABLE)
    from nas.bench.search import bench_config

    config = bench_config(table.manifest, trials=8).replace(sampler="tpe", scheduler="moasha", time_budget_s=300)
    first = statuses(run(config, table, workers=2))
    again = statuses(run(config, table, workers=2))
    assert first == again and len(first) >= 3
    other = statuses(run(config.replace(seed=1), table, workers=2))
    assert other != first


def test_the_time_budget_ends_the_search_at_the_next_rung(tmp_path):
    """The first trial ends inside the budget; the second reaches rung 1 past it and is stopped there. With Ray's
    one trial suggested ahead (the default), that third trial was already suggested: it too trains to rung 1."""
    config = hand_config(tmp_path, scheduler="fifo")
    table = hand_table(config)
    unlimited = run(config, table, workers=1, overheads=Overheads.none(), pending=0)
    first_end = min(t.user_attrs["finished_at"] for t in unlimited.study.get_trials() if t.user_attrs.get("fidelity"))
    config = config.replace(time_budget_s=first_end + 1.0)
    for pending, expected in ((0, [("COMPLETE", 3), ("PRUNED", 1)]), (1, [("COMPLETE", 3), ("PRUNED", 1), ("PRUNED", 1)])):
        outcome = run(config, table, workers=1, overheads=Overheads.none(), pending=pending)
        rows = [t.user_attrs for t in outcome.study.get_trials() if t.user_attrs.get("status") in ("COMPLETE", "PRUNED")]
        assert [(r["status"], r["fidelity"]) for r in rows] == expected
        assert rows[0]["finished_at"] < config.time_budget_s < rows[1]["finished_at"] <= rows[-1]["finished_at"] == outcome.elapsed_s
        assert outcome.core.counted() == len(expected)


def test_a_recorded_failure_is_told_fail_and_counted(tmp_path):
    config = hand_config(tmp_path, scheduler="fifo")
    table = hand_table(config)
    rows = table.rows
    victim = rows["spec_key"].iloc[0]
    failed = rows[rows["spec_key"] != victim].to_dict("records")
    failed.append({**rows[rows["spec_key"] == victim].iloc[0].to_dict(), "epoch": 0, "error": "ValueError: NaN loss"})
    outcome = run(config, Table(table_frame(failed), table.manifest), workers=1, overheads=Overheads.none())
    fails = [t for t in outcome.study.get_trials() if t.user_attrs.get("status") == "FAIL"]
    assert len(fails) == 1 and fails[0].user_attrs["spec_key"] == victim and fails[0].user_attrs["counted"]
    assert "NaN loss" in fails[0].user_attrs["error"]


@pytest.mark.parametrize("change, needle", [
    ({"proxy_epochs": 2}, "recorded with other settings: proxy_epochs 3 != 2"),
    ({"num_clips": 120}, "num_clips 96 != 120"),
])
def test_a_table_with_other_settings_is_refused(tmp_path, change, needle):
    config = hand_config(tmp_path)
    table = hand_table(config)
    with pytest.raises(UserInputError, match=needle):
        run(config.replace(**change), table, workers=1)


def test_a_table_of_another_space_or_version_is_refused(tmp_path):
    config = hand_config(tmp_path)
    table = hand_table(config)
    other_space = load_space("demo")
    with pytest.raises(UserInputError, match="recorded for space"):
        simulate(config=config, table=table, space=other_space, bounds=BOUNDS)
    old = Table(table.rows, {**table.manifest, "version": TABLE_VERSION + 1})
    with pytest.raises(UserInputError, match="table version"):
        run(config, old, workers=1)


def test_a_table_round_trips_through_parquet(tmp_path):
    config = hand_config(tmp_path)
    table = hand_table(config, seeds=(0, 1))
    write_table(tmp_path / "t" / "table.parquet", table)
    back = read_table(tmp_path / "t")
    assert back.manifest == table.manifest
    assert back.rows.equals(table.rows)
    assert back.seeds == [0, 1] and len(back.done()) == 12


def test_the_shipped_small_table_is_complete():
    table = read_table(SMALL_TABLE)
    space = parse_space(table.manifest["space_yaml"])
    assert table.manifest["space_digest"] == space_digest(s.key() for s in space.enumerate())
    assert len(table.done()) == space.size() * len(table.seeds) and len(table.seeds) >= 2
    assert (table.rows["seconds"] > 0).all() and table.rows["accuracy"].between(0, 1).all()


@pytest.mark.slow
def test_the_simulator_imports_no_ray():
    code = ("import sys, nas.sim.replay, nas.sim.compare, nas.sim.table; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("column, value", [("seconds", float("nan")), ("seconds", float("inf")), ("accuracy", 1.5)])
def test_a_table_with_impossible_numbers_is_refused(tmp_path, column, value):
    config = hand_config(tmp_path)
    table = hand_table(config)
    rows = table.rows.copy()
    rows.loc[3, column] = value
    write_table(tmp_path / "bad.parquet", Table(rows, table.manifest))
    with pytest.raises(UserInputError, match=f"column {column} holds"):
        read_table(tmp_path / "bad.parquet")


def test_a_table_with_a_repeated_row_is_refused(tmp_path):
    config = hand_config(tmp_path)
    table = hand_table(config)
    rows = pd.concat([table.rows, table.rows.iloc[[0]]], ignore_index=True)
    write_table(tmp_path / "twice.parquet", Table(rows, table.manifest))
    with pytest.raises(UserInputError, match="recorded twice"):
        read_table(tmp_path / "twice.parquet")


@pytest.mark.slow
def test_parallel_simulations_give_the_same_runs():
    from nas.bench.search import bench_config
    from nas.sim.compare import run_strategies, table_bounds

    table = read_table(SMALL_TABLE)
    config = bench_config(table.manifest, trials=8).replace(max_resamples=5)
    options = dict(config=config, table=table, space=parse_space(table.manifest["space_yaml"]), seeds=2, workers=1,
                   budget_s=150.0, bounds=table_bounds(table, config.problem.objectives), strategies=[("tpe", "moasha")])
    one = run_strategies(**options)
    two = run_strategies(**options, processes=2)
    assert [(r.seed, r.trained, r.elapsed_s) for r in one] == [(r.seed, r.trained, r.elapsed_s) for r in two]
    assert all(a.frame[["status", "spec_key", "finished_at"]].equals(b.frame[["status", "spec_key", "finished_at"]])
               for a, b in zip(one, two))


def test_nsga2_crosses_over_every_parameter_of_the_conditional_space():
    """NSGA-II breeds only the parameters every trial carries; sampled conditionally that was ``family`` alone,
    and with one gene its mutation rate (1 / genes) dropped it too, so NSGA-II proposed exactly what random
    search proposes with the same seed. Asked flat, each child inherits architecture genes from its parents."""
    table = read_table("nas/sim/tables/demo.parquet")
    space = parse_space(table.manifest["space_yaml"])
    from nas.bench.search import bench_config

    config = bench_config(table.manifest, trials=36).replace(scheduler="fifo", time_budget_s=None)
    nsga2 = run(config.replace(sampler="nsga2"), table)
    random_search = run(config.replace(sampler="random"), table)
    trials = nsga2.study.get_trials(deepcopy=False)
    generations = [t.system_attrs.get("NSGAIISampler:generation") for t in trials]
    assert max(generations) >= 2  # population 9 of 36 trials: later generations are bred
    bred = optuna.search_space.IntersectionSearchSpace().calculate(nsga2.study)
    assert set(bred) == {d.name for d in space.parameters()}  # every gene is crossed over, not only family
    keys = [t.user_attrs.get("spec_key") for t in trials]
    assert keys != [t.user_attrs.get("spec_key") for t in random_search.study.get_trials(deepcopy=False)]
