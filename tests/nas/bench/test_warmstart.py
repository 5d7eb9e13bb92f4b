"""``nas bench warm-start`` (nas/bench/warmstart.py): cold and warm-started searches simulated side by side."""

from __future__ import annotations

import json

from nas.bench import run_benchmark


def test_the_quick_benchmark_compares_cold_and_warm_runs_on_the_same_target(tmp_path):
    headline = run_benchmark("warm-start", tmp_path, quick=True)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["seeds"] == 2 and all(min(run["known"].values()) > 0 for run in results["runs"])
    summary = results["summary"]
    # a warm run's front holds its source's results from time 0: it ends at least where its source ended
    for kind in ("whole", "short"):
        for run, final in zip(results["runs"], summary[kind]["final_hv"]):
            assert final >= run["source_final"][kind] - 1e-12
    assert headline["target_hv"] == results["target_hv"] > 0
    report = (tmp_path / "report.md").read_text()
    for label in ("cold start", "warm start from a whole run", "warm start from a run of 1/3 budget"):
        assert f"| {label} |" in report
