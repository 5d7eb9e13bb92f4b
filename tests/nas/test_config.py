"""SearchConfig is composed of parts, speaks flat flags to the CLI and search.yaml, and reads old runs' files."""

from __future__ import annotations

import math

import pytest

from nas.config import SEARCH_PROXY, DataSource, Execution, Problem, SchedulerConfig, SearchConfig
from runners.proxy import ProxyConfig
from space.errors import UserInputError

# the ``config`` section of a search.yaml written before SearchConfig was split into parts (issue 12)
OLD_SEARCH_YAML_CONFIG = {
    "name": "old", "runs_dir": "runs", "space": "demo", "trials": 12, "time_budget_s": None,
    "objectives": ["accuracy", "gmacs", "latency"], "sampler": "tpe", "scheduler": "asha", "seed": 7,
    "data": "synthetic", "root": None, "cache": None, "num_clips": 2100, "num_classes": None,
    "proxy_epochs": 3, "proxy_width": 0.5, "proxy_frames": 8, "proxy_size": 32, "proxy_batch_size": 16,
    "proxy_lr": 0.1, "deploy_shape": "1x3x16x112x112", "latency_profile": "cpu-quick", "max_gmacs": 40.0,
    "max_params": None, "max_latency_ms": None, "baselines": ["r3d-18"], "grace_period": 1,
    "reduction_factor": 3, "address": None, "cpus_per_trial": 2.0, "gpus_per_trial": 0.0, "max_concurrent": 2,
    "storage": None, "retries": 1, "max_resamples": 200, "extra": {},
}


def test_an_old_flat_search_yaml_is_read_into_the_parts():
    config = SearchConfig.from_dict(OLD_SEARCH_YAML_CONFIG)
    assert config.problem == Problem(objectives=("accuracy", "gmacs", "latency"), deploy_shape=(16, 112, 112),
                                     latency_profile="cpu-quick", max_gmacs=40.0, baselines=("r3d-18",))
    assert config.proxy == ProxyConfig(epochs=3, width_mult=0.5, frames=8, size=32, batch_size=16, lr=0.1)
    assert config.data == DataSource(dataset="synthetic", num_clips=2100)
    assert config.scheduler == SchedulerConfig(name="asha", grace_period=1, reduction_factor=3)
    assert config.execution == Execution(cpus_per_trial=2.0, max_concurrent=2)
    assert (config.name, config.trials, config.seed, config.retries) == ("old", 12, 7, 1)
    # written back as it was, plus the flags added since, at their defaults
    assert config.to_dict() == {**OLD_SEARCH_YAML_CONFIG, "heartbeat_interval_s": 10, "study_name": None, "executor": "ray",
                                "mlflow": None, "warm_start": None}


def test_flags_round_trip_and_unknown_keys_from_other_versions_are_ignored():
    config = SearchConfig.from_flags(proxy_epochs=2, max_latency_ms=30.0, address="127.0.0.1:6379")
    assert SearchConfig.from_dict({**config.to_dict(), "a_future_flag": 1}) == config
    with pytest.raises(TypeError, match="unknown flags"):
        SearchConfig.from_flags(proxy_epoch=2)  # a typo in code is a programming error, not silently dropped


def test_replace_changes_only_the_part_a_flag_belongs_to():
    config = SearchConfig.from_flags(proxy_epochs=3, max_gmacs=5.0)
    moved = config.replace(address="10.0.0.1:6379", max_concurrent=1)
    assert moved.execution == Execution(address="10.0.0.1:6379", max_concurrent=1)
    assert (moved.problem, moved.proxy, moved.data, moved.scheduler) == (
        config.problem, config.proxy, config.data, config.scheduler)


def test_the_search_proxy_defaults_live_in_one_place_and_the_rest_are_the_proxy_loops():
    config = SearchConfig()
    assert config.proxy == SEARCH_PROXY
    assert (config.proxy.weight_decay, config.proxy.warmup_fraction) == (ProxyConfig().weight_decay,
                                                                         ProxyConfig().warmup_fraction)
    assert config.rungs == config.scheduler.rungs(config.proxy.epochs) == [1, 2]


@pytest.mark.parametrize("flags, message", [
    ({"proxy_epochs": 0}, "--proxy-epochs 0"), ({"proxy_width": 1.5}, "--proxy-width 1.5"),
    ({"proxy_lr": -1.0}, "--proxy-lr -1.0"), ({"grace_period": 0}, "--grace-period 0"),
    ({"num_clips": 0}, "--num-clips 0"), ({"cpus_per_trial": 0.0}, "--cpus-per-trial"),
    ({"max_gmacs": -1.0}, "--max-gmacs -1.0"), ({"scheduler": "hyperband"}, "--scheduler 'hyperband'"),
    ({"objectives": ("accuracy",)}, "--objectives accuracy"), ({"trials": 0}, "--trials 0"),
    ({"time_budget_s": math.inf}, "--time-budget inf is"), ({"time_budget_s": math.nan}, "--time-budget nan is"),
    ({"time_budget_s": -5.0}, "--time-budget -5.0 is"),
])  # fmt: skip
def test_bad_flags_are_user_errors_that_name_the_flag(flags, message):
    with pytest.raises(UserInputError, match=message.replace("(", r"\(")):
        SearchConfig.from_flags(**flags)
