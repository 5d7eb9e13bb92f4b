"""The search core over a real Optuna study (SQLite), driven by hand: no Ray, no training."""

from __future__ import annotations

import pytest
import math

from optuna.trial import TrialState

from nas.search import static_cost_fn
from nas.core.search import SearchCore
from nas.study import open_study
from space.searchspace import load_space
from tests.nas.search_helpers import tiny_config


def make_searcher(tmp_path, **overrides) -> SearchCore:
    config = tiny_config(tmp_path, **overrides)
    space = load_space(config.space)
    study = open_study(config, f"sqlite:///{tmp_path / 'study.db'}", num_params=len(space.parameters()), create=True)
    bounds = {"accuracy": (0.0, 1.0), "gmacs": (0.0, 50.0), "params": (0.0, 1e8), "latency": (0.0, 1e4)}
    return SearchCore(config=config, study=study, baseline_study=None, space=space,
                         static_costs=static_cost_fn(config.problem), bounds=bounds)


def _epoch(epoch: int, accuracy: float, **extra) -> dict:
    return {"epoch": epoch, "accuracy": accuracy, "loss": 1.0, "seconds": 0.1, **extra}


def test_a_trial_trained_to_the_full_budget_is_complete(tmp_path):
    """Issue 11.2: fidelity == proxy epochs -> COMPLETE with its accuracy told, never PRUNED."""
    searcher = make_searcher(tmp_path, proxy_epochs=2)
    config = searcher.suggest("t0")
    assert isinstance(config, dict)
    searcher.on_trial_result("t0", _epoch(1, 0.4))
    searcher.on_trial_complete("t0", _epoch(2, 0.3))
    trial = searcher.study.get_trials()[config["trial_number"]]
    assert trial.user_attrs["status"] == "COMPLETE" and trial.state == TrialState.COMPLETE
    assert trial.values[0] == 0.3 and trial.user_attrs["fidelity"] == 2


def test_an_exception_while_telling_ends_the_trial_as_fail(tmp_path):
    """Issue 11.9: a trial whose outcome cannot be told (a NaN constraint value) ends FAIL, counted, with the message."""
    searcher = make_searcher(tmp_path, max_latency_ms=100.0)
    config = searcher.suggest("t0")
    searcher.on_trial_complete("t0", _epoch(2, 0.5, latency_ms=math.nan))
    trial = searcher.study.get_trials()[config["trial_number"]]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["status"] == "FAIL" and trial.user_attrs["counted"] is True
    assert "telling the study failed" in trial.user_attrs["error"]
    assert searcher.counted() == 1 and not searcher.live


@pytest.mark.slow
def test_importing_the_core_imports_neither_ray_nor_reports():
    """Issue 12: the core is plain Python over Optuna; Ray Tune is one executor among others."""
    import subprocess
    import sys

    code = ("import sys, nas.core.search, nas.core.rungs; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'reports')); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_the_core_settles_duplicates_without_training(tmp_path):
    """A re-proposed architecture is told DUPLICATE with the original's values, never handed out again."""
    core = make_searcher(tmp_path, trials=10, sampler="random", proxy_epochs=1)
    keys = []
    for n in range(6):  # the tiny space has 6 architectures
        config = core.suggest(f"t{n}")
        if not isinstance(config, dict):
            break
        core.on_trial_complete(f"t{n}", _epoch(1, 0.5))
        keys.append(core.study.get_trials()[config["trial_number"]].user_attrs["spec_key"])
    assert len(keys) == len(set(keys))  # every trained trial is a new architecture
    statuses = [t.user_attrs["status"] for t in core.study.get_trials()]
    assert statuses.count("COMPLETE") == len(keys)
    assert set(statuses) <= {"COMPLETE", "DUPLICATE", "INVALID", "INFEASIBLE"}
