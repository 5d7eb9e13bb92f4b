"""A search driver killed with SIGKILL leaves no zombie trial (issue 17, shared storage without zombies).

Real ``nas search`` subprocesses on the session's Ray head, real Optuna storage (PostgreSQL: CI's server or a
throwaway cluster; and the run's own SQLite), real SIGKILL. After the kill, ``nas settle`` (a second process
watching the study) or ``nas search --resume`` must leave no trial RUNNING, and the resumed search must count
exactly the requested trials. The heartbeat interval is 1 s here (grace 3 s), so each wait is seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nas.heartbeat import last_beats
from nas.study import interrupted_trials
from tests.nas.cli_helpers import REPO, run_nas
from tests.nas.faults import faulty_trial
from tests.nas.search_helpers import postgres_server, tiny_config

pytestmark = pytest.mark.slow  # two real searches each


def _search_args(config, address: str) -> list[str]:
    f = config.flags()
    args = [
        "--space", f["space"], "--runs-dir", f["runs_dir"], "--name", f["name"], "--trials", str(f["trials"]),
        "--objectives", ",".join(f["objectives"]), "--sampler", f["sampler"], "--scheduler", f["scheduler"],
        "--num-clips", str(f["num_clips"]), "--proxy-epochs", str(f["proxy_epochs"]),
        "--proxy-width", str(f["proxy_width"]), "--proxy-frames", str(f["proxy_frames"]),
        "--proxy-size", str(f["proxy_size"]), "--proxy-batch-size", str(f["proxy_batch_size"]),
        "--deploy-shape", "x".join(map(str, f["deploy_shape"])), "--max-concurrent", "1",
        "--heartbeat-interval", "1", "--address", address, "--quiet", "--no-report",
    ]
    return args + (["--storage", f["storage"]] if f["storage"] else [])


def _kill_mid_trial(config, address: str) -> list[int]:
    """Start a driver, SIGKILL it once a trial finished and another is training; returns the kept trial ids."""
    run_dir = Path(config.runs_dir) / config.name
    driver = subprocess.Popen([sys.executable, "-m", "nas", "search", *_search_args(config, address)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    finished = []
    while time.time() < deadline and driver.poll() is None:
        time.sleep(0.5)
        if (run_dir / "trials.parquet").exists():
            frame = pd.read_parquet(run_dir / "trials.parquet")
            finished = frame.loc[frame["status"] == "COMPLETE", "trial_id"].tolist()
            if finished and (frame["status"] == "RUNNING").any():
                break
    assert driver.poll() is None, driver.stderr.read()
    assert finished, "no trial finished in time"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    return finished


def _running(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.RUNNING,))


def _assert_resumed_search_is_whole(study: optuna.Study, kept: list[int], interrupted: list[int], trials: int) -> None:
    assert not _running(study)
    for number in kept:  # finished trials survive, with their state
        assert study.trials[number].state == TrialState.COMPLETE
    marks = interrupted_trials(study)
    for number in interrupted:
        trial = study.trials[number]
        assert trial.state == TrialState.FAIL and not trial.user_attrs.get("counted")
        assert "interrupted" in marks[number]
    retried = [t.user_attrs["retry_of"] for t in study.trials if t.user_attrs.get("retry_of") is not None]
    training = [n for n in interrupted if "spec" in study.trials[n].user_attrs and study.trials[n].params]
    assert set(training) <= set(retried)
    assert sum(1 for t in study.trials if t.user_attrs.get("counted")) == trials


def test_a_killed_driver_on_postgres_is_settled_by_the_resume(ray_address, tmp_path):
    """Shared storage: the resume waits for the dead driver's heartbeats to go stale, then settles and re-runs."""
    with postgres_server(tmp_path) as url:
        name = f"zombie{os.getpid()}{int(time.time())}"
        config = tiny_config(tmp_path, name=name, trials=3, proxy_epochs=3, storage=url)
        try:
            kept = _kill_mid_trial(config, ray_address)
            study = optuna.load_study(study_name=name, storage=url)
            interrupted = [t.number for t in _running(study)]
            assert interrupted, "the kill should leave a RUNNING trial behind"
            beats = last_beats(study, [t._trial_id for t in study.trials])
            assert {study.trials[n]._trial_id for n in kept} <= set(beats)  # the driver beat, in PostgreSQL
            run_dir = Path(config.runs_dir) / name
            result = run_nas("search", "--resume", str(run_dir), "--address", ray_address, "--quiet", "--no-report")
            assert result.returncode == 0, result.stderr
            study = optuna.load_study(study_name=name, storage=url)
            _assert_resumed_search_is_whole(study, kept, interrupted, 3)
            for number in interrupted:  # settled by the stale-heartbeat rule, not taken from a live driver
                assert "no heartbeat for" in interrupted_trials(study)[number]
            frame = pd.read_parquet(run_dir / "trials.parquet")
            assert not (frame["status"] == "RUNNING").any()
        finally:
            for study_name in (name, name + "-baselines"):
                try:
                    optuna.delete_study(study_name=study_name, storage=url)
                except KeyError:
                    pass


