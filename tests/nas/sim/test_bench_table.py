"""The shipped benchmark table (nas/sim/tables/bench.parquet): schema, runs of its plan, completeness over its
space (every architecture trained with both seeds of its plan, with its costs and latency), and the
space's stratification (docs/bench/bench-table.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nas.sim.curverecord import BENCH_SETTINGS, record_plan
from nas.sim.curvetable import CURVE_COLUMNS, CurveTable, unpack_correct
from space import spec_from_dict


@pytest.fixture(scope="module")
def plan():
    """The full recording plan of the bench space (building every architecture's check takes about a minute)."""
    return record_plan("bench", BENCH_SETTINGS, seeds=2)


@pytest.mark.slow
def test_the_shipped_table_holds_runs_of_its_plan_with_every_budget(plan):
    table = CurveTable.load("bench")
    assert list(table.rows.columns) == CURVE_COLUMNS
    assert table.manifest["settings"] == BENCH_SETTINGS.to_dict() and table.budgets == [0.5, 1.0, 2.0, 3.0, 4.0]
    jobs, digest = plan
    assert table.manifest["space_digest"] == digest
    plan = [(j.spec_key, j.seed) for j in jobs]
    done = table.done()
    assert done and done <= set(plan)
    assert all((key, 0) in done for key, seed in done if seed == 1)  # a second seed only after the first
    ok = table.ok_rows()
    assert (ok.groupby(["spec_key", "seed"]).size() == len(table.budgets)).all()
    assert ok["val_loss"].between(0, 27.7).all() and (ok["cpu_seconds"] > 0).all()  # per-clip loss <= -ln(1e-12)
    row = ok.iloc[0]
    assert unpack_correct(row["correct"], table.val_clips).mean() == row["accuracy"]
    assert table.val_clips >= 1000
    for key in table.architectures():  # every recorded spec is an architecture of the space
        assert spec_from_dict(json.loads(table.rows.loc[table.rows["spec_key"] == key, "spec"].iloc[0])).key() == key


@pytest.mark.slow
def test_the_shipped_table_covers_its_whole_space(plan):
    """Every architecture of the plan trained at every budget with seeds 0 and 1, costs and a latency for each: a
    simulated search can ask for any point of the space, and truth is a two-seed mean everywhere."""
    table = CurveTable.load("bench")
    space = {j.spec_key for j in plan[0]}
    ok = table.ok_rows()
    complete = ok.groupby(["spec_key", "seed"])["budget"].nunique() == len(table.budgets)
    complete = complete[complete]
    seeds = complete.reset_index().groupby("spec_key")["seed"].apply(set)
    assert set(seeds.index) == space, f"missing: {sorted(space - set(seeds.index))[:5]}"
    assert all(s == {0, 1} for s in seeds)
    costs = table.rows.drop_duplicates("spec_key").set_index("spec_key")
    assert costs.loc[sorted(space), ["gmacs", "params", "latency_ms", "latency_cv"]].notna().all().all()
    assert (costs["latency_ms"] > 0).all() and (costs["peak_rss_mib"] > 0).all()
    assert table.manifest["latency"]["profile"] == "cpu-quick"
    assert set(table.truth().index) == space  # truth for every architecture


@pytest.mark.slow
def test_the_bench_space_is_stratified_as_its_datasheet_says(plan):
    specs = [j.spec for j in plan[0] if j.seed == 0]
    assert 150 <= len(specs) <= 300
    resnets = [s for s in specs if s["family"] == "resnet3d"]
    mtnets = [s for s in specs if s["family"] == "mtnet"]
    assert {s["conv"] for s in resnets} == {"r3d", "r2plus1d"} and {s["depth"] for s in resnets} == {18, 34, 50}
    placements = {s["srtg"]["placement"] for s in resnets}
    assert placements == {"none", "start", "top", "mid", "end", "res", "final"}
    assert {s["srtg"]["recurrent"] for s in resnets} == {"lstm", "gru"}
    assert {s["srtg"]["gate"] for s in resnets} == {"inactive", "cyclic"}
    assert {s["depth"] for s in mtnets} == {32, 48, 64} and len({s["ratio"] for s in mtnets}) == 4
    assert {s["substreams"] for s in mtnets} == {1, 4, 8} and {s["recurrent"] for s in mtnets} == {"gru", "none"}


def test_the_shipped_table_spans_the_costs():
    table = CurveTable.load("bench")
    gmacs = table.rows.drop_duplicates("spec_key")["gmacs"].to_numpy()
    assert np.all(gmacs > 0)
    assert np.all(gmacs > 0) and gmacs.max() / gmacs.min() >= 20
    assert set(table.rows["family"]) == {"resnet3d", "mtnet"}
