"""Trials a dead driver left RUNNING: telling them apart from a live driver's, and settling them.

A search driver that dies (SIGKILL, a lost machine) cannot tell the study that its trials ended, so they
stay RUNNING in the storage. With the run's own ``study.db`` the resumed driver knows every RUNNING trial is
an orphan: it holds the run's ``flock``, so no other driver can. With a shared ``--storage`` (PostgreSQL) a
driver on another machine could still be alive, so the proof is a **heartbeat**: while a driver runs, a
thread (:class:`Heartbeat`) records a beat every ``heartbeat_interval_s`` seconds for each RUNNING trial of
its studies, in Optuna's own heartbeat table (``RDBStorage.record_heartbeat``, the table Optuna's
``fail_stale_trials`` reads). A RUNNING trial whose last beat, or start when it has none yet, is older than
the grace period (:data:`GRACE_INTERVALS` x the interval) is **stale**: its driver is gone.

Settling a trial (:func:`settle_orphan`) is what a resume does (:func:`nas.study.requeue_interrupted`):
marked ``interrupted`` on the study, told FAIL, never counted, and, for a trial that was training, its
parameters enqueued again so the next driver re-runs it. A resumed driver on shared storage waits until every RUNNING trial is stale
(:func:`await_orphans`; a heartbeat that keeps coming means a live driver and is refused); ``nas settle RUN``
(:func:`settle_stale`) does the same from any process that reaches the storage, without running a search.

Why not Optuna's ``fail_stale_trials`` itself: it never marks why nor re-enqueues, and it needs the storage
built with an (experimental) ``heartbeat_interval``, which makes every ``Study.ask`` warn outside ``optimize``. Why our own age rule: Optuna ignores a RUNNING
trial that has no beat yet, which would leave a driver killed in its first interval with a zombie forever.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.study import INTERRUPTED_ATTR, INTERRUPTED_MESSAGE
from space.errors import UserInputError

GRACE_INTERVALS = 3  # a trial is stale after this many missed beats: one slow write is not a death


def grace_period_s(interval_s: float) -> float:
    return GRACE_INTERVALS * float(interval_s)


def _backend(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    """The RDB storage under Optuna's cache wrapper (None for a storage without heartbeats)."""
    storage = getattr(study._storage, "_backend", study._storage)
    return storage if isinstance(storage, optuna.storages.RDBStorage) else None


# ---- the driver's side: beating ---------------------------------------------------------------


class Heartbeat:
    """A daemon thread that beats for every RUNNING trial of ``studies`` every ``interval_s`` seconds.

    A failed beat (a locked SQLite file, a dropped connection) is a warning, never the end of the search: a
    missed beat only matters if ``GRACE_INTERVALS`` of them are missed in a row.
    """

    def __init__(self, studies: list[optuna.Study | None], interval_s: float) -> None:
        self.studies = [s for s in studies if s is not None and _backend(s) is not None]
        self.interval_s = float(interval_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="videonas-heartbeat", daemon=True)

    def beat(self) -> int:
        beats = 0
        for study in self.studies:
            backend = _backend(study)
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                backend.record_heartbeat(trial._trial_id)
                beats += 1
        return beats

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - see the class docstring
                warnings.warn(f"heartbeat not recorded: {type(exc).__name__}: {exc}", RuntimeWarning)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)


# ---- anyone's side: ages, staleness, settling ---------------------------------------------------


@dataclass(frozen=True)
class RunningTrial:
    study: optuna.Study
    trial: FrozenTrial
    age_s: float  # seconds since its last heartbeat, or since it started when it has none
    has_beat: bool


