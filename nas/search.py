"""``run_search``: one search from config to a finished run directory (what ``nas search`` calls; the CLI builds the report).

The order of events: lock the run, open (or resume) the study, fix the normalisation bounds, build the proxy
data once, then drive the search's loop (:class:`~nas.executors.loop.SearchLoop`: the Ray-free
:class:`~nas.core.searchcore.SearchCore` and the rung rule of :func:`nas.core.schedulers.make_rule`) through the
executor ``--executor`` names (:mod:`nas.executors`: Ray Tune by default, or the local process pool), exporting
``trials.parquet`` after every trial. The report is the caller's (the CLI builds it after a search). On resume
the study is the single source of truth: trials a dead driver left RUNNING are marked FAIL (``interrupted``)
and their parameters re-enqueued, the trials earlier attempts finished are replayed into the fresh rung rule
(:mod:`nas.core.resume`); Ray's old experiment state is ignored.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.config import Problem, SearchConfig, load_run_config  # noqa: F401  (re-exported)
from nas.core.resume import replay_earlier_trials
from nas.core.schedulers import make_rule
from nas.core.searchcore import SearchCore
from nas.executors import TrialBody, make_executor
from nas.executors.contracts import StaticCosts
from nas.executors.loop import SearchLoop
from nas.executors.trialrun import train_trial
from nas.trialsfile import trials_frame
from nas.warmstart import WarmStart, add_known_results, load_warm_start
from nas.interruption import INTERRUPTED_BY_DEATH, INTERRUPTED_BY_USER, SearchInterrupted, graceful_sigint, resume_command
from nas.objectives import OBJECTIVES
from nas.progress import SearchProgress
from nas.proxydata import build_proxy_data
from nas.runlock import RunLock, environment
from nas.runmodel import RUN_FORMAT, RunDir
from nas.runstart import check_before_creating, discard_unstarted, take_over_leftover
from nas.searchlog import LOG_FILE, SearchLog
from nas.heartbeat import Heartbeat, await_orphans
from nas.study import open_baseline_study, open_study, requeue_interrupted
from nas.tracking import Tracker, open_tracker
from runners.costs import model_costs
from space import ArchSpec, catalog_spec
from space.files import atomic_write
from space.searchspace import SearchSpace

if TYPE_CHECKING:
    import optuna

REFERENCE_POINT = 1.0  # in normalised objective space (0 = best bound, 1 = worst bound)
BOUND_SAMPLE = 12


@dataclass(frozen=True)
class SearchOutcome:
    run_dir: Path
    counted: int
    message: str | None
    tracker: Tracker | None = None  # --mlflow: the caller logs the report it builds there (docs/tracking.md)


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
    ``--storage``: a driver elsewhere may be alive, so wait for the heartbeats to go stale (nas.heartbeat)."""
    if config.execution.storage:
        await_orphans([study, baseline_study], config.execution.heartbeat_interval_s, main=study,
                      say=lambda text: print(text, file=sys.stderr))
    requeue_interrupted(study, baseline_study, INTERRUPTED_BY_DEATH)


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


def run_search(config: SearchConfig, *, resume: bool = False, show_progress: bool = True,
               trial: TrialBody = train_trial) -> SearchOutcome:
    """Run (or resume) the search ``config`` describes; returns when it is done or its budget is spent.

    ``trial`` is the body every trial runs (:func:`nas.executors.trialrun.train_trial`, or a wrapper with its
    signature: the fault tests wrap it to inject failures inside real trials, ``tests/nas/faults.py``).

    It writes the run directory, not the report: the caller (``nas search``, ``nas demo``) builds it after.
    Every user error is raised before a fresh run's directory exists (:mod:`nas.runstart`); a fresh run that
    fails or is interrupted before its first trial leaves nothing behind. Ctrl-C raises
    :class:`~nas.interruption.SearchInterrupted` once the run is settled (docs/reliability.md). What Ray and
    Optuna log goes to ``RUN/search.log``, not to the terminal (:mod:`nas.searchlog`).
    """
    run = RunDir(Path(config.runs_dir) / config.name)
    space = check_before_creating(config, run, resume=resume)  # a resume reads the space the run copied
    warm = load_warm_start(config, space) if config.warm_start and not resume else None  # checked here, added later
    if not resume:
        config = config.replace(study_name=config.study)  # fixed now, stored in search.yaml: a renamed run keeps it
    try:
        executor = make_executor(config, run, body=trial)  # imports Ray (--executor ray), which sets up its loggers
        with SearchLog() as log, executor:  # then Ray is started and its resources checked, logging to `log`
            created_dir = not run.path.exists()
            with RunLock(run):
                attempt = _Attempt(config, run, space, executor, log, resume=resume, show_progress=show_progress,
                                   warm=warm)
                try:
                    return attempt.run()
                except BaseException as exc:
                    if not resume and not attempt.trials_started:
                        discard_unstarted(config, run, created_dir=created_dir)
                        if isinstance(exc, KeyboardInterrupt):
                            raise SearchInterrupted(run.path, kept=False) from None
                    raise
    except KeyboardInterrupt:  # before the run was locked: nothing was written
        raise SearchInterrupted(run.path, kept=resume) from None


