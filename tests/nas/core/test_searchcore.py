"""The search core over a real Optuna study (SQLite), driven by hand: no Ray, no training."""

from __future__ import annotations

import pytest
import math

from optuna.trial import TrialState

from nas.core.searchcore import SearchCore
from nas.executors.contracts import EpochReport, LatencyReading, OutcomeKind, TrialOutcome, TrialRequest
from nas.search import static_cost_fn
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


def _epoch(trial_id: str, epoch: int, accuracy: float, latency: LatencyReading | None = None) -> EpochReport:
    return EpochReport(trial_id, epoch=epoch, accuracy=accuracy, loss=1.0, seconds=0.1, latency=latency)


def _trained(report: EpochReport) -> TrialOutcome:
    return TrialOutcome(report.trial_id, OutcomeKind.TRAINED, last=report, latency=report.latency)


def test_a_trial_trained_to_the_full_budget_is_complete(tmp_path):
    """Issue 11.2: fidelity == proxy epochs -> COMPLETE with its accuracy told, never PRUNED."""
    searcher = make_searcher(tmp_path, proxy_epochs=2)
    request = searcher.suggest("t0")
    assert isinstance(request, TrialRequest) and request.trial_id == "t0"
    searcher.on_report(_epoch("t0", 1, 0.4))
    searcher.on_outcome(_trained(_epoch("t0", 2, 0.3)))
    trial = searcher.study.get_trials()[request.number]
    assert trial.user_attrs["status"] == "COMPLETE" and trial.state == TrialState.COMPLETE
    assert trial.values[0] == 0.3 and trial.user_attrs["fidelity"] == 2


def test_an_exception_while_telling_ends_the_trial_as_fail(tmp_path):
    """Issue 11.9: a trial whose outcome cannot be told (a NaN constraint value) ends FAIL, counted, with the message."""
    searcher = make_searcher(tmp_path, max_latency_ms=100.0)
    request = searcher.suggest("t0")
    searcher.on_outcome(_trained(_epoch("t0", 2, 0.5, latency=LatencyReading(math.nan, "cpu-quick"))))
    trial = searcher.study.get_trials()[request.number]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["status"] == "FAIL" and trial.user_attrs["counted"] is True
    assert "telling the study failed" in trial.user_attrs["error"]
    assert searcher.counted() == 1 and not searcher.live


@pytest.mark.slow
def test_importing_the_core_imports_neither_ray_nor_reports():
    """The core, the loop and every executor but Ray's are plain Python over Optuna and torch: no Ray."""
    import subprocess
    import sys

    code = ("import sys, nas.core.searchcore, nas.core.rungs, nas.core.schedulers, nas.executors.loop, "
            "nas.executors.simulated, nas.executors.localpool, nas.executors.trialrun; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'reports')); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_the_core_settles_duplicates_without_training(tmp_path):
    """A re-proposed architecture is told DUPLICATE with the original's values, never handed out again."""
    core = make_searcher(tmp_path, trials=10, sampler="random", proxy_epochs=1)
    keys = []
    for n in range(6):  # the tiny space has 6 architectures
        request = core.suggest(f"t{n}")
        if not isinstance(request, TrialRequest):
            break
        core.on_outcome(_trained(_epoch(f"t{n}", 1, 0.5)))
        keys.append(core.study.get_trials()[request.number].user_attrs["spec_key"])
    assert len(keys) == len(set(keys))  # every trained trial is a new architecture
    statuses = [t.user_attrs["status"] for t in core.study.get_trials()]
    assert statuses.count("COMPLETE") == len(keys)
    assert set(statuses) <= {"COMPLETE", "DUPLICATE", "INVALID", "INFEASIBLE"}