def running_trials(study: optuna.Study) -> list[RunningTrial]:
    """Every RUNNING trial of ``study`` with the age of its last sign of life (the storage's clock for beats)."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    beats = last_beats(study, [t._trial_id for t in running])
    out = []
    for trial in running:
        if trial._trial_id in beats:
            out.append(RunningTrial(study, trial, beats[trial._trial_id], True))
        else:  # Optuna stamps datetime_start with this machine's local clock
            started = trial.datetime_start or datetime.now()
            out.append(RunningTrial(study, trial, (datetime.now() - started).total_seconds(), False))
    return out


def last_beats(study: optuna.Study, trial_ids: list[int]) -> dict[int, float]:
    """trial id -> seconds since its last heartbeat, both times read from the storage's own clock."""
    backend = _backend(study)
    if backend is None or not trial_ids:
        return {}
    import sqlalchemy
    from optuna.storages._rdb import models

    with sqlalchemy.orm.Session(backend.engine) as session:
        now = session.execute(sqlalchemy.func.now()).scalar()
        rows = session.query(models.TrialHeartbeatModel).filter(
            models.TrialHeartbeatModel.trial_id.in_(trial_ids)).all()
        if isinstance(now, str):  # SQLite's CURRENT_TIMESTAMP comes back as text
            now = datetime.fromisoformat(now)
        now = now.replace(tzinfo=None)
        return {row.trial_id: (now - row.heartbeat.replace(tzinfo=None)).total_seconds() for row in rows}


def settle_orphan(study: optuna.Study, trial: FrozenTrial, *, requeue: bool, reason: str = INTERRUPTED_MESSAGE) -> bool:
    """FAIL ``interrupted``, never counted; a trial that was training is enqueued again when ``requeue``.

    Through public Optuna API, as a resume does (:func:`nas.study.fail_interrupted`): the message is marked
    on the study first (``trials.parquet`` shows it), then the trial is told FAIL. Returns False when the
    trial had finished meanwhile (another process settled it, or its driver was alive after all).
    """
    if study.trials[trial.number].state != TrialState.RUNNING:
        return False
    marks = {**study.user_attrs.get(INTERRUPTED_ATTR, {}), str(trial.number): reason}
    study.set_user_attr(INTERRUPTED_ATTR, marks)
    study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    if requeue and trial.user_attrs.get("status") == "RUNNING":
        attrs = {"attempt": trial.user_attrs.get("attempt", 0), "retry_of": trial.number}
        study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)
    return True


def settle_stale(studies: list[optuna.Study | None], interval_s: float, *, main: optuna.Study) -> list[RunningTrial]:
    """One pass: settle every stale RUNNING trial of ``studies``; returns those settled.

    Only ``main`` (the search study) re-enqueues: a baseline is re-run by the next driver anyway, because it
    is only done once COMPLETE or PRUNED.
    """
    grace = grace_period_s(interval_s)
    settled = []
    for study in studies:
        if study is None:
            continue
        for running in running_trials(study):
            if running.age_s > grace:
                reason = f"interrupted (no heartbeat for {running.age_s:.0f} s, grace {grace:g} s: the driver died); re-run on resume"
                if settle_orphan(study, running.trial, requeue=study is main, reason=reason):
                    settled.append(running)
    return settled


def await_orphans(studies: list[optuna.Study | None], interval_s: float, *, main: optuna.Study,
                  say=lambda text: None) -> int:
    """Before a resume on shared storage: wait for every RUNNING trial to go stale, then settle them all.

    A trial whose heartbeat is still fresh after a whole grace period (plus one interval) has a live driver:
    refused, since two drivers on one study would each count the other's trials.
    """
    grace = grace_period_s(interval_s)
    deadline = time.time() + grace + interval_s + 2.0  # + 2 s: SQLite's clock ticks in whole seconds
    settled = 0
    announced = False
    while True:
        settled += len(settle_stale(studies, interval_s, main=main))
        fresh = [r for s in studies if s is not None for r in running_trials(s)]
        if not fresh:
            return settled
        if time.time() > deadline:
            youngest = min(fresh, key=lambda r: r.age_s)
            raise UserInputError(
                f"trial {youngest.trial.number} of study {youngest.study.study_name} had a heartbeat "
                f"{youngest.age_s:.0f} s ago: another driver is still running this study; stop it first "
                f"(one driver per study)"
            )
        if not announced:
            say(f"waiting up to {grace:g} s for {len(fresh)} RUNNING trial(s) of a shared study to go stale "
                f"(heartbeat every {interval_s:g} s)")
            announced = True
        time.sleep(min(1.0, interval_s))
