"""The run's Optuna study names its metrics, so optuna-dashboard labels each objective with its unit."""

from __future__ import annotations

import optuna
import pandas as pd

from nas.study import metric_names, open_baseline_study, open_study
from tests.nas.search_helpers import tiny_config


def test_new_and_resumed_studies_carry_metric_names(tmp_path):
    config = tiny_config(tmp_path, objectives=("accuracy", "gmacs", "latency"), latency_profile="cpu-quick",
                         deploy_shape=(16, 112, 112))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    open_study(config, storage, num_params=3, create=True)
    open_baseline_study(config, storage)
    expected = ["accuracy (proxy val top-1, fraction)", "GMACs @ 1x3x16x112x112",
                "latency ms (median, profile cpu-quick @ 1x3x8x112x112)"]  # what each is measured on
    assert metric_names(config.problem) == expected
    for name in (config.name, config.name + "-baselines"):  # read back by a fresh client, as the dashboard does
        assert optuna.load_study(study_name=name, storage=storage).metric_names == expected


def test_a_study_created_without_names_gets_them_on_resume(tmp_path):
    config = tiny_config(tmp_path, objectives=("accuracy", "params"))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name=config.name, storage=storage, directions=config.problem.directions)
    assert optuna.load_study(study_name=config.name, storage=storage).metric_names is None
    open_study(config, storage, num_params=3, create=False)
    assert optuna.load_study(study_name=config.name, storage=storage).metric_names == [
        "accuracy (proxy val top-1, fraction)", "parameters (count)"]


def test_a_resume_fails_what_a_dead_driver_left_running_and_requeues_what_was_training(tmp_path):
    """Public Optuna API only: a fresh client (the resumed driver) holds no ``optuna.Trial`` of the dead one."""
    from optuna.trial import TrialState

    from nas.trialsfile import trials_frame
    from nas.study import INTERRUPTED_MESSAGE, interrupted_trials, requeue_interrupted

    config = tiny_config(tmp_path, objectives=("accuracy", "params"))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    dead = open_study(config, storage, num_params=1, create=True)
    done, training, not_started = dead.ask(), dead.ask(), dead.ask()
    for trial, depth in ((done, 18), (training, 34), (not_started, 50)):
        trial.suggest_categorical("depth", [18, 34, 50])
        trial.set_user_attr("spec_key", f"key-{depth}")
    done.set_user_attr("status", "COMPLETE")
    done.set_user_attr("counted", True)
    dead.tell(done, [0.5, 1e6])
    training.set_user_attr("status", "RUNNING")
    training.set_user_attr("attempt", 0)
    baseline = open_baseline_study(config, storage).ask()
    baseline.set_user_attr("status", "RUNNING")

    study = open_study(config, storage, num_params=1, create=False)
    baselines = open_baseline_study(config, storage)
    assert requeue_interrupted(study, baselines) == 1
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL, TrialState.WAITING]
    assert trials[0].values == [0.5, 1e6]
    assert trials[3].system_attrs["fixed_params"] == trials[1].params and trials[3].user_attrs == {"attempt": 0, "retry_of": 1}
    assert interrupted_trials(study) == {1: INTERRUPTED_MESSAGE, 2: INTERRUPTED_MESSAGE}
    assert [t.state for t in baselines.get_trials()] == [TrialState.FAIL]

    frame = trials_frame(config.problem, config.proxy.epochs, study, baselines).set_index("trial_id")
    assert list(frame["status"]) == ["COMPLETE", "INTERRUPTED", "INTERRUPTED", "QUEUED", "INTERRUPTED"]  # baseline last, id -1
    assert pd.isna(frame.loc[0, "error"])
    assert all("interrupted" in frame.loc[i, "error"] for i in (1, 2, -1))
    assert requeue_interrupted(study, baselines) == 0  # a second resume finds nothing left RUNNING
    assert len(study.get_trials()) == 4
