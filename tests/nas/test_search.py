"""The search engine end to end: real Optuna storage, real Ray (one head on loopback per module), real proxies.

Every search here is tiny (depth-18 proxies at width 1/8 on 8 x 32 x 32 clips, 2 epochs).
"""

from __future__ import annotations

import json
import math
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

from nas.runlock import RunLock
from nas.runmodel import RunDir
from nas.search import run_search
from nas.study import interrupted_trials
from space import spec_from_dict
from tests.nas.cli_helpers import REPO, assert_one_line_error, run_nas
from tests.nas.faults import faulty_trial
from tests.nas.search_helpers import load_study, postgres_server, tiny_config

pytestmark = pytest.mark.slow  # real searches on Ray: tens of seconds each


def frame_of(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "trials.parquet")


@pytest.fixture(scope="module")
def small_run(ray_address, tmp_path_factory):
    """One small search shared by the tests that only read its results."""
    config = tiny_config(tmp_path_factory.mktemp("small"), trials=4, baselines=("r3d-18",), max_params=40.0)
    return config, run_search(config, show_progress=False)


def test_small_search_completes_and_parquet_agrees_with_study(small_run):
    config, outcome = small_run
    frame = frame_of(outcome.run_dir)
    study = load_study(outcome.run_dir)
    search_rows = frame[frame["baseline"].isna()].set_index("trial_id")
    assert sorted(search_rows.index) == [t.number for t in study.trials]
    for trial in study.trials:
        row = search_rows.loc[trial.number]
        assert row["status"] == trial.user_attrs["status"]
        if trial.state == TrialState.COMPLETE:
            assert trial.values[0] == pytest.approx(row["accuracy"])
            assert trial.values[1] == pytest.approx(row["gmacs"])
    counted = frame["status"].isin(["COMPLETE", "PRUNED", "FAIL"]) & frame["baseline"].isna()
    assert counted.sum() == 4 == outcome.counted
    # --max-params 40 (millions): GRU-carrying specs are infeasible, never trained, told with their values
    infeasible = frame[frame["status"] == "INFEASIBLE"]
    assert len(infeasible) >= 1
    for _, row in infeasible.iterrows():
        assert row["fidelity"] == 0 and row["constraint_max_params"] > 0
        assert row["params"] / 1e6 - 40.0 == pytest.approx(row["constraint_max_params"])
        trial = study.trials[int(row["trial_id"])]
        assert trial.state == TrialState.COMPLETE and trial.values[0] == 0.0
        assert trial.user_attrs["constraints"][1] > 0
    for _, row in frame[frame["status"] == "COMPLETE"].iterrows():
        assert row["params"] / 1e6 <= 40.0 and row["fidelity"] == 2
        assert [h["epoch"] for h in json.loads(row["history"])] == [1, 2]  # the last epoch included
    baseline = frame[frame["baseline"] == "r3d-18"]
    assert len(baseline) == 1 and baseline.iloc[0]["status"] == "COMPLETE"
    config_on_disk = RunDir(outcome.run_dir).read_search()
    assert set(config_on_disk["environment"]) >= {"python", "torch", "ray", "optuna", "cpu", "git_revision"}
    assert config_on_disk["bounds"]["gmacs"][1] > 0


