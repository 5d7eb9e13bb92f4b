"""Syne Tune's own MOASHA and multi-objective random searcher beside ours in ``nas bench search``
(nas/bench/peers.py; docs/simulator.md, "Syne Tune peers"). Everything runs Syne Tune for real, through its own
simulator; the tests skip only where Syne Tune (the ``synetune`` extra, alias ``peers``) is not installed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.bench.peers import MISSING, POLL_S, SAMPLER, SCHEDULERS, peer_setup, run_peer, run_peers
from nas.bench.search import BUDGET_SHARE, bench_config, full_trial_seconds, load_table, write_report
from nas.sim.compare import (Run, best_hypervolume, hv_curve, jsonable, mean_accuracy, run_strategies, runs_frame,
                             summarise, table_bounds)
from nas.sim.replay import Overheads, simulate
from nas.trialsfile import trials_frame

REPO = Path(__file__).resolve().parents[3]


def _syne_tune() -> None:
    pytest.importorskip("syne_tune")
    pytest.importorskip("fastparquet")


def _problem(name: str) -> dict:
    """What ``nas bench search`` sets up for a table: config, table, overheads, bounds and budget."""
    _, table = load_table(name, quick=False)
    architectures = table.rows.loc[table.rows["baseline"].isna(), "spec_key"].nunique()
    config = bench_config(table.manifest, trials=architectures).replace(max_resamples=5)
    overheads = Overheads.from_table(table)
    budget_s = max(3, math.ceil(BUDGET_SHARE * architectures)) * full_trial_seconds(table, overheads, config)
    return dict(config=config, table=table, overheads=overheads, budget_s=budget_s,
                bounds=table_bounds(table, config.problem.objectives))


def _final_hv(run: Run, problem: dict) -> float:
    means = mean_accuracy(problem["table"])
    return float(hv_curve(run.frame, problem["config"], problem["bounds"], np.array([problem["budget_s"]]),
                          lambda row: means[row["spec_key"]])[-1])


@pytest.mark.slow
def test_syne_tunes_moasha_and_searcher_run_on_its_simulator_and_map_to_the_tables_architectures(tmp_path):
    _syne_tune()
    from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA
    from syne_tune.optimizer.schedulers.searchers.random_searcher import MultiObjectiveRandomSearcher
    from syne_tune.optimizer.schedulers.single_fidelity_scheduler import SingleFidelityScheduler

    from nas.bench.peers import peer_scheduler

    home_before = (Path.home() / "syne-tune").exists()
    problem = _problem("small")
    config, table = problem["config"], problem["table"]
    setup = peer_setup(table, config=config, overheads=problem["overheads"], workers=1, budget_s=problem["budget_s"],
                       folder=tmp_path)
    moasha, fifo = peer_scheduler("syne-moasha", 0, setup), peer_scheduler("syne-fifo", 0, setup)
    assert isinstance(moasha, MOASHA) and moasha.metrics == ["metric_valid_error", "metric_gmacs", "metric_latency_ms"]
    assert (moasha.max_t, moasha.reduction_factor) == (config.proxy.epochs, config.scheduler.reduction_factor)
    assert [b.rungs[-1][0] for b in moasha.brackets] == [config.scheduler.grace_period]
    assert isinstance(fifo, SingleFidelityScheduler) and isinstance(fifo.searcher, MultiObjectiveRandomSearcher)
    runs = run_peers(config=config, table=table, seeds=2, workers=1, budget_s=problem["budget_s"],
                     overheads=problem["overheads"])
    assert [(r.sampler, r.scheduler, r.seed) for r in runs] == [(SAMPLER, s, seed) for s in SCHEDULERS for seed in (0, 1)]
    rows = table.rows.set_index(["spec_key", "seed", "epoch"]).sort_index()
    search_keys = set(table.rows.loc[table.rows["baseline"].isna(), "spec_key"])
    for run in runs:
        frame = run.frame
        assert run.trained == len(frame) > 0 and set(frame["spec_key"]) <= search_keys
        assert (frame["status"] == np.where(frame["fidelity"] == config.proxy.epochs, "COMPLETE", "PRUNED")).all()
        assert frame["finished_at"].is_monotonic_increasing and (frame["started_at"] < frame["finished_at"]).all()
        for trial in frame.itertuples():
            recorded = {float(rows.loc[(trial.spec_key, seed, trial.fidelity), "accuracy"]) for seed in table.seeds}
            assert trial.accuracy in recorded  # one recorded seed's accuracy at the epoch it reached
            costs = rows.loc[(trial.spec_key, table.seeds[0], 1)]
            assert (trial.gmacs, trial.latency_ms, trial.params) == (costs["gmacs"], costs["latency_ms"], costs["params"])
    again = run_peer("syne-moasha", 1, setup, tmp_path / "again")
    pd.testing.assert_frame_equal(again.frame, runs[3].frame)  # a seed's run is reproducible
    assert (tmp_path / "again" / "syne-moasha-1" / "results.csv.zip").is_file()  # Syne Tune's own files, where told
    assert (Path.home() / "syne-tune").exists() == home_before  # and not in ~/syne-tune


@pytest.mark.slow
def test_syne_tunes_fifo_given_our_runs_architectures_trains_them_alike_on_the_same_clock(tmp_path):
    """The mapping and the clock: our random + fifo run on the demo table, then Syne Tune's FIFO drawing the same
    architectures in the same order and replaying the same recorded seed: the same trials, statuses and
    hypervolume, each trial finishing within one polling step per trial of ours."""
    _syne_tune()
    problem = _problem("demo")
    config = problem["config"].replace(sampler="random", scheduler="fifo", seed=3, time_budget_s=problem["budget_s"])
    from nas.sim.compare import _parsed_space

    space = _parsed_space(problem["table"].manifest["space_yaml"], str(problem["table"].manifest["space"]))
    outcome = simulate(config=config, table=problem["table"], space=space, overheads=problem["overheads"],
                       table_seed=0, bounds=problem["bounds"])
    ours = trials_frame(config.problem, config.proxy.epochs, outcome.study, None)
    ours = ours[ours["status"] != "DUPLICATE"].sort_values("trial_id").reset_index(drop=True)
    setup = peer_setup(problem["table"], config=problem["config"], overheads=problem["overheads"], workers=1,
                       budget_s=problem["budget_s"], folder=tmp_path)
    peer = run_peer("syne-fifo", 3, setup, tmp_path / "st", order=list(ours["spec_key"]), seed_slot=0).frame
    done = peer["finished_at"] <= problem["budget_s"]
    assert done.sum() >= 10 and list(peer.loc[done, "spec_key"]) == list(ours.loc[: done.sum() - 1, "spec_key"])
    assert (peer.loc[done, "status"] == "COMPLETE").all() and (ours.loc[: done.sum() - 1, "status"] == "COMPLETE").all()
    drift = (peer.loc[done, "finished_at"] - ours.loc[: done.sum() - 1, "finished_at"]).to_numpy()
    assert (drift >= -1e-6).all() and (drift <= POLL_S * np.arange(1, done.sum() + 1) + 1e-6).all()
    assert _final_hv(Run("x", "y", 0, peer, 0, 0.0), problem) == pytest.approx(
        _final_hv(Run("x", "y", 0, ours, 0, 0.0), problem), abs=1e-12)


@pytest.mark.slow
def test_a_huge_budget_reaches_the_best_achievable_hypervolume_on_small():
    """Ten times the benchmark's budget (30 full trials for 8 architectures): the searcher has completed every
    architecture, and MOASHA (stopped ones drawn again) has too at seed 0 (not at every seed: its 0.16 rung
    decision, test below and docs/simulator.md)."""
    _syne_tune()
    problem = _problem("small")
    problem["budget_s"] *= 10
    best = best_hypervolume(problem["table"], problem["config"], problem["bounds"])
    runs = run_peers(config=problem["config"], table=problem["table"], seeds=1, workers=1,
                     budget_s=problem["budget_s"], overheads=problem["overheads"])
    for run in runs:
        assert _final_hv(run, problem) == pytest.approx(best, abs=1e-12), run.scheduler
    fifo, moasha = runs
    assert fifo.trained == 8 and moasha.trained > 8 and (moasha.frame["status"] == "PRUNED").any()


@pytest.mark.slow
def test_peers_are_summarised_with_our_target_bounds_and_valuation(tmp_path):
    """Our random + fifo and the peers through the functions ``nas bench search`` uses (summarise, write_report):
    one row per peer in results.json and report.md, the same best, target and bounds for all, each final
    hypervolume recomputable from trials.parquet."""
    _syne_tune()
    problem = _problem("small")
    common = {k: problem[k] for k in ("config", "table", "budget_s", "overheads")}
    ours = run_strategies(space=None, seeds=2, workers=1, bounds=problem["bounds"], strategies=[("random", "fifo")],
                          **common)
    runs = ours + run_peers(seeds=2, workers=1, **common)
    results = summarise(runs, config=problem["config"], table=problem["table"], bounds=problem["bounds"],
                        budget_s=problem["budget_s"])
    names = [(s["sampler"], s["scheduler"]) for s in results["strategies"]]
    assert names == [("random", "fifo")] + [(SAMPLER, s) for s in SCHEDULERS]
    assert results["target_hv"] == results["strategies"][0]["final_hv_median"]
    assert results["best_hv"] == best_hypervolume(problem["table"], problem["config"], problem["bounds"])
    frame = runs_frame(runs)
    for strategy in results["strategies"]:
        for seed, final in zip(strategy["seeds"], strategy["final_hv"]):
            mine = frame[(frame["sampler"] == strategy["sampler"]) & (frame["scheduler"] == strategy["scheduler"])
                         & (frame["seed"] == seed)]
            assert final == pytest.approx(_final_hv(Run("", "", seed, mine, 0, 0.0), problem), abs=1e-12)
        assert strategy["regret_median"] == pytest.approx(results["best_hv"] - strategy["final_hv_median"])
    note = "Syne Tune peers (a line of the report)"
    write_report(tmp_path, frame, jsonable({**results, **_report_fields(problem), "peers": note}))
    written = json.loads((tmp_path / "results.json").read_text())
    assert [(s["sampler"], s["scheduler"]) for s in written["strategies"]] == names and written["peers"] == note
    markdown = (tmp_path / "report.md").read_text()
    assert f"- {note}" in markdown
    for strategy in written["strategies"]:
        assert f"| {strategy['sampler']} + {strategy['scheduler']} | {round(strategy['final_hv_median'], 4)} |" in markdown
    stored = pd.read_parquet(tmp_path / "trials.parquet")
    assert set(stored.loc[stored["sampler"] == SAMPLER, "scheduler"]) == set(SCHEDULERS)


def _report_fields(problem: dict) -> dict:
    """The fields ``run_search_benchmark`` adds to the summary for its report."""
    table = problem["table"]
    return {"table": "small", "table_rows": len(table.rows), "architectures": 8, "table_seeds": table.seeds,
            "space": table.manifest["space"], "settings": table.manifest["settings"],
            "hardware": table.manifest.get("hardware"), "seeds": 2, "workers": 1, "budget_full_trials": 3,
            "full_trial_s": problem["budget_s"] / 3, "overheads": problem["overheads"].describe(), "wall_seconds": 1.0,
            "quick": True, "processes": 1}


def test_moasha_0_16_decides_from_the_last_item_of_its_sort_order_not_from_the_newcomers_rank():
    """What docs/simulator.md reports about Syne Tune 0.16's MOASHA (left as it is: the peers run Syne Tune's
    code unchanged). At a rung it sorts the recorded results and the newcomer (non-dominated sort), then compares
    with 1 / reduction factor the *position in arrival order of the last item of that sort*, divided by their
    number, instead of the newcomer's own place in it. A newcomer that dominates every recorded result is stopped,
    and one that is fourth of five kept. When this test fails, Syne Tune has changed the rule: update the docs."""
    _syne_tune()
    from syne_tune.optimizer.scheduler import SchedulerDecision
    from syne_tune.optimizer.schedulers.asha import Bracket
    from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import NonDominatedPriority

    def decide(recorded: list[float], newcomer: float) -> str:
        bracket = Bracket(1, 4, 2, 0, NonDominatedPriority())
        for trial_id, value in enumerate(recorded):
            bracket.on_result(trial_id, 1, {"error": value, "gmacs": value})
        return bracket.on_result(len(recorded), 1, {"error": newcomer, "gmacs": newcomer})

    assert decide([0.5, 0.6, 0.7, 0.9], 0.1) == SchedulerDecision.STOP  # the best of five, stopped
    assert decide([0.99, 0.1, 0.2, 0.3], 0.98) == SchedulerDecision.CONTINUE  # fourth of five, kept


@pytest.mark.slow
def test_without_syne_tune_the_report_says_how_to_get_the_peers():
    """Syne Tune made unimportable in a fresh interpreter: no peer runs, and the report's one line."""
    script = textwrap.dedent("""
        import sys

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "syne_tune":
                    raise ModuleNotFoundError(name)

        sys.meta_path.insert(0, Refuse())
        from nas.bench.peers import peer_runs_or_note
        print(repr(peer_runs_or_note()))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(([], MISSING))
    assert MISSING == "Syne Tune peers not run: pip install 'videonas[synetune]' (alias 'videonas[peers]')"
