"""Search strategies compared on a recorded table: samplers x schedulers x seeds, simulated (no Ray).

Every strategy gets the same simulated wall-clock budget and worker count. What is measured:

* **hypervolume against simulated wall-clock** of each run's COMPLETE, feasible trials. Each found
  architecture is valued at the table's *seed-mean* final accuracy (and its recorded costs), so the
  curve measures what the search found, not which seed it happened to replay; the best achievable
  hypervolume (every architecture of the table, valued the same way) is then an exact upper bound and
  the regret ``best - found`` is exact and >= 0;
* normalisation: accuracy on [0, 1]; each cost objective on [0, 1.25 x its largest value in the table]
  (fixed per table, the same for every run); reference point 1 in every normalised objective;
* trials trained (COMPLETE + PRUNED + FAIL, docs/search.md, Trial lifecycle) and the time each run needs to reach the
  median final hypervolume of random + fifo (``inf`` when it never does within the budget).
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

import nas.config as config_module
from nas.config import SearchConfig
from nas.trialsfile import trials_frame
from nas.objectives import OBJECTIVES
from nas.runmodel import arch_label, front_candidate_mask
from nas.pareto import hypervolume, hypervolume_history, normalize, pareto_mask
from nas.sim.replay import Overheads, simulate
from nas.sim.table import Table
from space.searchspace import SearchSpace

# the names are nas.config's; the comparison lists the baseline strategy's sampler and scheduler first
SAMPLERS = ("random",) + tuple(s for s in config_module.SAMPLERS if s != "random")
SCHEDULERS = ("fifo",) + tuple(s for s in config_module.SCHEDULERS if s != "fifo")
BASELINE_STRATEGY = ("random", "fifo")
COST_BOUND_FACTOR = 1.25
REFERENCE = 1.0


def table_bounds(table: Table, objectives: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """Fixed normalisation: accuracy [0, 1]; a cost [0, 1.25 x the table's largest value]."""
    bounds = {}
    for name in objectives:
        column = OBJECTIVES[name].column
        if column == "accuracy":
            bounds[name] = (0.0, 1.0)
        else:
            bounds[name] = (0.0, COST_BOUND_FACTOR * float(table.rows[column].max()))
    return bounds


def mean_accuracy(table: Table) -> dict[str, float]:
    """Per architecture: its final-epoch validation accuracy averaged over the recorded seeds (failures: 0)."""
    last = table.trials()
    values = last["accuracy"].where(last["error"].isna(), 0.0).fillna(0.0)
    return {k: float(v) for k, v in values.groupby(last["spec_key"]).mean().items()}


def normalised_points(frame: pd.DataFrame, config: SearchConfig, bounds: dict,
                      accuracy_of: Callable[[pd.Series], float] | None = None) -> np.ndarray:
    """Objective vectors of ``frame``'s rows, normalised (0 best, 1 worst); accuracy from ``accuracy_of`` if given."""
    if frame.empty:
        return np.empty((0, len(config.problem.objectives)))
    columns = []
    for name in config.problem.objectives:
        column = OBJECTIVES[name].column
        if column == "accuracy" and accuracy_of is not None:
            columns.append(frame.apply(accuracy_of, axis=1).to_numpy(dtype=float))
        else:
            columns.append(frame[column].to_numpy(dtype=float))
    values = np.column_stack(columns)
    directions = [OBJECTIVES[o].direction for o in config.problem.objectives]
    return normalize(values, directions, [bounds[o] for o in config.problem.objectives])


def _searchable(table: Table) -> tuple[pd.DataFrame, dict[str, float]]:
    """Every architecture of the table a search could complete (not baselines, not failed), one row each, and
    each architecture's seed-mean final accuracy (truth, :func:`mean_accuracy`)."""
    last = table.trials().drop_duplicates("spec_key")
    last = last[last["baseline"].isna() & last["error"].isna()]
    means = mean_accuracy(table)
    return last, means


def best_hypervolume(table: Table, config: SearchConfig, bounds: dict) -> float:
    """The hypervolume of every architecture of the table that a search could complete (not baselines)."""
    last, means = _searchable(table)
    points = normalised_points(last, config, bounds, lambda row: means[row["spec_key"]])
    return hypervolume(points, [REFERENCE] * len(config.problem.objectives))


def best_front(table: Table, config: SearchConfig, bounds: dict) -> list[dict]:
    """The architectures of the best achievable front (non-dominated at truth), cheapest GMACs first: spec key,
    family, kind (the ResNets' convolution, else the family), a short label, accuracy at truth and each cost
    objective's value."""
    last, means = _searchable(table)
    points = normalised_points(last, config, bounds, lambda row: means[row["spec_key"]])
    front = last[pareto_mask(points)] if len(points) else last
    out = []
    for _, row in front.sort_values("gmacs").iterrows():
        costs = {name: float(row[OBJECTIVES[name].column]) for name in config.problem.objectives
                 if OBJECTIVES[name].column != "accuracy"}
        spec = json.loads(row["spec"])
        out.append({"spec_key": row["spec_key"], "family": row["family"], "kind": spec.get("conv", spec["family"]),
                    "label": arch_label(row), "accuracy": means[row["spec_key"]], **costs})
    return out


def hv_curve(frame: pd.DataFrame, config: SearchConfig, bounds: dict, times: np.ndarray,
             accuracy_of: Callable[[pd.Series], float] | None = None) -> np.ndarray:
    """The hypervolume of the front found by each time in ``times`` (COMPLETE feasible search trials)."""
    done = frame[front_candidate_mask(frame)]
    done = done.sort_values("finished_at")
    points = normalised_points(done, config, bounds, accuracy_of)
    history = hypervolume_history(points, [REFERENCE] * len(config.problem.objectives)) if len(points) else np.zeros(0)
    finished = done["finished_at"].to_numpy(dtype=float)
    reached = np.searchsorted(finished, times, side="right")  # trials finished at or before each time
    return np.where(reached > 0, history[np.maximum(reached - 1, 0)] if len(history) else 0.0, 0.0)


def time_to_reach(curve: np.ndarray, times: np.ndarray, target: float) -> float:
    """The first time the curve reaches ``target`` (``inf`` if never)."""
    hits = np.flatnonzero(curve >= target - 1e-12)
    return float(times[hits[0]]) if len(hits) else math.inf


@dataclass
class Run:
    sampler: str
    scheduler: str
    seed: int
    frame: pd.DataFrame  # the run's trials (trials.parquet columns), simulated seconds
    trained: int
    elapsed_s: float
    study: object = None  # the run's Optuna study, when asked for (a warm start's source)


def run_strategies(*, config: SearchConfig, table: Table, space: SearchSpace, seeds: int, workers: int,
                   budget_s: float, bounds: dict, strategies: Sequence[tuple[str, str]] | None = None,
                   overheads: Overheads | None = None, on_run: Callable[[Run], None] = lambda run: None,
                   processes: int = 1) -> list[Run]:
    """Simulate each (sampler, scheduler) of ``strategies`` (default: every sampler x scheduler) x seed at
    ``budget_s`` simulated seconds and ``workers`` workers.

    ``processes`` > 1 runs the simulations in that many spawned processes (each run is independent and
    deterministic, so the results are the same; the GP sampler's proposals are what takes long). There each
    process rebuilds the space from the table's embedded YAML, which has the same architectures (checked).
    """
    strategies = strategies if strategies is not None else [(a, b) for a in SAMPLERS for b in SCHEDULERS]
    jobs = [(sampler, scheduler, seed) for sampler, scheduler in strategies for seed in range(seeds)]
    common = dict(config=config, table=table, workers=workers, budget_s=budget_s, bounds=bounds, overheads=overheads)
    if processes <= 1:
        runs = []
        for job in jobs:
            runs.append(simulate_one(*job, space=space, **common))
            on_run(runs[-1])
        return runs
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(simulate_one, *job, space=None, **common) for job in jobs]
        runs = []
        for future in futures:  # in job order, so the result does not depend on which process ran what
            runs.append(future.result())
            on_run(runs[-1])
    return runs


