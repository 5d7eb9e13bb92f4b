"""A simulated executor: a search replayed against a recorded table on a discrete-event clock, no Ray.

It drives the same :class:`~nas.core.search.SearchCore` and the same rung rules (:mod:`nas.core.rungs`) as
the Ray Tune executor, over an in-memory Optuna study with the real sampler, so statuses, counting,
duplicates, constraints and fronts are exactly a real search's. Only training is replaced: a started trial
is looked up in the table (its architecture, at a recorded seed drawn per trial) and its epochs "happen"
when the clock reaches them.

The clock (simulated seconds from 0) jumps from event to event. ``workers`` trials run at once, and as in
Ray Tune one more is suggested ahead (``pending``; none with ``--max-concurrent``): it waits for the next
free worker, sampled without the results of the trials running meanwhile. A trial's timeline, from the
moment it starts on a worker:

* ``startup_s``: the executor's start of the trial to its first training step (the table's median
  ``startup_seconds``: Ray scheduling the trial, the actor, building the model);
* epoch k ends ``seconds_k`` later (the recorded epoch wall seconds, training and validation);
* the latency is measured alongside the first epoch (the real trial asks the measurer, then trains, and
  awaits the answer before its first report): the first report comes at
  ``startup_s + max(seconds_1, latency_s)``, ``latency_s`` being the architecture's recorded measuring time
  (the first, uncached measurement: every run measures afresh into its own ``costs/``).

Both overheads can be switched off (:meth:`Overheads.none`), which makes one FIFO worker's elapsed time the
plain sum of the recorded epoch seconds. At every report the rule decides (continue / stop) exactly as the
Ray adapter does, then a trial that stopped or finished is told ``on_trial_complete``; when the time budget
is spent the rule stops every trial at its next rung (the real search's ``--time-budget`` hook).
"""

from __future__ import annotations

import random
import statistics
import warnings
from dataclasses import dataclass
from heapq import heappop, heappush
from typing import Any

import optuna

from nas.config import SearchConfig
from nas.core.rungs import AshaRule, FifoRule, MoashaRule, RungRule, rung_levels
from nas.core.search import FINISHED, SearchCore, StaticCosts
from nas.objectives import OBJECTIVES
from nas.sim.table import Table, check_compatible, space_digest
from nas.study import make_sampler, metric_names
from space.errors import UserInputError
from space.searchspace import SearchSpace


@dataclass(frozen=True)
class Overheads:
    """What a real trial spends besides its epochs (seconds), modelled from the table's figures."""

    startup_s: float
    latency_s: dict[str, float]  # spec key -> seconds the measurer took for it

    @classmethod
    def from_table(cls, table: Table) -> "Overheads":
        startups = [float(v) for v in table.rows["startup_seconds"].dropna()]
        latency = {}
        for key, value in zip(table.rows["spec_key"], table.rows["latency_seconds"]):
            if value == value and value is not None:
                latency[key] = float(value)
        return cls(startup_s=statistics.median(startups) if startups else 0.0, latency_s=latency)

    @classmethod
    def none(cls) -> "Overheads":
        return cls(startup_s=0.0, latency_s={})

    def describe(self) -> str:
        measured = sorted(self.latency_s.values())
        latency = f"median {statistics.median(measured):.1f} s" if measured else "none"
        return (f"start-up {self.startup_s:.2f} s per trial (median recorded); latency measurement {latency} per "
                f"architecture, overlapping its first epoch")


