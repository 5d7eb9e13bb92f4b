"""The Ray Tune executor (the default; ``--address`` joins a cluster): everything Ray-shaped, in one place.

It owns, once for every caller (``nas search``, ``nas bench record``): starting or joining Ray with the
environment Tune reads (:mod:`nas.raylocal`), the resource check, the serialised latency measurer actor
(:mod:`nas.measurer`) pinned to its own cores, the ``attempt-N`` folders of Ray's experiment state, and one
``Tuner`` per :meth:`RayTuneExecutor.run`. Behind the seam, Ray's transport: a
:class:`~nas.executors.contracts.TrialRequest` travels in the trial's config under ``"request"``, each
:class:`~nas.executors.contracts.EpochReport` as the flat result dict Tune requires (:func:`to_result`), and
Tune's callbacks are turned back into typed reports and outcomes (:func:`report_from_result`,
:func:`outcome_from_result`) before the loop sees them. The loop is driven by two thin adapters:
:class:`LoopSearcher` (Tune's ``Searcher``: requests and outcomes) and :class:`LoopScheduler` (Tune's
``TrialScheduler``: one continue/stop per epoch).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import ray
from ray import tune
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from nas.affinity import measurer_cores, pin_away_from
from nas.config import Execution, SearchConfig
from nas.core.searchcore import FINISHED
from nas.executors.contracts import EpochReport, LatencyReading, OutcomeKind, TrialOutcome, TrialRequest
from nas.executors.loop import TrialLoop
from nas.executors.trialrun import ProxyData, TrialSettings, train_trial
from nas.measurer import Measurer, measurer_resources
from nas.raylocal import init_local_ray, ray_init_kwargs, set_ray_environment
from space import ArchSpec
from space.errors import UserInputError

TrialBody = Callable[..., TrialOutcome]  # train_trial or a wrapper of it (the fault tests: tests/nas/faults.py)
LatencyMeasurer = ray.remote(max_restarts=1)(Measurer)  # one serialised actor per search


# ---- Ray's transport ---------------------------------------------------------------------------------------


def to_result(report: EpochReport) -> dict[str, Any]:
    """An epoch as the flat dict Tune requires (gate rates as JSON text: Tune flattens nested dicts)."""
    latency = report.latency
    return {"epoch": report.epoch, "accuracy": report.accuracy, "loss": report.loss, "seconds": report.seconds,
            "data_wait_seconds": report.data_wait_seconds, "train_seconds": report.train_seconds,
            "train_started_at": report.train_started_at, "reported_at": report.reported_at,
            "latency_ms": latency.ms if latency else None, "latency_profile": latency.profile if latency else None,
            "latency_cv": latency.cv if latency else None, "gate_open_rates": json.dumps(report.gate_open_rates)}


def _latency_of(result: dict[str, Any]) -> LatencyReading | None:
    ms, cv = result.get("latency_ms"), result.get("latency_cv")
    return LatencyReading(float(ms), str(result.get("latency_profile")), None if cv is None else float(cv)) \
        if ms is not None else None


def report_from_result(trial_id: str, result: dict[str, Any]) -> EpochReport | None:
    """Tune's result dict -> the typed epoch (None for a result that is not an epoch: an error, infeasible)."""
    if result.get("epoch") is None or result.get("error") or result.get("infeasible"):
        return None
    return EpochReport(
        trial_id=trial_id, epoch=int(result["epoch"]), accuracy=float(result["accuracy"]), loss=float(result["loss"]),
        seconds=float(result["seconds"]), latency=_latency_of(result),
        data_wait_seconds=float(result.get("data_wait_seconds", 0.0)),
        train_seconds=float(result.get("train_seconds", 0.0)), train_started_at=float(result.get("train_started_at", 0)),
        reported_at=float(result.get("reported_at", 0.0)), gate_open_rates=json.loads(result.get("gate_open_rates") or "{}"),
    )


def outcome_from_result(trial_id: str, result: dict[str, Any] | None, *, died: bool) -> TrialOutcome:
    """How Tune says a trial ended -> the typed outcome."""
    result = result or {}
    if died:
        return TrialOutcome(trial_id, OutcomeKind.DIED,
                            error="the trial's process died (out of memory or killed); see Ray's logs")
    if result.get("infeasible"):
        return TrialOutcome(trial_id, OutcomeKind.INFEASIBLE, latency=_latency_of(result))
    if result.get("error"):
        return TrialOutcome(trial_id, OutcomeKind.FAILED, error=str(result["error"]),
                            traceback=result.get("traceback"), latency=_latency_of(result))
    return TrialOutcome(trial_id, OutcomeKind.TRAINED, last=report_from_result(trial_id, result),
                        latency=_latency_of(result))


# ---- the trial, in a Ray worker ----------------------------------------------------------------------------