@functools.lru_cache(maxsize=4)
def _parsed_space(space_yaml: str, name: str) -> SearchSpace:
    """One parse per process: the space caches which structures build, and building them is most of a run's time."""
    from space.searchspace import parse_space

    return parse_space(space_yaml, default_name=name)


def simulate_one(sampler: str, scheduler: str, seed: int, *, config: SearchConfig, table: Table,
                 space: SearchSpace | None, workers: int, budget_s: float, bounds: dict,
                 overheads: Overheads | None, warm=None, keep_study: bool = False) -> Run:
    """One strategy and seed; ``space=None`` parses the table's embedded space (in a spawned process);
    ``warm``: a :class:`nas.warmstart.WarmStart` the run starts from; ``keep_study``: keep the Optuna study in the
    returned run (a warm start's source)."""
    import optuna

    if space is None:
        space = _parsed_space(table.manifest["space_yaml"], str(table.manifest["space"]))
    run_config = config.replace(sampler=sampler, scheduler=scheduler, seed=seed, time_budget_s=budget_s,
                                name=f"{sampler}-{scheduler}-{seed}")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # GP's per-trial note on conditional parameters
    try:  # restored after: a library call must not leave the process's logging changed
        outcome = simulate(config=run_config, table=table, space=space, workers=workers, overheads=overheads,
                           bounds=bounds, warm=warm)
    finally:
        optuna.logging.set_verbosity(verbosity)
    frame = trials_frame(run_config.problem, run_config.proxy.epochs, outcome.study, outcome.baseline_study)
    return Run(sampler, scheduler, seed, frame, outcome.core.counted(), outcome.elapsed_s,
               outcome.study if keep_study else None)


