"""The run's Optuna study names its metrics, so optuna-dashboard labels each objective with its unit."""

from __future__ import annotations

import optuna

from nas.study import metric_names, open_baseline_study, open_study
from tests.nas.search_helpers import tiny_config


def test_new_and_resumed_studies_carry_metric_names(tmp_path):
    config = tiny_config(tmp_path, objectives=("accuracy", "gmacs", "latency"), latency_profile="cpu-quick",
                         deploy_shape=(16, 112, 112))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    open_study(config, storage, num_params=3, create=True)
    open_baseline_study(config, storage)
    expected = ["accuracy (proxy val top-1, fraction)", "GMACs @ 1x3x16x112x112",
                "latency ms (median, profile cpu-quick)"]
    assert metric_names(config) == expected
    for name in (config.name, config.name + "-baselines"):  # read back by a fresh client, as the dashboard does
        assert optuna.load_study(study_name=name, storage=storage).metric_names == expected


def test_a_study_created_without_names_gets_them_on_resume(tmp_path):
    config = tiny_config(tmp_path, objectives=("accuracy", "params"))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name=config.name, storage=storage, directions=config.directions)
    assert optuna.load_study(study_name=config.name, storage=storage).metric_names is None
    open_study(config, storage, num_params=3, create=False)
    assert optuna.load_study(study_name=config.name, storage=storage).metric_names == [
        "accuracy (proxy val top-1, fraction)", "parameters (count)"]