def ray_trial(config: dict[str, Any], *, data: ProxyData, settings: TrialSettings, measurer_name: str | None,
              body: TrialBody = train_trial) -> None:
    """Tune's function trainable: the trial body with the measurer actor's latency and ``tune.report``.

    Tune stops a trial the scheduler stopped at its next report, so ``report`` always answers "continue".
    An outcome without a last epoch (an error, infeasible) is reported as one final result carrying it.
    """
    request: TrialRequest = config["request"]
    pin_away_from(list(settings.measurer_cores))
    latency = _LatencyFuture(measurer_name, settings.latency_profile, request.spec)

    def report(epoch: EpochReport) -> bool:
        tune.report({**to_result(epoch), "data_build_id": data.build_id})  # which data copy it read (tested)
        return True

    outcome = body(request, data, settings, latency=latency.reading, report=report)
    if outcome.kind in (OutcomeKind.FAILED, OutcomeKind.INFEASIBLE):
        reading = outcome.latency
        # accuracy 0.0 only because Tune insists every result carries the scheduler's metric; no "epoch": no rung
        tune.report({"accuracy": 0.0, "error": outcome.error, "traceback": outcome.traceback,
                     "infeasible": outcome.kind is OutcomeKind.INFEASIBLE,
                     "latency_ms": reading.ms if reading else None, "latency_profile": reading.profile if reading else None,
                     "latency_cv": reading.cv if reading else None})


class _LatencyFuture:
    """The measurer's answer, asked for at once and awaited only when needed (the first epoch overlaps it)."""

    def __init__(self, measurer_name: str | None, profile: str, spec: ArchSpec) -> None:
        self.profile = profile
        self._ref = ray.get_actor(measurer_name).reading.remote(spec.to_dict()) if measurer_name else None
        self._value: LatencyReading | None = None

    def reading(self) -> LatencyReading | None:
        if self._ref is not None and self._value is None:
            ms, cv = ray.get(self._ref)
            self._value = LatencyReading(float(ms), self.profile, float(cv))
        return self._value


# ---- Tune's callbacks -> the loop ---------------------------------------------------------------------------


class LoopSearcher(Searcher):
    """Tune's ``Searcher``: each ``suggest`` is the loop's next request, each completion its outcome."""

    def __init__(self, loop: TrialLoop) -> None:
        super().__init__(metric=None, mode=None)
        self.loop = loop

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | None | str:
        request = self.loop.request(trial_id)
        if request == FINISHED:
            return Searcher.FINISHED
        return None if request is None else {"request": request}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.loop.finish(outcome_from_result(trial_id, result, died=error))

    # Tune pickles searchers for ``Tuner.restore``, which we never use: a resume rebuilds everything from the study
    def __getstate__(self) -> dict:
        return {"note": "state lives in the Optuna study; resume with `nas search --resume RUN`"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"note": "resume with `nas search --resume RUN`"}))

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("restore a search with `nas search --resume RUN`, not through Ray Tune")


class LoopScheduler(FIFOScheduler):
    """Tune's ``TrialScheduler``: every epoch's result goes to the loop, which answers continue or stop."""

    _supports_buffered_results = False  # decide on every epoch's result, not on a batch of them

    def __init__(self, loop: TrialLoop) -> None:
        super().__init__()
        self.loop = loop
        self._metric, self._mode = "accuracy", "max"  # every result carries it (Tune checks)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        report = report_from_result(trial.trial_id, result)
        if report is None:
            return TrialScheduler.CONTINUE
        return TrialScheduler.CONTINUE if self.loop.report(report) else TrialScheduler.STOP

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"note": "resume with `nas search --resume RUN`"}))

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("restore a search with `nas search --resume RUN`, not through Ray Tune")


class _Refresh(Callback):
    """Redraws a progress view on every controller step (its ETA counts down) and when a trial ends."""

    def __init__(self, refresh: Callable[[bool], None]) -> None:
        self.refresh = refresh

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self.refresh(False)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.refresh(True)

    def __getstate__(self) -> dict:
        return {}


# ---- the executor ------------------------------------------------------------------------------------------


def start_ray(execution: Execution, *, num_cpus: int | None = None) -> bool:
    """Join ``--address`` or start local Ray (loopback, dashboard off: :mod:`nas.raylocal`); True if we started it."""
    set_ray_environment()  # the library's one setting of environment variables, Ray started here or not
    if ray.is_initialized():
        return False
    if execution.address:
        ray.init(address=execution.address, **ray_init_kwargs(joining=True))
    else:
        init_local_ray(**ray_init_kwargs(joining=False), **({"num_cpus": num_cpus} if num_cpus else {}))
    return True


def check_resources(execution: Execution, measurer: dict[str, float]) -> None:
    available = ray.cluster_resources()
    cpus, gpus = available.get("CPU", 0), available.get("GPU", 0)
    need_cpu = execution.cpus_per_trial + measurer.get("num_cpus", 0)
    need_gpu = execution.gpus_per_trial + measurer.get("num_gpus", 0)
    if need_cpu > cpus or need_gpu > gpus:
        label = (f"{measurer.get('num_cpus', 0):g} CPU, {measurer.get('num_gpus', 0):g} GPU" if measurer
                 else "none: no latency objective")
        raise UserInputError(
            f"one trial ({execution.cpus_per_trial:g} CPU, {execution.gpus_per_trial:g} GPU) plus the latency measurer "
            f"({label}) needs {need_cpu:g} CPU and {need_gpu:g} GPU, more than the cluster has ({cpus:g} CPU, "
            f"{gpus:g} GPU); lower --cpus-per-trial / --gpus-per-trial or join a bigger cluster with --address")


