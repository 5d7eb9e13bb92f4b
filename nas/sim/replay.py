"""A search replayed against a recorded table: the real search loop on the simulated executor, no Ray.

:func:`simulate` builds what a real search builds (an in-memory Optuna study with the real sampler, the
:class:`~nas.core.searchcore.SearchCore`, the rule of :func:`nas.core.schedulers.make_rule`) and runs it on
:class:`~nas.executors.simulated.SimulatedExecutor`, whose docstring says what it models. A comparison over
many seeds costs seconds (``nas bench search``); a real search and its simulation agree trial for trial
(``nas bench fidelity``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import optuna

from nas.config import SearchConfig
from nas.core.rungs import RungRule
from nas.core.resume import replay_earlier_trials
from nas.core.schedulers import make_rule
from nas.core.searchcore import SearchCore
from nas.executors.contracts import StaticCosts
from nas.executors.loop import SearchLoop
from nas.executors.simulated import Overheads, SimClock, SimulatedExecutor, ray_pending
from nas.sim.table import Table, check_compatible, space_digest, table_val_clips
from nas.study import make_sampler, metric_names
from nas.warmstart import WarmStart, add_known_results
from space.errors import UserInputError
from space.searchspace import SearchSpace

__all__ = ["Overheads", "SimOutcome", "check_table", "simulate", "table_static_costs", "table_val_clips"]


@dataclass
class SimOutcome:
    """A finished simulation: the study (all its trials and statuses), the elapsed simulated time, the rule."""

    core: SearchCore
    study: optuna.Study
    baseline_study: optuna.Study | None
    elapsed_s: float
    rule: RungRule
    seeds_used: dict[int, int]  # trial number -> recorded seed replayed


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


def simulate(*, config: SearchConfig, table: Table, space: SearchSpace, workers: int = 1,
             overheads: Overheads | None = None, table_seed: int | None = None,
             bounds: dict[str, tuple[float, float]], pending: int | None = None,
             warm: WarmStart | None = None) -> SimOutcome:
    """Run ``config``'s search against ``table`` with ``workers`` simulated workers; deterministic for ``config.seed``.

    A trial replays the recorded seed ``table_seed`` when given (and recorded for it), else one drawn per trial
    (``random.Random(config.seed)``) from the architecture's recorded seeds. ``pending`` trials are requested
    ahead of a free worker, as Ray Tune does (default :func:`~nas.executors.simulated.ray_pending`). ``warm``: known
    results added to the study at simulated time 0, as ``nas search --warm-start`` adds them (:mod:`nas.warmstart`).
    """
    if workers < 1:
        raise UserInputError(f"--workers {workers} is not allowed; allowed: an integer >= 1")
    check_table(table, config=config, space=space)
    clock = SimClock()
    study = optuna.create_study(study_name=config.name, sampler=make_sampler(config, len(space.parameters())),
                                directions=config.problem.directions)
    with warnings.catch_warnings():  # set_metric_names is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metric_names(config.problem))
    baseline_study = optuna.create_study(study_name=config.name + "-baselines", directions=config.problem.directions) \
        if config.problem.baselines else None
    if warm is not None:
        add_known_results(study, warm, config, space, at=0.0)
    core = SearchCore(config=config, study=study, baseline_study=baseline_study, space=space,
                      static_costs=table_static_costs(table), bounds=bounds, clock=clock,
                      val_clips=table_val_clips(table))
    rule = make_rule(config, val_clips=table_val_clips(table))
    if warm is not None:  # the rungs rank new trials against the known results' curves, as nas.search does
        replay_earlier_trials(rule, study, max_fidelity=config.proxy.epochs)
    executor = SimulatedExecutor(
        table, clock, seed=config.seed, workers=workers, pending=ray_pending(config) if pending is None else pending,
        overheads=overheads if overheads is not None else Overheads.from_table(table), table_seed=table_seed,
        latency_profile=config.problem.latency_profile if config.problem.needs_latency else None)
    executor.run(SearchLoop(core, rule))
    core.close_pending()
    return SimOutcome(core, study, baseline_study, clock.now, rule, executor.seeds_used)
