"""The fidelity helper on small data: a "real" run that is itself a simulation must show no gap at all.

The real comparison (a real demo search against the demo table) needs the full demo table; this checks the
plumbing: the run's config, seed, bounds and worker count are read back and replayed exactly.
"""

from __future__ import annotations

import json

import pytest

from nas.bench.search import bench_config
from nas.trialsfile import trials_frame
from nas.runmodel import RunDir
from nas.sim.compare import table_bounds
from nas.sim.replay import simulate
from nas.sim.fidelity import compare_run
from nas.sim.table import read_table
from reports.html import figure_specs
from space.searchspace import parse_space
from tests.nas.cli_helpers import run_nas

SMALL_TABLE = "nas/sim/tables/small.parquet"


def fake_run(tmp_path, sampler="tpe", scheduler="moasha", seed=1, workers=2):
    table = read_table(SMALL_TABLE)
    config = bench_config(table.manifest, trials=6).replace(sampler=sampler, scheduler=scheduler, seed=seed,
                                                             runs_dir=str(tmp_path), name="fake")
    bounds = table_bounds(table, config.problem.objectives)
    outcome = simulate(config=config, table=table, space=parse_space(table.manifest["space_yaml"]), workers=workers,
                       bounds=bounds, table_seed=seed)
    run = RunDir(tmp_path / "fake")
    run.path.mkdir()
    run.write_search({"config": config.to_dict(), "bounds": {k: list(v) for k, v in bounds.items()},
                      "reference_point": [1.0] * len(config.problem.objectives)})
    run.write_trials(trials_frame(config.problem, config.proxy.epochs, outcome.study, outcome.baseline_study))
    return run, table


def test_a_simulated_run_is_its_own_simulation(tmp_path):
    run, table = fake_run(tmp_path)
    fidelity = compare_run(run.path, table)
    figures = fidelity.figures
    assert figures["workers"] == 2 and figures["seed"] == 1 and figures["table_seed_replayed"]
    assert figures["final_hv_gap"] == pytest.approx(0.0, abs=1e-12) and figures["real_final_hv"] > 0
    assert figures["sim_trained"] == figures["real_trained"] == figures["same_leading_architectures"] == 6
    assert figures["same_leading_outcomes"] == figures["trials"] >= 6
    assert fidelity.real_curve == pytest.approx(fidelity.sim_curve)


@pytest.mark.slow
@pytest.mark.parametrize("table", [SMALL_TABLE, "small"])  # a file, or a shipped table's name as --help says
def test_nas_bench_fidelity_writes_both_curves_on_one_figure(tmp_path, table):
    run, _ = fake_run(tmp_path, sampler="random", scheduler="asha", seed=0, workers=1)
    out = tmp_path / "out"
    result = run_nas("bench", "fidelity", "--run", str(run.path), "--table", table, "--out", str(out))
    assert result.returncode == 0, result.stderr
    spec = figure_specs((out / "fidelity.html").read_text())["fidelity"]
    assert [t["meta"]["kind"] for t in spec["data"]] == ["real", "sim"]
    assert spec["layout"]["xaxis"]["title"]["text"] == "wall-clock since the first trial started (s)"
    figures = json.loads((out / "fidelity.json").read_text())["figures"]
    assert "| final hypervolume |" in (out / "fidelity.md").read_text() and figures["final_hv_gap"] == 0.0
