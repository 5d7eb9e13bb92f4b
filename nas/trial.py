"""The function Ray Tune runs for one trial: latency (awaited from the measurer), then proxy training.

It reports once per epoch (``epoch``, ``accuracy`` and every cost objective, so the scheduler can rank
it at a rung). It never talks to the Optuna study: outcomes go back through the reported results, and
the driver's :class:`~nas.searcher.StudySearcher` tells the study. Errors are reported, not raised, so the
driver sees the message: a result with ``error`` (FAIL) or ``infeasible`` (latency over the limit).
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import ray
import torch
from ray import tune

from nas.affinity import pin_away_from
from runners.clips import ClipSet
from runners.proxy import ProxyConfig
from space import spec_from_dict


@dataclass(frozen=True)
class ProxyData:
    """The proxy dataset, built once by the driver and put once into Ray's object store."""

    train: ClipSet
    val: ClipSet
    build_id: str


@dataclass(frozen=True)
class TrialSettings:
    """Everything a trial needs that is the same for all trials of a search.

    ``proxy`` is the search's proxy config as given; each trial sets its own seed, threads, device and the
    data's clip shape on it.
    """

    proxy: ProxyConfig
    cpus_per_trial: float
    gpus_per_trial: float
    measurer_name: str | None  # the named Ray actor that measures latency, or None when not needed
    latency_profile: str
    max_latency_ms: float | None
    measurer_cores: tuple[int, ...] = ()  # cores the measurer is pinned to; trials keep off them


# What a search runs for each trial: ``run_trial`` or a wrapper of it with the same signature
# ``(config, *, data: ProxyData, settings: TrialSettings) -> None`` (a plug-in point: ``run_search(..., trial=)``).
TrialFunction = Callable[..., None]


def run_trial(config: dict[str, Any], *, data: ProxyData, settings: TrialSettings) -> None:
    """Ray Tune function trainable (wrapped with ``tune.with_parameters`` by the driver).

    Any exception of the training (a divergence, out of memory, a bug) is reported, not raised. A caller may
    wrap this function (``run_search(..., trial=...)``): the tests inject their failures that way
    (``tests/nas/faults.py``): this module holds no switch for them.
    """
    spec = spec_from_dict(config["spec"])
    pin_away_from(list(settings.measurer_cores))
    base: dict[str, Any] = {
        "gmacs": config["gmacs"],
        "params": config["params"],
        "latency_ms": None,
        "data_build_id": data.build_id,
    }
    latency = _LatencyFuture(settings, config["spec"])
    try:
        if settings.max_latency_ms is not None and latency.value() > settings.max_latency_ms:
            base.update(latency.fields())
            tune.report({**base, "accuracy": 0.0, "infeasible": True})  # never trained
            return
        _train_proxy(spec, config, data, settings, base, latency)
    except Exception as exc:  # reported, so the driver records the message and the search goes on
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
            message = f"out of memory ({message}); lower --proxy-batch-size, --proxy-width or --max-concurrent"
            _release_memory()  # the actor is reused for the next trial: give back what this one held
        # accuracy 0.0 only because Ray insists every result carries the scheduler's metric; there is no
        # "epoch" here, so no scheduler rung records it and the driver tells the trial FAIL.
        tune.report({**base, "accuracy": 0.0, "error": message, "traceback": traceback.format_exc(limit=8)})


class _LatencyFuture:
    """The measurer's answer, asked for at once and awaited only when needed.

    Without a latency constraint the first training epoch overlaps the measurement; the value is awaited
    before the first report, which must carry every objective for the scheduler to rank it.
    """

    def __init__(self, settings: TrialSettings, spec_dict: dict) -> None:
        self.profile = settings.latency_profile
        self._ref = None
        self._value: float | None = None
        if settings.measurer_name is not None:
            self._ref = ray.get_actor(settings.measurer_name).measure.remote(spec_dict)

    def value(self) -> float | None:
        if self._ref is not None and self._value is None:
            self._value = float(ray.get(self._ref))
        return self._value

    def fields(self) -> dict[str, Any]:
        if self._ref is None:
            return {"latency_ms": None}
        return {"latency_ms": self.value(), "latency_profile": self.profile}


def _release_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _train_proxy(spec, config: dict, data: ProxyData, settings: TrialSettings, base: dict,
                 latency: _LatencyFuture) -> None:
    from runners.proxy import train_proxy

    use_gpu = settings.gpus_per_trial > 0 and torch.cuda.is_available()
    threads = max(1, int(settings.cpus_per_trial))
    proxy = dataclasses.replace(
        settings.proxy,
        frames=data.train.clip_shape[0],
        size=data.train.clip_shape[1],
        seed=int(config["seed"]),
        threads=threads,
        device="cuda" if use_gpu else "cpu",
        amp=use_gpu,
    )
    started = time.time()

    def report(epoch: Any) -> None:
        tune.report(
            {
                **base,
                **latency.fields(),
                "epoch": int(epoch.epoch),
                "accuracy": float(epoch.accuracy),
                "loss": float(epoch.loss),
                "seconds": float(epoch.seconds),
                "data_wait_seconds": float(getattr(epoch, "data_wait_seconds", 0.0)),
                "train_seconds": time.time() - started,
                "train_started_at": started,  # absolute times: `nas bench overhead` unions these intervals
                "reported_at": time.time(),
                # JSON text, not a dict: Ray flattens nested results ("gate_open_rates/layer4.1.srtg")
                # before the searcher sees them, which lost every rate (docs/run-directory.md)
                "gate_open_rates": json.dumps(getattr(epoch, "gate_open_rates", {}) or {}),
            }
        )

    train_proxy(spec, data.train, data.val, proxy, report=report)
