"""The local executor (``--executor local``): worker processes on this machine, no Ray, only torch.

For a machine where Ray is not worth having or cannot be installed (a lent GPU box, a laptop). ``N`` worker
processes each lease ``--cpus-per-trial`` cores (pinned, off the measurer's cores) or a share of one CUDA device
(``--gpus-per-trial``: workers are dealt round-robin over the visible devices), and run the same trial body as
the Ray executor (:func:`nas.executors.trialrun.train_trial`). The latency measurer is a process of its own,
pinned to its own cores, answering one architecture at a time (:class:`nas.measurer.Measurer`).

Over each worker's pipe: the driver sends a :class:`~nas.executors.contracts.TrialRequest`; the worker sends
each :class:`~nas.executors.contracts.EpochReport` and waits for the loop's continue/stop, asks for its latency
when it needs it, and ends with the :class:`~nas.executors.contracts.TrialOutcome`. A worker whose process
dies ends its trial DIED and is replaced. Workers ignore SIGINT: Ctrl-C is the driver's
(:meth:`LocalPoolExecutor.interrupt` stops them). The proxy data goes to each worker once, when it starts.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable

from nas.affinity import available_cores, measurer_cores
from nas.config import SearchConfig
from nas.core.searchcore import FINISHED
from nas.executors.contracts import LatencyReading, OutcomeKind, TrialOutcome, TrialRequest
from nas.executors.loop import TrialLoop
from nas.executors.trialrun import ProxyData, TrialSettings, train_trial
from space import ArchSpec
from space.errors import UserInputError

TrialBody = Callable[..., TrialOutcome]
_CONTEXT = get_context("spawn")  # a fresh interpreter: no inherited threads, locks or CUDA state


@dataclass(frozen=True)
class Lease:
    """What one worker may use: its cores (empty: any) and its CUDA device (None: the CPU)."""

    cores: tuple[int, ...]
    device: int | None


def plan_leases(config: SearchConfig, *, gpus: int, reserved: tuple[int, ...]) -> list[Lease]:
    """One lease per worker, off the ``reserved`` (measurer) cores: as many as ``--max-concurrent`` or as the
    machine holds, at least one."""
    execution = config.execution
    cores = [c for c in available_cores() if c not in set(reserved)] or available_cores()
    per_trial = max(1, int(execution.cpus_per_trial))
    if execution.gpus_per_trial > 0:
        if gpus == 0:
            raise UserInputError("--gpus-per-trial > 0 but this machine has no CUDA device; use --gpus-per-trial 0")
        fitting = int(gpus / execution.gpus_per_trial + 1e-9)
    else:
        fitting = max(1, len(cores) // per_trial)
    count = max(1, min(fitting, execution.max_concurrent or fitting))
    leases = []
    for i in range(count):
        own = tuple(cores[(i * per_trial) % len(cores):][:per_trial]) if cores and execution.gpus_per_trial == 0 else ()
        leases.append(Lease(own, i % gpus if execution.gpus_per_trial > 0 else None))
    return leases


def _measurer_threads(config: SearchConfig) -> int:
    from runners.latency import get_profile

    profile = get_profile(config.problem.latency_profile)
    return 0 if profile.device.startswith("cuda") else int(profile.threads or 1)


# ---- in the worker process ---------------------------------------------------------------------------------


def _worker_main(conn: Connection, lease: Lease, data: ProxyData, settings: TrialSettings, body: TrialBody) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's
    if lease.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(lease.cores))
    if lease.device is not None:
        import torch

        torch.cuda.set_device(lease.device)
    while True:
        message = conn.recv()
        if message is None:
            return
        request: TrialRequest = message

        def latency() -> LatencyReading:
            conn.send(("latency", request.spec))
            status, value = conn.recv()
            if status != "ok":  # raised inside the trial body: the trial ends FAILED with the message
                raise RuntimeError(f"latency measurement failed: {value}")
            ms, cv = value
            return LatencyReading(float(ms), settings.latency_profile, float(cv))

        def report(epoch) -> bool:
            conn.send(("report", epoch))
            return bool(conn.recv())

        conn.send(("outcome", body(request, data, settings, latency=latency, report=report)))


def _measurer_main(conn: Connection, profile: str, cache_dir: str) -> None:
    from nas.measurer import Measurer

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    measurer = Measurer(profile, cache_dir)
    while True:
        spec = conn.recv()
        if spec is None:
            return
        try:
            conn.send(("ok", measurer.reading(spec.to_dict())))
        except Exception as exc:  # noqa: BLE001 - the trial that asked records the failure
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


# ---- in the driver -----------------------------------------------------------------------------------------


class _Worker:
    def __init__(self, lease: Lease, data: ProxyData, settings: TrialSettings, body: TrialBody) -> None:
        self.lease = lease
        self.conn, child = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(target=_worker_main, args=(child, lease, data, settings, body), daemon=True)
        self.process.start()
        child.close()
        self.trial: str | None = None

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=10)


class LocalPoolExecutor:
    """Worker processes and a measurer on this machine; :meth:`run` drives one loop. Use as a context manager.

    ``share_measurer_cores``: a recording that asked for every latency before any trial (so the measurer is idle
    while trials train) lets trials use the measurer's cores too.
    """

    def __init__(self, config: SearchConfig, *, costs_dir: Path, body: TrialBody = train_trial,
                 share_measurer_cores: bool = False) -> None:
        self.config, self.costs_dir, self.body = config, costs_dir, body
        self.reserved = () if share_measurer_cores or not config.problem.needs_latency else tuple(
            measurer_cores(_measurer_threads(config)))
        self._measurer: tuple[Any, Connection] | None = None
        self._interrupted = False

    def __enter__(self) -> "LocalPoolExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._measurer is not None:
            process, conn = self._measurer
            try:
                conn.send(None)
            except OSError:
                pass
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
            self._measurer = None

    def interrupt(self) -> None:
        """Ctrl-C: stop the running trials now (they are settled INTERRUPTED by the driver)."""
        self._interrupted = True

    def _measurer_conn(self) -> Connection:
        if self._measurer is None:
            conn, child = _CONTEXT.Pipe()
            process = _CONTEXT.Process(target=_measurer_main, daemon=True,
                                       args=(child, self.config.problem.latency_profile, str(self.costs_dir.resolve())))
            process.start()
            child.close()
            self._measurer = (process, conn)
        return self._measurer[1]

    def measure_latency(self, spec: ArchSpec) -> float:
        conn = self._measurer_conn()
        conn.send(spec)
        status, value = conn.recv()
        if status != "ok":
            raise RuntimeError(f"latency measurement failed: {value}")
        return float(value[0])

    def run(self, loop: TrialLoop, data: ProxyData, *, refresh: Callable[[bool], None] | None = None) -> None:
        """Train the loop's requests until it says FINISHED and none is left running (or Ctrl-C)."""
        from nas.executors.raytune import trial_settings
        import torch

        settings = trial_settings(self.config, measurer_cores=self.reserved)
        gpus = torch.cuda.device_count() if self.config.execution.gpus_per_trial > 0 else 0
        leases = plan_leases(self.config, gpus=gpus, reserved=self.reserved)
        workers = [_Worker(lease, data, settings, self.body) for lease in leases]
        try:
            _Dispatch(self, loop, workers, data, settings, refresh or (lambda force: None)).run()
        finally:
            for worker in workers:
                worker.stop()


