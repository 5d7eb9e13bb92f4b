"""One trial's work, the same in every executor that trains: latency first if it can make the trial infeasible,
then proxy training with one :class:`~nas.executors.contracts.EpochReport` per epoch, then the outcome.

It never talks to the study and never raises for the trial's own failures: a divergence, out of memory or a
bug becomes a FAILED :class:`~nas.executors.contracts.TrialOutcome` with the message, so the search goes on.
Each executor supplies the two things that differ: how the latency is obtained (Ray's measurer actor, the local
pool's measurer process) and where reports go (``report(epoch) -> keep``; False stops training there).
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass
from typing import Callable

import torch

from nas.executors.contracts import EpochReport, LatencyReading, OutcomeKind, TrialOutcome, TrialRequest
from runners.clips import ClipSet
from runners.proxy import ProxyConfig

LatencySource = Callable[[], "LatencyReading | None"]  # blocks until the measurer answers; None: not measured
ReportSink = Callable[[EpochReport], bool]  # True: continue training


@dataclass(frozen=True)
class ProxyData:
    """The proxy dataset, built once by the driver and shared by every trial (Ray's object store, a fork)."""

    train: ClipSet
    val: ClipSet
    build_id: str


@dataclass(frozen=True)
class TrialSettings:
    """Everything a trial needs that is the same for all trials of a search.

    ``proxy`` is the search's proxy config as given; each trial sets its own seed, threads, device and the
    data's clip shape on it. ``measurer_cores``: cores a CPU latency measurer is pinned to; trials keep off them.
    """

    proxy: ProxyConfig
    cpus_per_trial: float
    gpus_per_trial: float
    latency_profile: str
    max_latency_ms: float | None
    measures_latency: bool
    measurer_cores: tuple[int, ...] = ()


def train_trial(request: TrialRequest, data: ProxyData, settings: TrialSettings, *, latency: LatencySource,
                report: ReportSink) -> TrialOutcome:
    """Run one trial to its outcome (module docstring)."""
    from runners.proxy import train_proxy

    reading: LatencyReading | None = None
    last: EpochReport | None = None
    started = time.time()

    def on_epoch(epoch) -> bool:
        nonlocal reading, last
        if reading is None and settings.measures_latency:
            reading = latency()  # the first epoch overlapped the measurement; every report carries it
        last = EpochReport(
            trial_id=request.trial_id, epoch=int(epoch.epoch), accuracy=float(epoch.accuracy), loss=float(epoch.loss),
            seconds=float(epoch.seconds), latency=reading, data_wait_seconds=float(epoch.data_wait_seconds),
            train_seconds=time.time() - started, train_started_at=started, reported_at=time.time(),
            gate_open_rates=dict(epoch.gate_open_rates or {}),
        )
        return not report(last)  # train_proxy stops when its callback returns True

    try:
        if settings.max_latency_ms is not None and settings.measures_latency:
            reading = latency()
            if reading is not None and reading.ms > settings.max_latency_ms:
                return TrialOutcome(request.trial_id, OutcomeKind.INFEASIBLE, latency=reading)
        started = time.time()
        train_proxy(request.spec, data.train, data.val, trial_proxy(request, data, settings), report=on_epoch)
    except Exception as exc:  # the trial's own failure: reported as an outcome, the search goes on
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
            message = f"out of memory ({message}); lower --proxy-batch-size, --proxy-width or --max-concurrent"
            _release_memory()  # the worker is reused for the next trial: give back what this one held
        return TrialOutcome(request.trial_id, OutcomeKind.FAILED, last=last, error=message,
                            traceback=traceback.format_exc(limit=8), latency=reading)
    return TrialOutcome(request.trial_id, OutcomeKind.TRAINED, last=last, latency=reading)


def trial_proxy(request: TrialRequest, data: ProxyData, settings: TrialSettings) -> ProxyConfig:
    """The search's proxy config with this trial's seed, threads, device and the data's clip shape."""
    use_gpu = settings.gpus_per_trial > 0 and torch.cuda.is_available()
    return dataclasses.replace(
        settings.proxy, frames=data.train.clip_shape[0], size=data.train.clip_shape[1], seed=int(request.seed),
        threads=max(1, int(settings.cpus_per_trial)), device="cuda" if use_gpu else "cpu", amp=use_gpu,
    )


def _release_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
