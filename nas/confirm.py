"""Confirming a search's front (``nas confirm RUN``): its candidates trained again with further seeds, averaged, re-ranked.

A search ranks every architecture by one proxy run, and one run's accuracy carries both the validation set's
binomial noise and the run-to-run spread of training (docs/proxy.md): a front point may be there by luck, and
its neighbour may be missing by bad luck. ``nas confirm`` (docs/search.md, "Confirming the front"):

1. takes the run's front candidates: its Pareto front, most accurate first, at most ``--top``;
2. trains each with ``--seeds`` further search seeds ``s + 1 .. s + N`` (``s``: the run's ``--seed``; another draw
   of the synthetic clips and another initialisation, the same proxy settings) through the executor a search
   uses (:func:`nas.sim.record.record_table`: Ray Tune or the local pool, the same trial body), into the
   recorded table ``RUN/confirm/table.parquet``, rewritten after every trial (an interrupted confirmation
   resumes where it stopped; a second call with more seeds trains only the new ones);
3. values each confirmed architecture at its mean accuracy over every run (the search's included), with the
   standard error of that mean, and computes the front again over the run's COMPLETE feasible trials with
   those means (:func:`rerank`). ``RUN/confirmed.parquet`` holds the front before and after; the report draws
   both and ``nas confirm`` prints them.

Costs are not re-measured: GMACs and parameters are exact, and latency is the search's measurement.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nas.config import SearchConfig, load_run_config
from nas.objectives import OBJECTIVES
from nas.pareto import pareto_mask, to_minimization
from nas.runmodel import CONFIRMED_DTYPES, RunDir, front_candidates
from space import spec_from_dict
from space.errors import UserInputError


@dataclass(frozen=True)
class ConfirmOutcome:
    run_dir: Path
    confirmed: pd.DataFrame  # confirmed.parquet's rows
    trained: int  # proxy runs trained by this call


def check_confirm_args(run_dir: Path, *, seeds: int, top: int, workers: int) -> tuple[SearchConfig, pd.DataFrame]:
    """Every user error before anything is trained or written: returns the run's config and its candidates."""
    from nas.runlock import held_by_a_driver

    for flag, value in (("--seeds", seeds), ("--top", top), ("--workers", workers)):
        if value < 1:
            raise UserInputError(f"{flag} {value} is not allowed; allowed: an integer >= 1")
    run = RunDir(run_dir)
    config = load_run_config(run_dir)
    if held_by_a_driver(run):
        raise UserInputError(f"run {run_dir} is being searched (its lock is held); confirm it when the search ends")
    trials = run.read_trials()
    candidates = front(trials, config.problem.objectives)
    if candidates.empty:
        raise UserInputError(f"run {run_dir} has no COMPLETE, feasible trial yet: nothing to confirm")
    return config, candidates.sort_values("accuracy", ascending=False).head(top)


def confirm_front(run_dir: Path, *, seeds: int = 2, top: int = 8, workers: int = 1, executor: str | None = None,
                  show_progress: bool = True) -> ConfirmOutcome:
    """Train the run's front candidates with ``seeds`` further seeds and write ``confirmed.parquet`` (module doc)."""
    from nas.sim.record import Job, record_table
    from nas.sim.table import read_table

    config, candidates = check_confirm_args(run_dir, seeds=seeds, top=top, workers=workers)
    run = RunDir(run_dir)
    # the proxy the search trained, without what only a search needs (constraints; latency: the search measured it)
    costs_only = tuple(o for o in config.problem.objectives if o != "latency") or ("accuracy", "gmacs")
    training = config.replace(objectives=costs_only, max_gmacs=None, max_params=None, max_latency_ms=None,
                              baselines=(), executor=executor or config.execution.executor,
                              space=str(run.space_file) if run.space_file.is_file() else config.space)
    specs = [spec_from_dict(json.loads(text)) for text in candidates["spec"]]
    jobs = [Job(spec, config.seed + k, None) for k in range(1, seeds + 1) for spec in specs]
    outcome = record_table(config=training, out_dir=run.confirm_dir, seeds=seeds, workers=workers,
                           show_progress=show_progress, jobs=jobs)
    table = read_table(outcome.table_path)
    confirmed = rerank(run.read_trials(), table.rows, config.problem.objectives, epochs=config.proxy.epochs,
                       search_seed=config.seed)
    from space.files import atomic_write

    atomic_write(run.confirmed_file, lambda tmp: confirmed.to_parquet(tmp, index=False))
    return ConfirmOutcome(run_dir, confirmed, outcome.recorded)


def front(trials: pd.DataFrame, objectives: tuple[str, ...]) -> pd.DataFrame:
    """The Pareto front of the run's COMPLETE feasible search trials (not baselines)."""
    candidates = front_candidates(trials)
    columns = [OBJECTIVES[o].column for o in objectives]
    candidates = candidates.dropna(subset=columns)
    if candidates.empty:
        return candidates
    return candidates[_front_mask(candidates, objectives)]


def _front_mask(frame: pd.DataFrame, objectives: tuple[str, ...]) -> pd.Series:
    columns = [OBJECTIVES[o].column for o in objectives]
    directions = [OBJECTIVES[o].direction for o in objectives]
    return pd.Series(pareto_mask(to_minimization(frame[columns].astype(float).to_numpy(), directions)),
                     index=frame.index)


def rerank(trials: pd.DataFrame, confirmations: pd.DataFrame, objectives: tuple[str, ...], *, epochs: int,
           search_seed: int) -> pd.DataFrame:
    """The front before and after averaging each confirmed architecture over its seeds (``confirmed.parquet``).

    ``confirmations``: recorded-table rows (spec_key, seed, epoch, accuracy, error); a seed counts when it
    reached ``epochs`` without error. The search's own accuracy is one of the seeds averaged. Trials not
    confirmed keep their one accuracy.
    """
    columns = [OBJECTIVES[o].column for o in objectives]
    candidates = front_candidates(trials).dropna(subset=columns).copy()
    done = confirmations[(confirmations["epoch"] == epochs) & confirmations["error"].isna()]
    done = done[done["seed"] != search_seed]  # the search's own run is the trial itself
    extra = {key: [float(a) for a in group.sort_values("seed")["accuracy"]] for key, group in done.groupby("spec_key")}
    before = _front_mask(candidates, objectives)
    runs = [[float(a), *extra.get(k, [])] for a, k in zip(candidates["accuracy"], candidates["spec_key"])]
    candidates["accuracy_search"] = candidates["accuracy"].astype(float)
    candidates["accuracy"] = [statistics.fmean(r) for r in runs]
    candidates["accuracy_se"] = [statistics.stdev(r) / math.sqrt(len(r)) if len(r) > 1 else None for r in runs]
    candidates["seeds"] = [len(r) for r in runs]
    candidates["accuracies"] = [json.dumps(r) for r in runs]
    candidates["front_before"] = before
    candidates["front_after"] = _front_mask(candidates, objectives)
    shown = candidates[candidates["front_before"] | candidates["front_after"] | (candidates["seeds"] > 1)]
    shown = shown.sort_values("accuracy", ascending=False)
    out = pd.DataFrame({column: shown[column] for column in CONFIRMED_DTYPES}).reset_index(drop=True)
    for column, dtype in CONFIRMED_DTYPES.items():
        out[column] = (pd.to_numeric(out[column], errors="coerce").astype(dtype) if dtype in ("float64", "Int64")
                       else out[column].astype(dtype))
    return out
