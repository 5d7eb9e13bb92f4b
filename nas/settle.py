"""``nas settle RUN``: settle the stale trials of a run's study from any process that reaches its storage.

What a second machine runs beside a shared-storage search (or an operator after a crash): it never trains,
it only watches. Every pass settles the RUNNING trials whose heartbeat is older than the grace period
(:mod:`nas.heartbeat`); it returns once no trial is RUNNING (or after ``timeout_s``). When no driver holds the
run's lock it also rewrites ``trials.parquet`` from the study, so ``nas runs`` / ``nas trials`` see the
settled trials at once; while a driver runs, that driver keeps the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nas.config import SearchConfig
from nas.trialsfile import trials_frame
from nas.runlock import RunLock, RunLockedError
from nas.runmodel import RunDir
from nas.search import load_run_config
from nas.heartbeat import grace_period_s, running_trials, settle_stale
from nas.study import open_baseline_study, open_study
from space.errors import UserInputError


@dataclass(frozen=True)
class SettleOutcome:
    settled: list[int]  # trial numbers of the search study settled by this process
    settled_baselines: int
    still_running: int  # RUNNING trials left when it stopped (a live driver's, or a timeout)
    exported: bool  # whether trials.parquet was rewritten


def settle_run(run_dir: Path, *, storage: str | None = None, timeout_s: float | None = None,
               say: Callable[[str], None] = lambda text: None) -> SettleOutcome:
    """Watch ``run_dir``'s study until no trial is RUNNING, settling each one whose heartbeat went stale."""
    config = load_run_config(run_dir)
    if storage:
        config = config.replace(storage=storage)
    run = RunDir(run_dir)
    study, baselines = _open(config, run)
    studies = [study, baselines]
    interval = config.execution.heartbeat_interval_s
    deadline = None if timeout_s is None else time.time() + timeout_s
    settled: list[int] = []
    settled_baselines = 0
    say(f"watching {study.study_name}: a RUNNING trial with no heartbeat for {grace_period_s(interval):g} s "
        f"(3 x {interval} s) is settled")
    while True:
        for running in settle_stale(studies, interval, main=study):
            if running.study is study:
                settled.append(running.trial.number)
            else:
                settled_baselines += 1
            say(f"settled {running.study.study_name} trial {running.trial.number}: no heartbeat for "
                f"{running.age_s:.0f} s (FAIL interrupted; re-run on resume)")
        left = sum(len(running_trials(s)) for s in studies if s is not None)
        if left == 0 or (deadline is not None and time.time() >= deadline):
            break
        time.sleep(min(1.0, interval))
    exported = _export_if_idle(config, run, study, baselines)
    return SettleOutcome(settled, settled_baselines, left, exported)


def _open(config: SearchConfig, run: RunDir):
    storage = run.storage_url(config.execution.storage)
    try:
        study = open_study(config, storage, num_params=0, create=False)
    except KeyError:
        raise UserInputError(f"{storage} holds no study {config.name!r}: pass the storage it lives in with --storage") from None
    baselines = open_baseline_study(config, storage) if config.problem.baselines else None
    return study, baselines


def _export_if_idle(config: SearchConfig, run: RunDir, study, baselines) -> bool:
    try:
        lock = RunLock(run).acquire()
    except RunLockedError:
        return False
    try:
        run.write_trials(trials_frame(config.problem, config.proxy.epochs, study, baselines))
        return True
    finally:
        lock.release()
