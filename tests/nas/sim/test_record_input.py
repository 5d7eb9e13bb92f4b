"""``nas bench record`` refuses bad input with one `error:` line before it creates anything (no Ray started)."""

from __future__ import annotations

import pytest

from tests.nas.cli_helpers import assert_one_line_error, run_nas


@pytest.mark.parametrize("args, needle", [
    (["record"], "needs a space"),
    (["record", "demo", "--seeds", "0"], "--seeds 0 is not allowed"),
    (["search", "--table", "no-such-table.parquet"], "no recorded table"),
    (["fidelity", "--table", "nas/sim/tables/small.parquet"], "needs --run"),
])
@pytest.mark.slow
def test_bad_input_is_one_error_line_and_nothing_is_written(tmp_path, args, needle):
    out = tmp_path / "out"
    result = run_nas("bench", *args, "--out", str(out))
    assert_one_line_error(result, needle)
    assert not out.exists()


@pytest.mark.slow
def test_the_demo_plan_records_each_architecture_once_per_seed_baselines_included():
    """The demo's r3d-18 and mtnet-32 baselines are architectures of the demo space: recorded once, found by key."""
    from nas.bench.record import record_config
    from nas.sim.record import record_plan
    from space import catalog_spec
    from space.searchspace import load_space

    config = record_config("demo", quick=False)
    jobs, unbuildable, _ = record_plan(config, seeds=2)
    pairs = [(job.spec.key(), job.seed) for job in jobs]
    assert len(pairs) == len(set(pairs))
    keys = {key for key, _ in pairs}
    assert {s.key() for s in load_space("demo").enumerate()} - set(unbuildable) <= keys
    assert all(catalog_spec(name).key() in keys for name in config.problem.baselines)
    assert [job.seed for job in jobs] == sorted(job.seed for job in jobs)  # seed-major: seed 0 complete first
