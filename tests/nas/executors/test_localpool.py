"""The local executor: the same trials as Ray Tune, without Ray (nas/executors/localpool.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from nas.config import SearchConfig
from nas.executors.localpool import plan_leases
from nas.search import run_search
from tests.nas.search_helpers import tiny_config


def _trials(run_dir) -> pd.DataFrame:
    frame = pd.read_parquet(run_dir / "trials.parquet")
    return frame.sort_values("trial_id")[["trial_id", "spec_key", "status", "accuracy", "fidelity"]].reset_index(drop=True)


@pytest.mark.slow
def test_one_worker_same_seed_gives_the_same_trials_as_ray(tmp_path, ray_address):
    """Architectures, statuses, accuracies and fidelities agree trial for trial (MO-ASHA stops some)."""
    settings = dict(trials=5, scheduler="moasha", proxy_epochs=3, max_concurrent=1, sampler="random")
    for folder in ("ray", "local"):
        (tmp_path / folder).mkdir()
    on_ray = run_search(tiny_config(tmp_path / "ray", address=ray_address, **settings), show_progress=False)
    local = run_search(tiny_config(tmp_path / "local", executor="local", **settings), show_progress=False)
    ray_trials, local_trials = _trials(on_ray.run_dir), _trials(local.run_dir)
    assert len(ray_trials) >= 5
    pd.testing.assert_frame_equal(ray_trials, local_trials)
    assert not (local.run_dir / "ray").exists()  # no Ray state: nothing of Ray ran


@pytest.mark.slow
def test_a_recording_on_the_local_executor_equals_one_on_ray(tmp_path, ray_address):
    from nas.sim.record import record_table
    from nas.sim.table import read_table

    config = tiny_config(tmp_path, trials=6, proxy_epochs=2)
    on_ray = record_table(config=config.replace(address=ray_address), out_dir=tmp_path / "ray", seeds=1, show_progress=False)
    local = record_table(config=config.replace(executor="local"), out_dir=tmp_path / "local", seeds=1,
                         show_progress=False)
    columns = ["spec_key", "seed", "trial_seed", "epoch", "accuracy", "loss", "error"]
    a = read_table(on_ray.table_path).rows.sort_values(["spec_key", "epoch"])[columns].reset_index(drop=True)
    b = read_table(local.table_path).rows.sort_values(["spec_key", "epoch"])[columns].reset_index(drop=True)
    assert len(a) == 6 * 2
    pd.testing.assert_frame_equal(a, b)


def test_leases_keep_off_the_measurer_and_fit_the_machine(monkeypatch):
    monkeypatch.setattr("nas.executors.localpool.available_cores", lambda: list(range(8)))
    config = SearchConfig.from_flags(cpus_per_trial=2.0, objectives=("accuracy", "gmacs"))
    leases = plan_leases(config, gpus=0, reserved=(7,))
    assert [lease.cores for lease in leases] == [(0, 1), (2, 3), (4, 5)]
    capped = plan_leases(config.replace(max_concurrent=2), gpus=0, reserved=())
    assert len(capped) == 2 and all(lease.device is None for lease in capped)
    gpu = plan_leases(config.replace(gpus_per_trial=0.5), gpus=2, reserved=())
    assert [lease.device for lease in gpu] == [0, 1, 0, 1]
    with pytest.raises(Exception, match="no CUDA device"):
        plan_leases(config.replace(gpus_per_trial=1.0), gpus=0, reserved=())