class _Attempt:
    """One driver's attempt at a run, holding its lock: set up, run the trials, settle how it ended."""

    def __init__(self, config: SearchConfig, run: RunDir, space: SearchSpace, executor: Any, log: SearchLog, *,
                 resume: bool, show_progress: bool, warm: WarmStart | None = None) -> None:
        self.config, self.run_dir, self.space, self.executor, self.log = config, run, space, executor, log
        self.warm = warm
        self.resume, self.show_progress = resume, show_progress
        self.trials_started = False  # a fresh run is discarded on failure until this is set
        self.study: optuna.Study | None = None
        self.baseline_study: optuna.Study | None = None
        self.tracker: Tracker | None = None

    def run(self) -> SearchOutcome:
        try:
            return self._run()
        except KeyboardInterrupt:
            if not self.resume and not self.trials_started:
                raise  # nothing worth keeping: the caller discards the fresh run
            if self.study is None:
                raise SearchInterrupted(self.run_dir.path, kept=True) from None
            return self._interrupted(INTERRUPTED_BY_USER)

    def _run(self) -> SearchOutcome:
        config, run = self.config, self.run_dir
        if not self.resume:
            take_over_leftover(config, run)
        else:  # a resumed run is kept whatever happens: its log goes on from here
            self.log.write_to(run.path / LOG_FILE)
        storage = run.storage_url(config.execution.storage)
        self.study = open_study(config, storage, num_params=len(self.space.parameters()), create=not self.resume)
        self.baseline_study = open_baseline_study(config, storage) if config.problem.baselines else None
        if self.resume:
            _settle_orphans(config, self.study, self.baseline_study)
        elif self.warm is not None:  # before the core and the rule: the sampler and the rungs start informed
            add_known_results(self.study, self.warm, config, self.space, at=time.time())
            if self.show_progress:
                print(self.warm.describe(), file=sys.stderr, flush=True)
        static_costs = static_cost_fn(config.problem)
        bounds = self._bounds(static_costs)
        data = build_proxy_data(config.data, frames=config.proxy.frames, size=config.proxy.size, seed=config.seed)
        core = SearchCore(
            config=config, study=self.study, baseline_study=self.baseline_study, space=self.space,
            static_costs=static_costs, bounds={k: tuple(v) for k, v in bounds.items()}, on_change=self.export,
            val_clips=len(data.val), num_classes=data.train.num_classes,
        )
        rule = make_rule(config, val_clips=len(data.val))
        replay_earlier_trials(rule, self.study, max_fidelity=config.proxy.epochs)  # a resume's rungs
        self.export()  # a missing or stale trials.parquet is rebuilt from the study before anything runs
        self._write_state("running")
        progress = SearchProgress(config, core, bounds, enabled=self.show_progress)
        self.trials_started = True
        self.log.write_to(run.path / LOG_FILE)  # the run is kept from now on, and so is its log
        self.tracker = open_tracker(config, run)  # --mlflow: synced from the study at every export
        if self.tracker is not None:
            self.export()
        heartbeat = Heartbeat([self.study, self.baseline_study], config.execution.heartbeat_interval_s)

        def on_first_ctrl_c() -> None:
            core.stop()
            self.executor.interrupt()

        with graceful_sigint(on_first=on_first_ctrl_c) as interrupted, progress, heartbeat:
            self.executor.run(SearchLoop(core, rule), data, refresh=progress.refresh)
        if interrupted():
            return self._interrupted(INTERRUPTED_BY_USER)
        core.close_pending()
        self.export()
        self._write_state("finished", message=core.exhausted_message)
        if self.tracker is not None:
            self.tracker.finish("FINISHED")
        return SearchOutcome(run.path, core.counted(), core.exhausted_message, self.tracker)

    def _bounds(self, static_costs) -> dict:
        """A fresh run fixes its normalisation bounds (and copies a space file); a resume reads them back."""
        config, run = self.config, self.run_dir
        if self.resume:
            stored = run.read_search()
            _warn_if_other_machine(config, stored.get("environment") or {})
            if stored.get("config") != config.to_dict():  # --trials and the other flags that may change
                run.write_search({**stored, "name": config.study, "config": config.to_dict()})
            return stored["bounds"]
        bounds, note = fix_bounds(config.problem, self.space, static_costs, self.executor.measure_latency,
                                  seed=config.seed)
        if Path(config.space).is_file():  # a preset is part of videonas; a file may not travel with the run
            atomic_write(run.space_file, Path(config.space).read_text())
        run.write_search(_search_yaml(config, bounds, note))
        return bounds

    def export(self) -> None:
        """``trials.parquet`` from the study, after every change; ``--mlflow`` syncs the same table."""
        frame = trials_frame(self.config.problem, self.config.proxy.epochs, self.study, self.baseline_study)
        self.run_dir.write_trials(frame)
        if self.tracker is not None:
            self.tracker.update(frame)

    def counted(self) -> int:
        return sum(1 for t in self.study.get_trials(deepcopy=False) if t.user_attrs.get("counted"))

    def _write_state(self, state: str, message: str | None = None) -> None:
        """``state.yaml``: how this driver leaves the run (``running`` until it ends; a SIGKILL leaves that)."""
        self.run_dir.write_state({
            "state": state, "counted": self.counted(), "trials": self.config.trials, "message": message,
            "pid": os.getpid(), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "resume": resume_command(self.run_dir.path) if state != "finished" else None,
        })

    def _interrupted(self, reason: str) -> SearchOutcome:
        """Ctrl-C: the trials that were running become INTERRUPTED (re-enqueued), the table is written."""
        requeue_interrupted(self.study, self.baseline_study, reason)
        self.export()
        self._write_state("interrupted", message=reason)
        if self.tracker is not None:
            self.tracker.finish("KILLED")
        raise SearchInterrupted(self.run_dir.path, kept=True, counted=self.counted(), wanted=self.config.trials)