def trial_measurer_cores(config: SearchConfig) -> tuple[int, ...]:
    """On a local CPU machine the measurer pins itself to these cores and trials stay off them."""
    if not config.problem.needs_latency or config.execution.address:
        return ()
    from runners.latency import get_profile

    profile = get_profile(config.problem.latency_profile)
    return () if profile.device.startswith("cuda") else tuple(measurer_cores(int(profile.threads or 1)))


def trial_settings(config: SearchConfig, *, measurer_cores: tuple[int, ...] = ()) -> TrialSettings:
    """What every trial of ``config`` trains with (every executor that trains uses it)."""
    return TrialSettings(
        proxy=config.proxy, cpus_per_trial=config.execution.cpus_per_trial,
        gpus_per_trial=config.execution.gpus_per_trial, latency_profile=config.problem.latency_profile,
        max_latency_ms=config.problem.max_latency_ms, measures_latency=config.problem.needs_latency,
        measurer_cores=measurer_cores,
    )


class RayTuneExecutor:
    """Ray started (or joined), the measurer running; :meth:`run` drives one loop through one ``Tuner``.

    ``state_dir``: where Tune keeps its experiment state (``attempt-N`` per run, never read back: the study is
    the source of truth); ``costs_dir``: the measurer's latency cache and log. ``measure_first`` (a recording
    that knows every architecture up front): the measurer's cores are shared with trials, because every
    latency is asked for before any trial starts. Use as a context manager.
    """

    def __init__(self, config: SearchConfig, *, state_dir: Path, costs_dir: Path, name: str,
                 body: TrialBody = train_trial, num_cpus: int | None = None, measure_first: bool = False) -> None:
        self.config, self.state_dir, self.costs_dir, self.name = config, state_dir, costs_dir, name
        self.body, self.num_cpus, self.measure_first = body, num_cpus, measure_first
        self.resources = measurer_resources(config.problem.latency_profile) if config.problem.needs_latency else {}
        self.measurer = None
        self.measurer_name: str | None = None
        self._started_ray = False

    def __enter__(self) -> "RayTuneExecutor":
        self._started_ray = start_ray(self.config.execution, num_cpus=self.num_cpus)
        try:
            check_resources(self.config.execution, self.resources)
        except BaseException:
            self.close()
            raise
        return self

    def start_measurer(self) -> None:
        """Start the latency measurer actor (after the resource check, once the run directory exists)."""
        if self.config.problem.needs_latency and self.measurer is None:
            self.measurer_name = f"videonas-measurer-{self.name}"
            self.measurer = LatencyMeasurer.options(name=self.measurer_name, **self.resources).remote(
                self.config.problem.latency_profile, str(self.costs_dir.resolve()))

    def measure_latency(self, spec: ArchSpec) -> float:
        self.start_measurer()
        return float(ray.get(self.measurer.measure.remote(spec.to_dict())))

    def __exit__(self, *exc: object) -> None:
        self.close()

    def interrupt(self) -> None:
        """Ctrl-C: ask Tune to stop its running trials and return from ``fit()`` (its SIGUSR1 graceful stop)."""
        import os
        import signal

        os.kill(os.getpid(), signal.SIGUSR1)

    def close(self) -> None:
        if self.measurer is not None:
            ray.kill(self.measurer)
            self.measurer = None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def run(self, loop: TrialLoop, data: ProxyData, *, refresh: Callable[[bool], None] | None = None) -> None:
        """Train the loop's requests until it says FINISHED and none is left running."""
        self.start_measurer()
        config = self.config
        cores = () if self.measure_first else trial_measurer_cores(config)
        trainable = tune.with_resources(
            tune.with_parameters(ray_trial, data=data, settings=trial_settings(config, measurer_cores=cores),
                                 measurer_name=self.measurer_name, body=self.body),
            {"cpu": config.execution.cpus_per_trial, "gpu": config.execution.gpus_per_trial})
        attempt = sum(1 for _ in self.state_dir.glob("attempt-*")) if self.state_dir.exists() else 0
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=LoopSearcher(loop), scheduler=LoopScheduler(loop), num_samples=-1,
                                        max_concurrent_trials=config.execution.max_concurrent, reuse_actors=True),
            run_config=tune.RunConfig(name=f"attempt-{attempt}", storage_path=str(self.state_dir.resolve()), verbose=0,
                                      callbacks=[_Refresh(refresh)] if refresh else [], log_to_file=True),
        )
        tuner.fit()


def local_cpus_for(workers: int, cpus_per_trial: float, measurer_cpus: float) -> int:
    """Ray's CPU count for ``workers`` trials at once plus an idle measurer (a recording that measured first)."""
    return math.ceil(workers * cpus_per_trial + measurer_cpus)
