"""``nas bench search --quick``: a complete report whose numbers agree with its own simulated trials."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pandas as pd
import pytest

from nas.bench.peers import SCHEDULERS as PEER_SCHEDULERS, peers_installed
from nas.bench.search import QUICK_SKIPS
from nas.pareto import hypervolume
from nas.sim.compare import SAMPLERS, SCHEDULERS, mean_accuracy
from nas.sim.table import Table, read_table, write_table
from reports.html import figure_specs
from tests.nas.cli_helpers import assert_one_line_error, run_nas

SMALL_TABLE = "nas/sim/tables/small.parquet"


@pytest.mark.slow
def test_quick_writes_a_report_that_agrees_with_its_trials(tmp_path):
    out = tmp_path / "bench"
    result = run_nas("bench", "search", "--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    trials = pd.read_parquet(out / "trials.parquet")
    table = read_table(SMALL_TABLE)
    means = mean_accuracy(table)
    peers = len(PEER_SCHEDULERS) if peers_installed() else 0  # Syne Tune's own, when installed (nas/bench/peers.py)
    quick = [(a, b) for a in SAMPLERS for b in SCHEDULERS if a not in QUICK_SKIPS]  # --quick leaves GP out
    assert [(s["sampler"], s["scheduler"]) for s in results["strategies"]][:len(quick)] == quick
    assert len(results["strategies"]) == len(quick) + peers == 15 + peers
    assert f"- {results['peers']}" in (out / "report.md").read_text()
    objectives = results["objectives"]
    assert objectives == ["accuracy", "gmacs", "latency"]
    (alo, ahi), (glo, ghi), (llo, lhi) = (results["bounds"][o] for o in objectives)
    for strategy in results["strategies"]:
        finals, trained = [], []
        for seed in strategy["seeds"]:
            rows = trials[(trials["sampler"] == strategy["sampler"]) & (trials["scheduler"] == strategy["scheduler"])
                          & (trials["seed"] == seed)]
            assert not rows.empty
            done = rows[(rows["status"] == "COMPLETE") & rows["feasible"]
                        & (rows["finished_at"] <= results["budget_s"] + 1e-9)]
            points = np.column_stack([(ahi - done["spec_key"].map(means)) / (ahi - alo),
                                      (done["gmacs"] - glo) / (ghi - glo), (done["latency_ms"] - llo) / (lhi - llo)])
            finals.append(hypervolume(points, [1.0, 1.0, 1.0]) if len(points) else 0.0)
            trained.append(int(rows["status"].isin(["COMPLETE", "PRUNED", "FAIL"]).sum()))
        assert strategy["final_hv"] == pytest.approx(finals, abs=1e-9)
        assert strategy["final_hv_median"] == pytest.approx(statistics.median(finals))
        assert strategy["trained"] == trained
        assert strategy["final_hv_median"] <= results["best_hv"] + 1e-9  # the regret is exact: never negative
        assert strategy["curve_median"][-1] == pytest.approx(statistics.median(finals))
    random_fifo = next(s for s in results["strategies"] if (s["sampler"], s["scheduler"]) == ("random", "fifo"))
    assert results["target_hv"] == pytest.approx(random_fifo["final_hv_median"])
    front = results["best_front"]  # the architectures at truth whose hypervolume is the best achievable
    costs = np.array([[(ahi - p["accuracy"]) / (ahi - alo), (p["gmacs"] - glo) / (ghi - glo),
                       (p["latency"] - llo) / (lhi - llo)] for p in front])
    assert front and hypervolume(costs, [1.0, 1.0, 1.0]) == pytest.approx(results["best_hv"])
    assert all(p["accuracy"] == pytest.approx(means[p["spec_key"]]) for p in front)
    archs = table.trials().drop_duplicates("spec_key")
    archs = archs[archs["baseline"].isna()]
    accuracy = archs["spec_key"].map(means)
    for p in front:  # no architecture of the table is at least as good everywhere and better somewhere
        weakly = (accuracy >= p["accuracy"]) & (archs["gmacs"] <= p["gmacs"]) & (archs["latency_ms"] <= p["latency"])
        strictly = (accuracy > p["accuracy"]) | (archs["gmacs"] < p["gmacs"]) | (archs["latency_ms"] < p["latency"])
        assert not (weakly & strictly).any(), p["label"]
    markdown = (out / "report.md").read_text()
    assert f"The best achievable front (every architecture at truth): {len(front)} architectures" in markdown
    for strategy in results["strategies"]:
        assert f"| {strategy['sampler']} + {strategy['scheduler']} | {round(strategy['final_hv_median'], 4)} |" in markdown
    page = (out / "report.html").read_text()
    specs = figure_specs(page)
    assert {"hv-all", "hv-random", "hv-tpe", "hv-nsga2"} <= set(specs) and "hv-gp" not in specs
    layout = specs["hv-all"]["layout"]
    assert layout["xaxis"]["title"]["text"] == "simulated wall-clock (s)"
    assert "hypervolume" in layout["yaxis"]["title"]["text"]


@pytest.mark.slow
def test_a_table_of_another_version_is_refused_with_one_error_line(tmp_path):
    table = read_table(SMALL_TABLE)
    bad = tmp_path / "old" / "table.parquet"
    write_table(bad, Table(table.rows, {**table.manifest, "version": 0}))
    result = run_nas("bench", "search", "--table", str(bad), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "table version 0")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_bench_search_refuses_an_option_it_does_not_take(tmp_path):
    result = run_nas("bench", "costs", "--table", SMALL_TABLE, "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "takes no --table")


@pytest.mark.slow
def test_strategies_picks_what_runs_and_always_keeps_the_yardstick(tmp_path):
    out = tmp_path / "bench"
    result = run_nas("bench", "search", "--quick", "--strategies", "tpe+costaware,tpe+costaware", "--out", str(out))
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert [(s["sampler"], s["scheduler"]) for s in results["strategies"]] == [("random", "fifo"), ("tpe", "costaware")]
    trials = pd.read_parquet(out / "trials.parquet")
    assert set(zip(trials["sampler"], trials["scheduler"])) == {("random", "fifo"), ("tpe", "costaware")}
    assert results["target_hv"] == pytest.approx(results["strategies"][0]["final_hv_median"])


@pytest.mark.parametrize("given, said", [("tpe+nope", "'tpe+nope'"), ("", "empty list"), ("tpe + fifo", "'tpe + fifo'")])
def test_an_unknown_strategy_is_one_error_line_before_anything_runs(tmp_path, given, said):
    out = tmp_path / "out"
    result = run_nas("bench", "search", "--quick", "--strategies", given, "--out", str(out))
    assert_one_line_error(result, said)
    assert "allowed: a comma-separated list of random+fifo" in result.stderr and not out.exists()


def test_the_report_names_the_machine_a_benchmark_table_was_recorded_on(tmp_path):
    """A curve table (``nas bench curves``) stores its machine as ``machine``, a search table as ``hardware``."""
    from nas.sim.shipped import load_table

    machine = load_table("bench", quick=False)[1].manifest["machine"]
    out = tmp_path / "bench"
    result = run_nas("bench", "search", "--table", "bench", "--seeds", "1", "--strategies", "tpe+fifo", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"Recorded on {machine['cpu']} ({machine['cpu_count']} cores)." in (out / "report.md").read_text()
