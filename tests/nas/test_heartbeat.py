"""Heartbeats and the stale-trial rule (issue 17): a live driver's trials are left alone, a dead one's settled.

Real Optuna RDB storage (SQLite in a temporary folder), a real heartbeat thread; no Ray. The end-to-end
versions (a SIGKILLed ``nas search`` on PostgreSQL and SQLite) are in ``tests/nas/test_search_faults.py``.
"""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from nas.heartbeat import Heartbeat, await_orphans, grace_period_s, running_trials, settle_stale
from nas.study import interrupted_trials
from space.errors import UserInputError

INTERVAL = 1  # seconds; grace 3 s


def _study(tmp_path):
    return optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}",
                               directions=["maximize", "minimize"])


def _training_trial(study):
    trial = study.ask()
    trial.suggest_categorical("conv", ["r3d", "r2plus1d"])
    trial.set_user_attr("status", "RUNNING")
    trial.set_user_attr("attempt", 0)
    return trial


@pytest.mark.slow
def test_a_beating_driver_is_left_alone_and_a_silent_one_is_settled_after_the_grace_period(tmp_path):
    study = _study(tmp_path)
    trial = _training_trial(study)
    with Heartbeat([study], INTERVAL):
        time.sleep(grace_period_s(INTERVAL) + 2)  # longer than the grace period, but the beats keep coming
        assert settle_stale([study], INTERVAL, main=study) == []
        assert [r.has_beat for r in running_trials(study)] == [True]
    time.sleep(grace_period_s(INTERVAL) + 1.5)  # the "driver" stopped beating
    settled = settle_stale([study], INTERVAL, main=study)
    assert [r.trial.number for r in settled] == [trial.number]
    frozen = study.trials[trial.number]
    assert frozen.state == TrialState.FAIL and not frozen.user_attrs.get("counted")
    assert "no heartbeat" in interrupted_trials(study)[trial.number]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [(t.system_attrs["fixed_params"], t.user_attrs["retry_of"]) for t in waiting] == [(frozen.params, trial.number)]
    assert settle_stale([study], INTERVAL, main=study) == []  # settled once, never twice


@pytest.mark.slow
def test_a_trial_killed_before_its_first_beat_is_still_settled(tmp_path):
    """Optuna's own rule skips a RUNNING trial with no beat at all; ours ages it from its start."""
    study = _study(tmp_path)
    trial = _training_trial(study)
    assert settle_stale([study], INTERVAL, main=study) == []
    time.sleep(grace_period_s(INTERVAL) + 1.5)
    assert [r.trial.number for r in settle_stale([study], INTERVAL, main=study)] == [trial.number]


@pytest.mark.slow
def test_a_resume_waits_for_a_dead_drivers_trials_and_refuses_a_live_one(tmp_path):
    study = _study(tmp_path)
    _training_trial(study)
    with Heartbeat([study], INTERVAL):
        with pytest.raises(UserInputError, match="another driver is still running"):
            await_orphans([study], INTERVAL, main=study)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]  # the live driver's trial untouched
    assert await_orphans([study], INTERVAL, main=study) == 1
    assert not study.get_trials(states=(TrialState.RUNNING,))