def test_a_killed_driver_is_settled_by_a_watching_process_then_resumed(ray_address, tmp_path):
    """The run's own SQLite: `nas settle` (another process) settles the orphans; the resume counts right."""
    config = tiny_config(tmp_path, trials=3, proxy_epochs=3)
    run_dir = Path(config.runs_dir) / config.name
    kept = _kill_mid_trial(config, ray_address)
    storage = f"sqlite:///{run_dir / 'study.db'}"
    interrupted = [t.number for t in _running(optuna.load_study(study_name=config.name, storage=storage))]
    assert interrupted
    settled = run_nas("settle", str(run_dir), "--timeout", "60")
    assert settled.returncode == 0, settled.stderr
    assert f"settled {len(interrupted)} trial(s)" in settled.stdout and "trials.parquet rewritten" in settled.stdout
    study = optuna.load_study(study_name=config.name, storage=storage)
    assert not _running(study)
    frame = pd.read_parquet(run_dir / "trials.parquet").set_index("trial_id")
    assert (frame.loc[interrupted, "status"] == "INTERRUPTED").all()  # nas runs / nas trials see it at once
    result = run_nas("search", "--resume", str(run_dir), "--address", ray_address, "--quiet", "--no-report")
    assert result.returncode == 0, result.stderr
    _assert_resumed_search_is_whole(optuna.load_study(study_name=config.name, storage=storage), kept, interrupted, 3)


# ---- resource faults ----------------------------------------------------------------------------

FOUR_SPECS = """\
name: four
families:
  resnet3d:
    conv: [r3d, r2plus1d]
    depth: 18
    srtg:
      placement: [none, final]
      recurrent: [gru]
      gate: [inactive]
"""


def test_an_out_of_memory_trial_fails_alone_and_the_search_goes_on(ray_address, tmp_path):
    """Injected in a forward pass mid-epoch: torch.OutOfMemoryError (GPU) and MemoryError (host)."""
    from nas.search import run_search
    from space.searchspace import load_space

    space = tmp_path / "four.yaml"
    space.write_text(FOUR_SPECS)
    specs = list(load_space(str(space)).enumerate())
    oom, host_oom = specs[2], specs[3]  # with seed 0 the sampler trains these two first
    faults = {oom.key(): "oom", host_oom.key(): "host-oom"}
    config = tiny_config(tmp_path, space=str(space), trials=4, max_concurrent=1)
    outcome = run_search(config, show_progress=False, trial=faulty_trial(faults))
    frame = pd.read_parquet(outcome.run_dir / "trials.parquet")
    trained = frame[frame["status"].isin(["COMPLETE", "PRUNED", "FAIL"])].set_index("spec_key")
    assert outcome.counted == 4 and len(trained) == 4  # every architecture trained once: the search went on
    for key, kind in ((oom.key(), "OutOfMemoryError"), (host_oom.key(), "MemoryError")):
        row = trained.loc[key]
        assert row["status"] == "FAIL" and row["error"].startswith("out of memory") and kind in row["error"]
        assert "injected fault" in row["error"] and "--proxy-batch-size" in row["error"]
    others = trained.drop(index=list(faults))
    assert (others["status"] == "COMPLETE").all()
    first_oom_end = trained.loc[list(faults), "finished_at"].min()
    assert (others["started_at"] > first_oom_end).any()  # a trial trained after an out-of-memory one, same actor


@pytest.mark.parametrize("flags, needle", [
    (["--cpus-per-trial", "3"], "needs 3 CPU"),  # the session's head has 2
    (["--gpus-per-trial", "1"], "and 1 GPU"),  # and none
])
def test_a_search_asking_for_more_than_the_cluster_has_is_refused_before_starting(ray_address, tmp_path, flags, needle):
    from tests.nas.cli_helpers import assert_one_line_error

    config = tiny_config(tmp_path, trials=1)
    result = run_nas("search", *_search_args(config, ray_address), *flags)
    assert_one_line_error(result, needle, "more than the cluster has")
    assert not Path(config.runs_dir).exists()  # no run directory, not even its lock