class SimClock:
    """The simulated wall clock (seconds from the start); the core reads it through ``clock=``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SimOutcome:
    """A finished simulation: the study (all its trials and statuses), the elapsed simulated time, the rule."""

    core: SearchCore
    study: optuna.Study
    baseline_study: optuna.Study | None
    elapsed_s: float
    rule: RungRule
    seeds_used: dict[int, int]  # trial number -> recorded seed replayed


def make_rule(config: SearchConfig) -> RungRule:
    """The pure rule ``config.scheduler.name`` names, with the rungs a real search uses (``nas.moasha.make_scheduler``)."""
    objectives = [(OBJECTIVES[o].column, "max" if OBJECTIVES[o].direction == "maximize" else "min")
                  for o in config.problem.objectives]
    rungs = rung_levels(config.scheduler.grace_period, config.scheduler.reduction_factor, config.proxy.epochs)
    if config.scheduler.name == "fifo":
        return FifoRule(rungs=rungs, max_t=config.proxy.epochs)
    if config.scheduler.name == "asha":
        return AshaRule("accuracy", "max", rungs=rungs, max_t=config.proxy.epochs, eta=config.scheduler.reduction_factor)
    return MoashaRule(objectives, rungs=rungs, max_t=config.proxy.epochs, eta=config.scheduler.reduction_factor)


def table_static_costs(table: Table):
    """Static costs from the table (what the real search counts on the meta device, recorded once)."""
    per_key = {}
    for row in table.rows.drop_duplicates("spec_key").itertuples():
        per_key[row.spec_key] = StaticCosts(gmacs=float(row.gmacs), params=int(row.params),
                                            recurrent_params=int(row.recurrent_params))

    def costs(spec) -> StaticCosts:
        key = spec.key()
        if key not in per_key:
            raise UserInputError(f"the table has no architecture {key} ({spec.family}); record the space again")
        return per_key[key]

    return costs


def check_table(table: Table, *, config: SearchConfig, space: SearchSpace) -> None:
    """Refuse a table recorded with another version, space or settings, and baselines it lacks."""
    check_compatible(table.manifest, config=config, digest=space_digest(s.key() for s in space.enumerate()),
                     what="the table")
    from space import catalog_spec

    recorded = set(table.rows["spec_key"])
    missing = [b for b in config.problem.baselines if catalog_spec(b).key() not in recorded]
    if missing:
        raise UserInputError(f"the table has no baseline(s) {', '.join(missing)}; simulate with baselines=() "
                             "or record them")


@dataclass
class _Running:
    trial_id: str
    config: dict
    curve: list[dict]  # the recorded epoch rows (or one failure row)
    seed: int
    next_epoch: int = 0  # index into curve of the next report
    train_started: float = 0.0


def ray_pending(config: SearchConfig) -> int:
    """Trials Ray Tune asks our searcher for beyond those running: its ``max_pending_trials`` is 1 for a custom
    searcher, and with ``--max-concurrent`` its concurrency limiter caps running + pending at that number."""
    return 0 if config.execution.max_concurrent else 1


def simulate(*, config: SearchConfig, table: Table, space: SearchSpace, workers: int = 1,
             overheads: Overheads | None = None, table_seed: int | None = None,
             bounds: dict[str, tuple[float, float]], pending: int | None = None) -> SimOutcome:
    """Run ``config``'s search against ``table`` with ``workers`` simulated workers; deterministic for ``config.seed``.

    A trial replays the recorded seed ``table_seed`` when given (and recorded for it), else one drawn per
    trial (``random.Random(config.seed)``) from the architecture's recorded seeds. ``pending`` trials are
    suggested ahead of a free worker, as Ray Tune does (default :func:`ray_pending`): such a trial was
    sampled without the results of the trials running then, and starts when a worker frees up.
    """
    if workers < 1:
        raise UserInputError(f"--workers {workers} is not allowed; allowed: an integer >= 1")
    check_table(table, config=config, space=space)
    overheads = overheads if overheads is not None else Overheads.from_table(table)
    clock = SimClock()
    study = optuna.create_study(study_name=config.name, sampler=make_sampler(config, len(space.parameters())),
                                directions=config.problem.directions)
    with warnings.catch_warnings():  # set_metric_names is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metric_names(config.problem))
    baseline_study = optuna.create_study(study_name=config.name + "-baselines", directions=config.problem.directions) \
        if config.problem.baselines else None
    core = SearchCore(config=config, study=study, baseline_study=baseline_study, space=space,
                      static_costs=table_static_costs(table), bounds=bounds, clock=clock)
    rule = make_rule(config)
    draw = random.Random(config.seed)
    events: list[tuple[float, int, str]] = []
    running: dict[str, _Running] = {}
    queued: list[tuple[str, dict]] = []  # suggested, waiting for a worker
    pending = ray_pending(config) if pending is None else pending
    seeds_used: dict[int, int] = {}
    counter = 0
    finished = False
    budget_hit = False

    def start(trial_id: str, trial_config: dict) -> None:
        spec_key = _spec_key(trial_config)
        recorded = table.seeds_of(spec_key)
        seed = table_seed if table_seed in recorded else draw.choice(recorded)
        curve = table.curve(spec_key, seed).to_dict("records")
        seeds_used[trial_config["trial_number"]] = seed
        run = _Running(trial_id, trial_config, curve, seed, train_started=clock.now + overheads.startup_s)
        running[trial_id] = run
        first = curve[0]
        epoch_s = 0.0 if first["epoch"] == 0 else float(first["seconds"])
        wait = max(epoch_s, overheads.latency_s.get(spec_key, 0.0)) if config.problem.needs_latency else epoch_s
        schedule(run.train_started + wait, trial_id)

    def schedule(at: float, trial_id: str) -> None:
        nonlocal counter
        counter += 1
        heappush(events, (at, counter, trial_id))

    while True:
        while True:
            while queued and len(running) < workers:
                start(*queued.pop(0))
            if finished or len(running) + len(queued) >= workers + pending:
                break
            counter += 1
            trial_id = f"sim-{counter:05d}"
            suggestion = core.suggest(trial_id)
            if suggestion == FINISHED:
                finished = True
            elif suggestion is None:
                break
            else:
                queued.append((trial_id, suggestion))
        if not events:
            break
        clock.now, _, trial_id = heappop(events)
        if not budget_hit and core.out_of_budget():  # the real search checks this before each step
            budget_hit = True
            rule.stop_at_next_rung()
        run = running[trial_id]
        row = run.curve[run.next_epoch]
        exempt = bool(run.config.get("baseline"))
        if row["epoch"] == 0:  # a recorded failure: the trial reported its error
            result = {"accuracy": 0.0, "error": row["error"], "gmacs": run.config["gmacs"],
                      "params": run.config["params"], "latency_ms": _finite(row["latency_ms"])}
            core.on_trial_complete(trial_id, result)
            del running[trial_id]
            continue
        result = _result(run, row, config, clock.now)
        core.on_trial_result(trial_id, result)
        keep = rule.decide(trial_id, result["epoch"], result, exempt=exempt)
        run.next_epoch += 1
        if keep and run.next_epoch < len(run.curve):
            schedule(clock.now + float(run.curve[run.next_epoch]["seconds"]), trial_id)
            continue
        rule.completed(trial_id, result["epoch"], result, exempt=exempt)  # Ray: scheduler first, then searcher
        core.on_trial_complete(trial_id, result)
        del running[trial_id]
    core.close_pending()
    return SimOutcome(core, study, baseline_study, clock.now, rule, seeds_used)


def _result(run: _Running, row: dict, config: SearchConfig, now: float) -> dict[str, Any]:
    """The result the real trial reports for this epoch (the fields the core and the rules read)."""
    latency = _finite(row["latency_ms"]) if config.problem.needs_latency else None
    result = {"epoch": int(row["epoch"]), "accuracy": float(row["accuracy"]), "loss": float(row["loss"]),
              "seconds": float(row["seconds"]), "data_wait_seconds": 0.0, "gmacs": run.config["gmacs"],
              "params": run.config["params"], "latency_ms": latency, "train_started_at": run.train_started,
              "reported_at": now, "train_seconds": now - run.train_started, "gate_open_rates": "{}"}
    if latency is not None:
        result["latency_profile"] = config.problem.latency_profile
    return result


def _finite(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def _spec_key(trial_config: dict) -> str:
    from space import spec_from_dict

    return spec_from_dict(trial_config["spec"]).key()