def summarise(runs: list[Run], *, config: SearchConfig, table: Table, bounds: dict, budget_s: float,
              points: int = 121) -> dict:
    """Curves (median, IQR), best achievable HV, regret, trials trained and time to random+fifo's final HV."""
    times = np.linspace(0.0, budget_s, points)
    means = mean_accuracy(table)
    value = lambda row: means[row["spec_key"]]  # noqa: E731 - the valuation of a found architecture
    curves = {id(run): hv_curve(run.frame, config, bounds, times, value) for run in runs}
    best = best_hypervolume(table, config, bounds)
    front = best_front(table, config, bounds)
    baseline = [run for run in runs if (run.sampler, run.scheduler) == BASELINE_STRATEGY]
    target = statistics.median(float(curves[id(r)][-1]) for r in baseline) if baseline else math.nan
    strategies = []
    for sampler in dict.fromkeys(r.sampler for r in runs):
        for scheduler in dict.fromkeys(r.scheduler for r in runs):
            group = [r for r in runs if (r.sampler, r.scheduler) == (sampler, scheduler)]
            if not group:
                continue
            stack = np.vstack([curves[id(r)] for r in group])
            finals = [float(curves[id(r)][-1]) for r in group]
            reach = [time_to_reach(curves[id(r)], times, target) for r in group]
            median_reach = float(np.median(reach)) if reach else math.inf  # inf when most runs never reach it
            strategies.append({
                "sampler": sampler, "scheduler": scheduler, "seeds": [r.seed for r in group],
                "final_hv": finals, "final_hv_median": statistics.median(finals),
                "final_hv_iqr": [float(np.percentile(finals, 25)), float(np.percentile(finals, 75))],
                "regret_median": best - statistics.median(finals),
                "trained": [r.trained for r in group], "trained_median": statistics.median(r.trained for r in group),
                "time_to_target": reach, "time_to_target_median": median_reach,
                "time_to_target_share": median_reach / budget_s if math.isfinite(median_reach) else None,
                "reached_target": sum(math.isfinite(t) for t in reach),
                "curve_median": np.median(stack, axis=0).tolist(),
                "curve_q25": np.percentile(stack, 25, axis=0).tolist(),
                "curve_q75": np.percentile(stack, 75, axis=0).tolist(),
            })
    return {"times": times.tolist(), "best_hv": best, "best_front": front, "target_hv": target, "strategies": strategies,
            "budget_s": budget_s, "bounds": {k: list(v) for k, v in bounds.items()},
            "reference_point": [REFERENCE] * len(config.problem.objectives), "objectives": list(config.problem.objectives)}


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """Every run's trials in one frame, with ``sampler``, ``scheduler`` and ``seed`` columns."""
    frames = []
    for run in runs:
        frame = run.frame.copy()
        frame.insert(0, "seed", run.seed)
        frame.insert(0, "scheduler", run.scheduler)
        frame.insert(0, "sampler", run.sampler)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def jsonable(value):
    """Infinite times as ``null`` in JSON."""
    return json.loads(json.dumps(value, default=float).replace("Infinity", "null").replace("NaN", "null"))
