"""``run_search``: one search from config to a finished run directory (what ``nas search`` calls; the CLI builds the report).

The order of events: lock the run, open (or resume) the study, fix the normalisation bounds, build the
proxy data once, start Ray and the latency measurer, run a Ray Tune ``Tuner`` driven by our
:class:`~nas.searcher.StudySearcher` (the adapter of the Ray-free :class:`~nas.core.search.SearchCore`),
export ``trials.parquet`` after every trial. The report is the caller's (the CLI builds it after a search).
On resume the study is the single source of truth: trials a dead driver left RUNNING are marked FAIL
(``interrupted``) and their parameters re-enqueued; Ray's old experiment state is ignored.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray import tune

from nas.affinity import measurer_cores
from nas.config import Execution, Problem, SearchConfig
from nas.export import trials_frame
from nas.measurer import LatencyMeasurer, measurer_resources
from nas.moasha import make_scheduler
from nas.objectives import OBJECTIVES
from nas.progress import SearchProgress
from nas.raylocal import init_local_ray, ray_init_kwargs
from nas.proxydata import build_proxy_data
from nas.rundir import RunLock, environment
from nas.runmodel import RUN_FORMAT, RunDir
from nas.core.search import SearchCore, StaticCosts
from nas.searcher import StudySearcher
from nas.settle import Heartbeat, await_orphans
from nas.study import open_baseline_study, open_study, requeue_interrupted
from nas.trial import TrialSettings, run_trial
from runners.costs import model_costs
from space import ArchSpec, catalog_spec
from space.errors import UserInputError
from space.files import atomic_write
from space.searchspace import SearchSpace, load_space

if TYPE_CHECKING:
    import optuna

REFERENCE_POINT = 1.0  # in normalised objective space (0 = best bound, 1 = worst bound)
BOUND_SAMPLE = 12


@dataclass(frozen=True)
class SearchOutcome:
    run_dir: Path
    counted: int
    message: str | None


DEPLOY_NUM_CLASSES = 400  # costs are reported for the deployment model at the papers' 400 classes


def static_cost_fn(problem: Problem):
    """Static costs of the deployment model at ``problem.deploy_shape`` (cached by spec key): what SearchCore
    and `nas bench record` use."""
    cache: dict[str, StaticCosts] = {}

    def costs(spec: ArchSpec) -> StaticCosts:
        key = spec.key()
        if key not in cache:
            c = model_costs(spec, shape=problem.deploy_shape, num_classes=DEPLOY_NUM_CLASSES)
            cache[key] = StaticCosts(gmacs=c.gmacs, params=c.params, recurrent_params=c.recurrent_params)
        return cache[key]

    return costs


def _sample_specs(space: SearchSpace, seed: int, count: int) -> list[ArchSpec]:
    rng = random.Random(seed)
    specs = {}
    for _ in range(count * 4):
        spec = space.sample(lambda name, choices: rng.choice(list(choices)))
        if space.build_error(spec) is None:
            specs[spec.key()] = spec
        if len(specs) >= count:
            break
    return list(specs.values())


def fix_bounds(problem: Problem, space: SearchSpace, costs, measure_latency, *, seed: int) -> tuple[dict, str]:
    """Normalisation bounds fixed at the start of the run (stored in search.yaml, never moved)."""
    specs = _sample_specs(space, seed, BOUND_SAMPLE) + [catalog_spec(b) for b in problem.baselines]
    sampled = [costs(s) for s in specs]
    largest = max(specs, key=lambda s: costs(s).gmacs)
    upper = {
        "gmacs": problem.max_gmacs or 1.25 * max(c.gmacs for c in sampled),
        "params": (problem.max_params or 1.25 * max(c.params for c in sampled) / 1e6) * 1e6,
    }
    if problem.needs_latency:
        upper["latency"] = problem.max_latency_ms or 1.25 * measure_latency(largest)
    bounds = {"accuracy": [0.0, 1.0]}
    for name in problem.objectives:
        if name != "accuracy":
            bounds[name] = [0.0, float(upper[name])]
    note = (
        f"accuracy in [0, 1]; cost objectives from 0 to their constraint when one is set, else to 1.25 x the "
        f"largest of {len(specs)} architectures sampled from the space with seed {seed}"
    )
    return bounds, note


def _settle_orphans(config: SearchConfig, study: "optuna.Study", baseline_study: "optuna.Study | None") -> None:
    """On resume. The run's own study.db: our flock proves every RUNNING trial an orphan. A shared
    ``--storage``: a driver elsewhere may be alive, so wait for the heartbeats to go stale (nas.settle)."""
    if config.execution.storage:
        await_orphans([study, baseline_study], config.execution.heartbeat_interval_s, main=study,
                      say=lambda text: print(text, file=sys.stderr))
    requeue_interrupted(study, baseline_study)


def start_ray(execution: Execution) -> bool:
    """Join ``--address`` or start local Ray (dashboard off unless asked, docs/ray.md). Returns whether we started it."""
    if ray.is_initialized():
        return False
    if execution.address:
        ray.init(address=execution.address, **ray_init_kwargs(joining=True))
    else:
        init_local_ray(**ray_init_kwargs(joining=False))
    return True


def check_resources(execution: Execution, measurer: dict[str, float]) -> None:
    available = ray.cluster_resources()
    cpus, gpus = available.get("CPU", 0), available.get("GPU", 0)
    need_cpu = execution.cpus_per_trial + measurer.get("num_cpus", 0)
    need_gpu = execution.gpus_per_trial + measurer.get("num_gpus", 0)
    if need_cpu > cpus or need_gpu > gpus:
        raise UserInputError(
            f"one trial ({execution.cpus_per_trial:g} CPU, {execution.gpus_per_trial:g} GPU) plus the latency measurer "
            f"({_resources_label(measurer)}) needs {need_cpu:g} CPU and {need_gpu:g} GPU, more than the cluster has "
            f"({cpus:g} CPU, {gpus:g} GPU); lower --cpus-per-trial / --gpus-per-trial or join a bigger cluster "
            f"with --address"
        )


def _resources_label(resources: dict[str, float]) -> str:
    if not resources:
        return "none: no latency objective"
    return f"{resources.get('num_cpus', 0):g} CPU, {resources.get('num_gpus', 0):g} GPU"


def _measurer_cores(problem: Problem, execution: Execution) -> list[int]:
    """On a local CPU search the measurer pins itself to these cores and trials stay off them."""
    if not problem.needs_latency or execution.address:
        return []
    from runners.latency import get_profile

    profile = get_profile(problem.latency_profile)
    return [] if profile.device.startswith("cuda") else measurer_cores(int(profile.threads or 1))


def trial_settings(config: SearchConfig, *, measurer_name: str | None) -> TrialSettings:
    """What every trial of ``config`` trains with (the search and `nas bench record` share it)."""
    return TrialSettings(
        proxy=config.proxy, cpus_per_trial=config.execution.cpus_per_trial,
        gpus_per_trial=config.execution.gpus_per_trial, measurer_name=measurer_name,
        latency_profile=config.problem.latency_profile, max_latency_ms=config.problem.max_latency_ms,
        faults=dict(config.extra.get("faults", {})),
        measurer_cores=tuple(_measurer_cores(config.problem, config.execution)),
    )


def _search_yaml(config: SearchConfig, bounds: dict, note: str) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "name": config.name,
        "objectives": [{"name": o, "direction": OBJECTIVES[o].direction} for o in config.problem.objectives],
        "bounds": bounds,
        "bounds_note": note,
        "reference_point": [REFERENCE_POINT] * len(config.problem.objectives),
        "config": config.to_dict(),
        "environment": environment(),
    }


def _warn_if_other_machine(config: SearchConfig, recorded: dict[str, Any]) -> None:
    """Latencies are this machine's: a latency search resumed elsewhere would mix two machines' figures."""
    if not config.problem.needs_latency or config.execution.address:
        return
    here = environment()
    if (recorded.get("hostname"), recorded.get("cpu")) != (here["hostname"], here["cpu"]):
        print(f"warning: this run's latencies were measured on {recorded.get('hostname')} ({recorded.get('cpu')}); "
              f"resuming on {here['hostname']} ({here['cpu']}) mixes two machines' latencies", file=sys.stderr)


def load_run_config(run_dir: Path) -> SearchConfig:
    """The config a run was started with (``nas search --resume``)."""
    stored = RunDir(run_dir).read_search()
    return SearchConfig.from_dict({**stored["config"], "runs_dir": str(run_dir.parent), "name": run_dir.name})


def run_search(config: SearchConfig, *, resume: bool = False, show_progress: bool = True) -> SearchOutcome:
    """Run (or resume) the search ``config`` describes; returns when it is done or its budget is spent.

    It writes the run directory, not the report: the caller (``nas search``, ``nas demo``) builds it after.
    """
    run = RunDir(Path(config.runs_dir) / config.name)
    if resume and not run.exists():
        raise UserInputError(f"cannot resume {run.path}: not a run directory (no search.yaml)")
    if not resume and run.path.exists() and any(p.name != ".lock" for p in run.path.iterdir()):
        raise UserInputError(f"run {run.path} already exists; resume it with --resume {run.path} or pick another --name")
    space = load_space(str(run.space_file) if resume and run.space_file.is_file() else config.space)
    for name in config.problem.baselines:
        catalog_spec(name)
    lock = None
    started_ray = False
    measurer = None
    try:
        # Ray first: a search asking for more CPUs/GPUs than the cluster has is refused before any run file
        resources = measurer_resources(config.problem.latency_profile) if config.problem.needs_latency else {}
        started_ray = start_ray(config.execution)
        check_resources(config.execution, resources)
        lock = RunLock(run).acquire()
        storage = run.storage_url(config.execution.storage)
        study = open_study(config, storage, num_params=len(space.parameters()), create=not resume)
        baseline_study = open_baseline_study(config, storage) if config.problem.baselines else None
        if resume:
            _settle_orphans(config, study, baseline_study)
        measurer_name = None
        if config.problem.needs_latency:
            measurer_name = f"videonas-measurer-{run.path.resolve()}"
            measurer = LatencyMeasurer.options(name=measurer_name, **resources).remote(
                config.problem.latency_profile, str(run.costs_dir.resolve())
            )
        static_costs = static_cost_fn(config.problem)
        if resume:
            stored = run.read_search()
            bounds = stored["bounds"]
            _warn_if_other_machine(config, stored.get("environment") or {})
        else:
            bounds, note = fix_bounds(
                config.problem, space, static_costs,
                lambda spec: ray.get(measurer.measure.remote(spec.to_dict())), seed=config.seed,
            )
            if Path(config.space).is_file():  # a preset is part of videonas; a file may not travel with the run
                atomic_write(run.space_file, Path(config.space).read_text())
            run.write_search(_search_yaml(config, bounds, note))
        data = build_proxy_data(config.data, frames=config.proxy.frames, size=config.proxy.size, seed=config.seed)
        scheduler = make_scheduler(
            config.scheduler.name,
            [(OBJECTIVES[o].column, "max" if OBJECTIVES[o].direction == "maximize" else "min") for o in config.problem.objectives],
            config.scheduler.grace_period,
            config.scheduler.reduction_factor,
            config.proxy.epochs,
            time_attr="epoch",
        )

        def export() -> None:
            run.write_trials(trials_frame(config.problem, config.proxy.epochs, study, baseline_study))

        core = SearchCore(
            config=config, study=study, baseline_study=baseline_study, space=space, static_costs=static_costs,
            bounds={k: tuple(v) for k, v in bounds.items()},
            on_change=export,
        )
        settings = trial_settings(config, measurer_name=measurer_name)
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, data=data, settings=settings),
            {"cpu": config.execution.cpus_per_trial, "gpu": config.execution.gpus_per_trial},
        )
        progress = SearchProgress(config, core, scheduler, bounds, enabled=show_progress)
        attempt = sum(1 for p in run.ray_dir.glob("attempt-*")) if run.ray_dir.exists() else 0
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=StudySearcher(core), scheduler=scheduler, num_samples=-1,
                max_concurrent_trials=config.execution.max_concurrent, reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=f"attempt-{attempt}", storage_path=str(run.ray_dir.resolve()), verbose=0,
                callbacks=[progress], log_to_file=True,
            ),
        )
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our live view replaces Ray's console output
        with progress, Heartbeat([study, baseline_study], config.execution.heartbeat_interval_s):
            tuner.fit()
        core.close_pending()
        export()
        return SearchOutcome(run.path, core.counted(), core.exhausted_message)
    finally:
        if measurer is not None:
            ray.kill(measurer)
        if started_ray:
            ray.shutdown()
        if lock is not None:
            lock.release()
