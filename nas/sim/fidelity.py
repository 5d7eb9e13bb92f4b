"""Simulator fidelity: a real search run and its simulation from the table, same seed and settings, side by side.

The run's ``search.yaml`` gives the config (sampler, scheduler, seed, trials, time budget, baselines) and the
normalisation bounds; the simulation uses them unchanged, replays the run's seed when the table recorded it
(a trial of a search with seed s trained exactly as the table's seed-s row: same trial seed, same data),
and as many workers as the run had trials training at once. Both hypervolume curves value each trial at
its *own* observed accuracy (as the run's report does), on the run's bounds and reference point, against
seconds since the run's first trial started. The gap: final hypervolume (absolute and relative), the time
each needs to reach its final hypervolume, elapsed time, trials trained, and how many leading trials
trained the same architectures in the same order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.config import SearchConfig
from nas.trialsfile import trials_frame
from nas.runmodel import TRAINED_STATUSES, RunDir, front_candidate_mask
from nas.sim.compare import hv_curve, time_to_reach
from nas.executors.simulated import ray_pending
from nas.sim.replay import simulate
from nas.sim.table import Table
from space.errors import UserInputError
from space.searchspace import SearchSpace, load_space, parse_space, preset_names


@dataclass
class Fidelity:
    times: list[float]
    real_curve: list[float]
    sim_curve: list[float]
    figures: dict[str, Any]


def run_config(run: RunDir) -> tuple[SearchConfig, dict[str, tuple[float, float]]]:
    stored = run.read_search()
    config = SearchConfig.from_dict({**stored["config"], "runs_dir": str(run.path.parent), "name": run.path.name})
    bounds = {k: (float(v[0]), float(v[1])) for k, v in stored["bounds"].items()}
    return config, bounds


def table_space(config: SearchConfig, table: Table) -> SearchSpace:
    """The run's space: its preset, or the space the table embeds when the run named a file."""
    if config.space in preset_names() or Path(config.space).is_file():
        return load_space(config.space)
    return parse_space(table.manifest["space_yaml"])


def concurrency(frame: pd.DataFrame) -> int:
    """The most trials that trained at the same time in a run (its effective worker count).

    Training, not the trial's ``started_at``: Ray suggests a trial ahead and it waits for a worker; a
    trial trains from its first epoch's ``train_started_at`` (its history) to its ``finished_at``.
    """
    trained = frame[frame["status"].isin(TRAINED_STATUSES)].dropna(subset=["finished_at"])
    starts = [_train_start(row) for row in trained.itertuples()]
    events = sorted([(t, 1) for t in starts] + [(t, -1) for t in trained["finished_at"]], key=lambda e: (e[0], e[1]))
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return max(best, 1)


def _train_start(row) -> float:
    history = json.loads(row.history) if isinstance(row.history, str) and row.history else []
    started = [e.get("train_started_at") for e in history if e.get("train_started_at") is not None]
    return float(started[0]) if started else float(row.started_at)


def shifted(frame: pd.DataFrame) -> pd.DataFrame:
    """Times as seconds since the run's first trial started."""
    start = frame["started_at"].min()
    out = frame.copy()
    out["started_at"] = out["started_at"] - start
    out["finished_at"] = out["finished_at"] - start
    return out


def compare_run(run_dir: Path, table: Table, *, points: int = 200) -> Fidelity:
    """Simulate ``run_dir``'s search from ``table`` and compare the two hypervolume curves."""
    run = RunDir(Path(run_dir))
    config, bounds = run_config(run)
    real = run.read_trials()
    if not front_candidate_mask(real).any():
        raise UserInputError(f"{run_dir} has no COMPLETE feasible trial: nothing to compare")
    space = table_space(config, table)
    workers = concurrency(real)
    outcome = simulate(config=config, table=table, space=space, workers=workers, bounds=bounds,
                       table_seed=config.seed, pending=ray_pending(config))
    simulated = trials_frame(config.problem, config.proxy.epochs, outcome.study, outcome.baseline_study)
    real, simulated = shifted(real), shifted(simulated)
    end = float(max(real["finished_at"].max(), simulated["finished_at"].max()))
    times = np.linspace(0.0, end, points)
    real_curve = hv_curve(real, config, bounds, times)
    sim_curve = hv_curve(simulated, config, bounds, times)
    real_final, sim_final = float(real_curve[-1]), float(sim_curve[-1])
    real_keys = _trained_keys(real)
    sim_keys = _trained_keys(simulated)
    same_prefix = next((i for i, (a, b) in enumerate(zip(real_keys, sim_keys)) if a != b), min(len(real_keys), len(sim_keys)))
    figures = {
        "run": str(run.path), "sampler": config.sampler, "scheduler": config.scheduler.name, "seed": config.seed,
        "workers": workers, "table_seed_replayed": config.seed in table.seeds,
        "real_final_hv": real_final, "sim_final_hv": sim_final, "final_hv_gap": sim_final - real_final,
        "final_hv_gap_relative": (sim_final - real_final) / real_final if real_final else math.nan,
        "real_time_to_final_s": time_to_reach(real_curve, times, real_final),
        "sim_time_to_final_s": time_to_reach(sim_curve, times, sim_final),
        "real_elapsed_s": float(real["finished_at"].max()), "sim_elapsed_s": float(simulated["finished_at"].max()),
        "real_trained": int(real["status"].isin(TRAINED_STATUSES).sum()),
        "sim_trained": int(simulated["status"].isin(TRAINED_STATUSES).sum()),
        "same_leading_architectures": int(same_prefix),
        "same_leading_outcomes": _same_prefix(_outcomes(real), _outcomes(simulated)),
        "trials": len(_outcomes(real)),  # search trials: baselines are not sampled, so not compared
    }
    return Fidelity(times.tolist(), real_curve.tolist(), sim_curve.tolist(), figures)


def _outcomes(frame: pd.DataFrame) -> list[tuple]:
    """Every trial in order: (architecture, status, accuracy to 4 places)."""
    ordered = frame.sort_values("trial_id") if "trial_id" in frame else frame
    ordered = ordered[ordered["trial_id"] >= 0]  # search trials; baselines have negative ids
    return [(k, s, None if a != a else round(float(a), 4)) for k, s, a in
            zip(ordered["spec_key"], ordered["status"], ordered["accuracy"])]


def _same_prefix(a: list, b: list) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _trained_keys(frame: pd.DataFrame) -> list[str]:
    trained = frame[frame["status"].isin(TRAINED_STATUSES)].sort_values("started_at")
    return trained["spec_key"].tolist()