def test_each_trained_trial_stores_the_binomial_standard_error_of_its_accuracy(small_run):
    config, outcome = small_run
    frame = frame_of(outcome.run_dir)
    val_clips = max(config.data.num_classes, config.data.num_clips // 5)  # docs/proxy.md: a fifth, a clip per class
    trained = frame[frame["status"].isin(["COMPLETE", "PRUNED"])]
    assert len(trained) >= 2 and (trained["val_clips"] == val_clips).all()
    for row in trained.itertuples():
        correct = round(row.accuracy * val_clips)
        assert correct / val_clips == pytest.approx(row.accuracy)  # a share of the validation clips
        assert row.accuracy_se == pytest.approx(math.sqrt(row.accuracy * (1 - row.accuracy) / val_clips), rel=1e-12)
    untrained = frame[frame["status"].isin(["INFEASIBLE", "DUPLICATE", "INVALID"])]
    assert untrained["accuracy_se"].isna().all() and untrained["val_clips"].isna().all()


TWO_SPECS = """\
name: two
families:
  resnet3d:
    conv: [r3d, r2plus1d]
    depth: 18
"""


def test_duplicates_are_not_retrained_and_exhaustion_ends_the_search(ray_address, tmp_path):
    space = tmp_path / "two.yaml"
    space.write_text(TWO_SPECS)
    config = tiny_config(tmp_path, space=str(space), trials=5, max_resamples=20)
    outcome = run_search(config, show_progress=False)
    frame = frame_of(outcome.run_dir)
    assert outcome.message and "exhausted" in outcome.message
    trained = frame[frame["status"].isin(["COMPLETE", "PRUNED", "FAIL"])]
    assert trained["spec_key"].is_unique and len(trained) == 2
    duplicates = frame[frame["status"] == "DUPLICATE"]
    assert len(duplicates) >= 1
    for _, row in duplicates.iterrows():
        original = frame[frame["trial_id"] == row["duplicate_of"]].iloc[0]
        assert original["spec_key"] == row["spec_key"] and original["status"] != "DUPLICATE"
        assert row["accuracy"] == original["accuracy"]
    assert outcome.counted == 2


def test_scheduler_prunes_and_failures_are_recorded(ray_address, tmp_path):
    from space.searchspace import load_space

    space_file = Path(tiny_config(tmp_path).space)
    specs = list(load_space(str(space_file)).enumerate())
    faults = {specs[0].key(): "raise", specs[1].key(): "nan"}
    config = tiny_config(tmp_path, trials=6, scheduler="moasha", reduction_factor=4, grace_period=1,
                         sampler="random", max_concurrent=1)
    outcome = run_search(config, show_progress=False, trial=faulty_trial(faults))
    frame = frame_of(outcome.run_dir)
    study = load_study(outcome.run_dir)
    failed = frame[frame["status"] == "FAIL"].set_index("spec_key")
    assert "injected fault" in failed.loc[specs[0].key(), "error"]
    assert "TrainingDiverged" in failed.loc[specs[1].key(), "error"]
    pruned = frame[frame["status"] == "PRUNED"]
    assert len(pruned) >= 1
    for _, row in pruned.iterrows():
        assert row["fidelity"] == 1 < row["max_fidelity"]
        assert [h["epoch"] for h in json.loads(row["history"])] == [1]
        assert study.trials[int(row["trial_id"])].state == TrialState.PRUNED
    assert outcome.counted == 6  # COMPLETE + PRUNED + FAIL: the search finished despite the failures


def test_retries_rerun_a_failed_trial(ray_address, tmp_path):
    from space.searchspace import load_space

    spec = next(iter(load_space(tiny_config(tmp_path).space).enumerate()))
    config = tiny_config(tmp_path, trials=2, retries=1, max_concurrent=1)
    outcome = run_search(config, show_progress=False, trial=faulty_trial({spec.key(): "raise"}))
    frame = frame_of(outcome.run_dir)
    attempts = frame[frame["spec_key"] == spec.key()]
    if len(attempts):  # the sampler proposed it: first attempt not counted, the retry is
        study = load_study(outcome.run_dir)
        states = [study.trials[int(t)].user_attrs.get("attempt", 0) for t in attempts["trial_id"]]
        assert sorted(states)[:2] == [0, 1]
        counted = [study.trials[int(t)].user_attrs["counted"] for t in attempts["trial_id"]]
        assert counted.count(True) == 1
    assert outcome.counted == 2


def test_same_seed_same_architectures_and_accuracies(ray_address, tmp_path):
    results = []
    for name in ("first", "second"):
        config = tiny_config(tmp_path, name=name, trials=3, max_concurrent=1, sampler="tpe")
        outcome = run_search(config, show_progress=False)
        frame = frame_of(outcome.run_dir).sort_values("trial_id")
        results.append(list(zip(frame["spec_key"], frame["status"], frame["accuracy"].round(6))))
    assert results[0] == results[1]


def test_proxy_dataset_is_built_once_per_search(small_run):
    _, outcome = small_run
    experiment = next((outcome.run_dir / "ray").glob("attempt-*"))
    build_ids = set()
    for result_file in experiment.glob("*/result.json"):
        for line in result_file.read_text().splitlines():
            build_ids.add(json.loads(line)["data_build_id"])
    assert len(build_ids) == 1


def test_locked_run_is_refused(ray_address, tmp_path):
    config = tiny_config(tmp_path)
    run_dir = Path(config.runs_dir) / config.name
    with RunLock(RunDir(run_dir)):
        result = run_nas("search", "--space", config.space, "--runs-dir", config.runs_dir, "--name", config.name,
                         "--trials", "1", "--address", ray_address, "--quiet")
    assert_one_line_error(result, "locked")
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing else written


def test_existing_run_without_resume_is_refused(ray_address, small_run):
    config, _ = small_run
    before = {p: p.stat().st_mtime_ns for p in (Path(config.runs_dir) / config.name).rglob("*") if p.is_file()}
    result = run_nas("search", "--space", config.space, "--runs-dir", config.runs_dir, "--name", config.name,
                     "--address", ray_address, "--quiet")
    assert_one_line_error(result, "already exists", "--resume")
    after = {p: p.stat().st_mtime_ns for p in before}
    assert before == after


def _cli_args(config, address):
    return [
        "--space", config.space, "--runs-dir", config.runs_dir, "--name", config.name, "--trials", str(config.trials),
        "--objectives", ",".join(config.problem.objectives), "--sampler", config.sampler, "--scheduler", config.scheduler.name,
        "--num-clips", str(config.data.num_clips), "--proxy-epochs", str(config.proxy.epochs),
        "--proxy-width", str(config.proxy.width_mult), "--proxy-frames", str(config.proxy.frames),
        "--proxy-size", str(config.proxy.size), "--proxy-batch-size", str(config.proxy.batch_size),
        "--deploy-shape", "x".join(map(str, config.problem.deploy_shape)), "--max-concurrent", "1",
        "--address", address, "--quiet", "--no-report",
    ]


def test_sigkill_then_resume_keeps_finished_trials_and_reruns_interrupted(ray_address, tmp_path):
    config = tiny_config(tmp_path, trials=4, sampler="random", proxy_epochs=3)
    run_dir = Path(config.runs_dir) / config.name
    driver = subprocess.Popen([sys.executable, "-m", "nas", "search", *_cli_args(config, ray_address)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    finished_before = []
    while time.time() < deadline:
        time.sleep(1)
        if (run_dir / "trials.parquet").exists():
            frame = pd.read_parquet(run_dir / "trials.parquet")
            finished_before = frame[frame["status"] == "COMPLETE"]
            if len(finished_before) >= 1 and (frame["status"] == "RUNNING").any():
                break
    assert len(finished_before) >= 1, driver.stderr.read() if driver.poll() is not None else "no trial finished"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    kept = {int(r.trial_id): (r.spec_key, r.accuracy) for r in finished_before.itertuples()}
    study = load_study(run_dir)
    interrupted = [t for t in study.trials if t.state == TrialState.RUNNING]
    assert interrupted, "the kill should leave a RUNNING trial behind"
    interrupted_params = [t.params for t in interrupted if t.user_attrs.get("status") == "RUNNING"]

    result = run_nas("search", "--resume", str(run_dir), "--address", ray_address, "--quiet", "--no-report")
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(run_dir / "trials.parquet").set_index("trial_id")
    for trial_id, (key, accuracy) in kept.items():  # every finished trial kept, with its values
        assert frame.loc[trial_id, "spec_key"] == key and frame.loc[trial_id, "accuracy"] == accuracy
    study = load_study(run_dir)
    marked = interrupted_trials(study)
    for trial in interrupted:
        assert study.trials[trial.number].state == TrialState.FAIL
        assert "interrupted" in marked[trial.number]
        assert frame.loc[trial.number, "status"] == "INTERRUPTED" and "interrupted" in frame.loc[trial.number, "error"]
        assert not study.trials[trial.number].user_attrs.get("counted")
    rerun = [t for t in study.trials if t.user_attrs.get("retry_of") is not None]
    assert [t.params for t in rerun[: len(interrupted_params)]] == interrupted_params
    assert sum(1 for t in study.trials if t.user_attrs.get("counted")) == 4
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


def test_postgres_storage(ray_address, tmp_path):
    with postgres_server(tmp_path) as url:
        _search_with_postgres(url, tmp_path)


def _search_with_postgres(url: str, tmp_path: Path) -> None:
    name = f"pg{int(time.time())}"
    config = tiny_config(tmp_path, name=name, trials=2, storage=url)
    outcome = run_search(config, show_progress=False)
    study = optuna.load_study(study_name=name, storage=url)
    assert sum(1 for t in study.trials if t.user_attrs.get("counted")) == 2
    assert not (outcome.run_dir / "study.db").exists()
    frame = frame_of(outcome.run_dir)
    assert sorted(frame["trial_id"]) == [t.number for t in study.trials]
    for _, row in frame[frame["status"] == "COMPLETE"].iterrows():
        assert spec_from_dict(json.loads(row["spec"])).key() == row["spec_key"]
    optuna.delete_study(study_name=name, storage=url)


def test_runs_and_trials_commands_read_the_run(small_run):
    config, outcome = small_run
    runs = run_nas("runs", config.runs_dir)
    assert runs.returncode == 0, runs.stderr
    assert "tiny" in runs.stdout and "4/4" in runs.stdout
    trials = run_nas("trials", str(outcome.run_dir))
    assert trials.returncode == 0 and "INFEASIBLE" in trials.stdout
    assert "r3d-18" in trials.stdout and "(baseline)" in trials.stdout
    front = run_nas("trials", str(outcome.run_dir), "--front")
    frame = frame_of(outcome.run_dir)
    shown = [line.split("│")[1].strip() for line in front.stdout.splitlines() if line.startswith("│")]
    ids = [s for s in shown if s.lstrip("-").isdigit()]
    done = frame[(frame["status"] == "COMPLETE") & frame["feasible"]]
    assert set(map(int, ids)) <= set(done["trial_id"]) and ids
    assert_one_line_error(run_nas("trials", str(outcome.run_dir / "nope")), "not a run directory")


def test_time_budget_stops_running_trials_at_their_next_rung(ray_address, tmp_path):
    config = tiny_config(tmp_path, trials=10, time_budget_s=3.0, proxy_epochs=4, grace_period=1)
    outcome = run_search(config, show_progress=False)
    frame = frame_of(outcome.run_dir)
    trained = frame[frame["status"].isin(["COMPLETE", "PRUNED", "FAIL"])]
    assert 1 <= len(trained) < 10  # no trial started after the budget ran out
    assert (trained["status"] == "PRUNED").all()
    assert (trained["fidelity"] == 1).all()  # each stopped at its first rung after the budget


def test_the_study_names_its_metrics_for_optuna_dashboard(small_run):
    config, outcome = small_run
    study = optuna.load_study(study_name=config.name, storage=f"sqlite:///{outcome.run_dir / 'study.db'}")
    assert study.metric_names == ["accuracy (proxy val top-1, fraction)", "GMACs @ 1x3x8x32x32"]


SRTG_ONLY = """\
name: srtg-only
families:
  resnet3d:
    conv: [r3d, r2plus1d]
    depth: 18
    srtg:
      placement: [final]
      recurrent: [gru]
      gate: [cyclic]
"""


def test_srtg_gate_open_rates_reach_trials_parquet_and_the_report(ray_address, tmp_path):
    """Issue 11.8: Ray flattened the nested rates; trials.parquet held {} and the report said no SRTG trained."""
    from reports.build import build_report

    space = tmp_path / "srtg.yaml"
    space.write_text(SRTG_ONLY)
    config = tiny_config(tmp_path, name="gates", space=str(space), trials=2, proxy_epochs=1)
    outcome = run_search(config, show_progress=False)
    frame = frame_of(outcome.run_dir)
    trained = frame[frame["status"] == "COMPLETE"]
    assert len(trained) == 2
    for cell in trained["gate_open_rates"]:
        rates = json.loads(cell)
        assert len(rates) >= 2 and all(block.endswith(".srtg") for block in rates)  # per block, not one mean
        assert all(rate is None or 0.0 <= rate <= 1.0 for rate in rates.values())
        assert any(isinstance(rate, float) for rate in rates.values())
    html = build_report(outcome.run_dir).read_text()
    assert "No trial recorded SRTG gate statistics" not in html
    assert "layer4.0.srtg" in html