class _Dispatch:
    """The driver's event loop: hand out requests, relay reports, latencies and outcomes."""

    def __init__(self, executor: LocalPoolExecutor, loop: TrialLoop, workers: list[_Worker], data: ProxyData,
                 settings: TrialSettings, refresh: Callable[[bool], None]) -> None:
        self.executor, self.loop, self.workers = executor, loop, workers
        self.data, self.settings, self.refresh = data, settings, refresh
        self.finished = False
        self.counter = 0
        self.waiting_latency: list[_Worker] = []

    def run(self) -> None:
        while not self.executor._interrupted:
            self._fill()
            busy = [w for w in self.workers if w.trial is not None]
            if not busy:
                return
            self._serve(busy)
            self.refresh(False)

    def _fill(self) -> None:
        for worker in self.workers:
            if self.finished or worker.trial is not None:
                continue
            self.counter += 1
            trial_id = f"local-{os.getpid()}-{self.counter:05d}"
            request = self.loop.request(trial_id)
            if request == FINISHED:
                self.finished = True
            if not isinstance(request, TrialRequest):
                return
            worker.trial = trial_id
            worker.conn.send(request)

    def _serve(self, busy: list[_Worker]) -> None:
        conns = {w.conn: w for w in busy}
        sentinels = {w.process.sentinel: w for w in busy}
        measurer = self.executor._measurer[1] if self.executor._measurer else None
        watched = list(conns) + list(sentinels) + ([measurer] if measurer is not None else [])
        for ready in wait(watched, timeout=1.0):
            if ready is measurer:
                self._answer_latency()
            elif ready in conns:
                self._handle(conns[ready])
            elif not sentinels[ready].process.is_alive() and sentinels[ready].trial is not None:
                self._replace_dead(sentinels[ready])

    def _handle(self, worker: _Worker) -> None:
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            self._replace_dead(worker)
            return
        if kind == "report":
            worker.conn.send(self.loop.report(payload))
        elif kind == "latency":
            self.waiting_latency.append(worker)
            self.executor._measurer_conn().send(payload)
        else:
            worker.trial = None
            self.loop.finish(payload)
            self.refresh(True)

    def _answer_latency(self) -> None:
        answer = self.executor._measurer[1].recv()
        worker = self.waiting_latency.pop(0)  # the measurer answers in the order it was asked
        worker.conn.send(answer)

    def _replace_dead(self, worker: _Worker) -> None:
        trial_id, worker.trial = worker.trial, None
        if worker in self.waiting_latency:
            self.waiting_latency.remove(worker)
        if trial_id is not None:
            self.loop.finish(TrialOutcome(trial_id, OutcomeKind.DIED, error=(
                f"the trial's worker process died (exit code {worker.process.exitcode}: out of memory or killed)")))
        worker.stop()
        index = self.workers.index(worker)
        self.workers[index] = _Worker(worker.lease, self.data, self.settings, self.executor.body)
        time.sleep(0)  # the new worker starts while the loop goes on
