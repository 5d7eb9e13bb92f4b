"""What the report says about a run, as plain data: trial groups, the front, hypervolume, gates, retrain.

Decisions (see docs/reports.md):

- The **front** is the non-dominated set of the searched trials that are COMPLETE, feasible and have
  every objective value. Baselines (``--baselines``) are drawn against it but are not part of it, so
  the report shows where the papers' designs sit relative to what the search found. DUPLICATE rows
  are never points (their architecture is already drawn once); INFEASIBLE and INVALID ones never
  enter fronts, hypervolume or importance (``docs/reports.md``).
- **Hypervolume** is measured on objectives normalised by the run's fixed bounds (0 = best bound,
  1 = worst) against the run's reference point, over the trained trials (COMPLETE, PRUNED, FAIL:
  what ``--trials`` counts) in the order they finished.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nas.pareto import hypervolume_history as _hv_history
from nas.pareto import non_dominated_sort, normalize, to_minimization
from nas.runmodel import STATUSES, TRAINED_STATUSES, front_candidate_mask, is_baseline
from reports.load import RunData, RunObjective

STATUS_MEANING = {
    "COMPLETE": "trained to the full proxy budget",
    "PRUNED": "stopped early by the scheduler (fidelity reached is recorded)",
    "FAIL": "error, NaN loss or out-of-memory (message recorded)",
    "INFEASIBLE": "violates a constraint; never trained",
    "DUPLICATE": "an architecture already evaluated; given the earlier result, not re-trained",
    "INVALID": "not a buildable architecture (SpecError); never trained",
    "INTERRUPTED": "running when the search was interrupted; not counted, re-run on resume",
    "RUNNING": "still training",
    "QUEUED": "queued again (an interrupted trial or a retry); not started yet",
}


# --------------------------------------------------------------------------------------------
# Trial groups and the front
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialGroups:
    """Disjoint sets of trials as the figures draw them."""

    front: pd.DataFrame  # non-dominated searched COMPLETE feasible trials
    dominated: pd.DataFrame  # the other searched COMPLETE feasible trials
    baselines: pd.DataFrame  # COMPLETE --baselines entries
    pruned: pd.DataFrame  # PRUNED (accuracy at the fidelity reached)
    infeasible: pd.DataFrame  # INFEASIBLE (real costs, never trained)


def objective_values(frame: pd.DataFrame, objectives: tuple[RunObjective, ...]) -> np.ndarray:
    """Objective values in natural units, one column per objective (NaN where missing)."""
    return np.column_stack([pd.to_numeric(frame[o.column], errors="coerce").to_numpy(float) for o in objectives])


def front_candidates(run: RunData, trials: pd.DataFrame | None = None) -> pd.DataFrame:
    """The run model's front candidates (:func:`nas.runmodel.front_candidate_mask`) with every objective known."""
    trials = run.trials if trials is None else trials
    if trials.empty:
        return trials
    mask = front_candidate_mask(trials)
    mask &= ~np.isnan(objective_values(trials, run.objectives)).any(axis=1)
    return trials[mask]


def pareto_front(run: RunData, candidates: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated rows of ``candidates`` (sorted by the first objective, best first)."""
    if candidates.empty:
        return candidates
    directions = [o.direction for o in run.objectives]
    points = to_minimization(objective_values(candidates, run.objectives), directions)
    front = candidates.iloc[non_dominated_sort(points)[0]]
    first = run.objectives[0]
    return front.sort_values(first.column, ascending=first.direction == "minimize", kind="stable")


def group_trials(run: RunData) -> TrialGroups:
    trials = run.trials
    candidates = front_candidates(run)
    front = pareto_front(run, candidates)
    dominated = candidates[~candidates["trial_id"].isin(front["trial_id"])]
    complete = trials["status"] == "COMPLETE"
    return TrialGroups(
        front=front,
        dominated=dominated,
        baselines=trials[complete & is_baseline(trials)],
        pruned=trials[trials["status"] == "PRUNED"],
        infeasible=trials[trials["status"] == "INFEASIBLE"],
    )


def status_counts(trials: pd.DataFrame) -> dict[str, int]:
    """Every known status with its count (zeros included), then any unexpected status found."""
    counts = trials["status"].value_counts().to_dict() if not trials.empty else {}
    ordered = {status: int(counts.pop(status, 0)) for status in STATUSES}
    ordered.update({str(status): int(n) for status, n in counts.items()})
    return ordered


# --------------------------------------------------------------------------------------------
# Hypervolume and how the front evolved
# --------------------------------------------------------------------------------------------


def trained_in_finish_order(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that trained and finished, in the order they finished (ties by trial id)."""
    trained = trials[trials["status"].isin(TRAINED_STATUSES) & trials["finished_at"].notna()]
    return trained.sort_values(["finished_at", "trial_id"], kind="stable")


@dataclass(frozen=True)
class HypervolumeHistory:
    trial_ids: np.ndarray  # trained trials in finish order
    elapsed_seconds: np.ndarray  # finish time since the run started
    trial_counts: np.ndarray  # 1..N
    values: np.ndarray  # hypervolume after each of them (non-decreasing)
    reference_point: tuple[float, ...]
    bounds: tuple[tuple[float, float], ...]


def normalised_points(run: RunData, frame: pd.DataFrame) -> np.ndarray:
    """Objectives of ``frame`` normalised by the run's bounds (minimisation form, 0 = best bound)."""
    bounds = [o.bounds for o in run.objectives]
    return normalize(objective_values(frame, run.objectives), [o.direction for o in run.objectives], bounds)


def hypervolume_history(run: RunData) -> HypervolumeHistory | None:
    """Hypervolume after each trained trial finished; ``None`` when bounds are unknown (no data at all)."""
    if any(o.bounds is None for o in run.objectives):
        return None
    ordered = trained_in_finish_order(run.trials)
    candidate_ids = set(front_candidates(run, ordered)["trial_id"])
    points = np.full((len(ordered), len(run.objectives)), np.inf)  # non-candidates add no volume
    is_candidate = ordered["trial_id"].isin(candidate_ids).to_numpy()
    if is_candidate.any():
        points[is_candidate] = normalised_points(run, ordered[is_candidate])
    start = run.start_time if run.start_time is not None else 0.0
    return HypervolumeHistory(
        trial_ids=ordered["trial_id"].to_numpy(int),
        elapsed_seconds=ordered["finished_at"].to_numpy(float) - start,
        trial_counts=np.arange(1, len(ordered) + 1),
        values=_hv_history(points, run.reference_point),
        reference_point=run.reference_point,
        bounds=tuple(o.bounds for o in run.objectives),
    )


def front_evolution(run: RunData, fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)) -> list[tuple[int, pd.DataFrame]]:
    """The front after a growing share of the trained trials: ``(trained trials so far, front)`` per stage."""
    ordered = trained_in_finish_order(run.trials)
    stages: list[tuple[int, pd.DataFrame]] = []
    for fraction in fractions:
        count = max(1, math.ceil(fraction * len(ordered))) if len(ordered) else 0
        if count == 0 or (stages and stages[-1][0] == count):
            continue
        stages.append((count, pareto_front(run, front_candidates(run, ordered.iloc[:count]))))
    return stages


# --------------------------------------------------------------------------------------------
# SRTG gates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateTable:
    """Gate open-rates: per-block statistics over every trial with gates, and a trial x block matrix of a
    readable subset of them (the front first, then the most accurate; at most ``MAX_GATE_ROWS``)."""

    trial_ids: list[int]  # the rows drawn, ascending
    blocks: list[str]  # in order of first appearance
    rates: np.ndarray  # NaN where the block is T = 1 or absent from that architecture
    single_frame: np.ndarray  # True where the block runs at T = 1 (no temporal gate)
    n_trials: int  # trials with gates in the run
    block_measured: list[int]  # per block: trials with an open rate
    block_mean: list[float | None]  # per block: mean open rate over them
    block_single: list[int]  # per block: trials where it runs at T = 1
    block_max: list[float | None]  # per block: highest open rate of any trial (0: the gate never opened)


MAX_GATE_ROWS = 40


def _json_mapping(text: Any) -> dict[str, Any]:
    """A JSON object stored as text in trials.parquet, or {} for anything else."""
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, Mapping) else {}


def sampled_params(text: Any) -> dict[str, Any]:
    """The Optuna parameters of a trial (``params_json``); lists and mappings become JSON strings."""
    value = _json_mapping(text)
    return {str(k): (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in value.items()}


def _gate_matrix(rows: list[tuple[int, dict[str, Any]]], blocks: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rates = np.full((len(rows), len(blocks)), np.nan)
    single = np.zeros((len(rows), len(blocks)), dtype=bool)
    for i, (_, gates) in enumerate(rows):
        for j, block in enumerate(blocks):
            if block in gates and gates[block] is None:
                single[i, j] = True
            elif isinstance(gates.get(block), (int, float)):
                rates[i, j] = float(gates[block])
    return rates, single


def gate_table(trials: pd.DataFrame, front_ids: set[int] = frozenset()) -> GateTable | None:
    rows = [(int(t), _json_mapping(g)) for t, g in zip(trials["trial_id"], trials["gate_open_rates"])]
    rows = [(t, g) for t, g in rows if g]
    if not rows:
        return None
    blocks: list[str] = []
    for _, gates in rows:
        blocks.extend(b for b in gates if b not in blocks)
    rates, single = _gate_matrix(rows, blocks)
    measured = (~np.isnan(rates)).sum(axis=0)
    means = [float(np.nanmean(rates[:, j])) if measured[j] else None for j in range(len(blocks))]
    highest = [float(np.nanmax(rates[:, j])) if measured[j] else None for j in range(len(blocks))]
    accuracy = dict(zip(trials["trial_id"].astype(int), pd.to_numeric(trials["accuracy"], errors="coerce")))
    priority = sorted(rows, key=lambda r: (r[0] not in front_ids, -np.nan_to_num(accuracy.get(r[0], np.nan), nan=-1.0)))
    shown = sorted(priority[:MAX_GATE_ROWS], key=lambda r: r[0])
    shown_rates, shown_single = _gate_matrix(shown, blocks)
    return GateTable(
        trial_ids=[t for t, _ in shown],
        blocks=blocks,
        rates=shown_rates,
        single_frame=shown_single,
        n_trials=len(rows),
        block_measured=[int(n) for n in measured],
        block_mean=means,
        block_single=[int(n) for n in single.sum(axis=0)],
        block_max=highest,
    )


# --------------------------------------------------------------------------------------------
# Full-scale retraining
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainComparison:
    rows: pd.DataFrame  # trial_id, label, proxy (fraction), full (fraction), full_scale (bool), scale (its label)
    kendall_tau: float | None  # the correlations are over the full-scale rows only
    kendall_p: float | None
    spearman_rho: float | None
    spearman_p: float | None

    @property
    def n_full_scale(self) -> int:
        return int(self.rows["full_scale"].sum())


def retrain_comparison(run: RunData) -> RetrainComparison | None:
    """Proxy vs retrained accuracy of the retrained trials, each labelled full-scale or short, with rank
    correlations over the full-scale ones (>= 3 pairs): a short retrain never stands in for a full-scale one
    (docs/retrain.md, "Full-scale or short")."""
    proxy = dict(zip(run.trials["trial_id"], run.trials["accuracy"]))
    rows = [
        {"trial_id": r.trial_id, "label": r.label, "proxy": float(proxy[r.trial_id]), "full": r.accuracy,
         "full_scale": r.full_scale, "scale": r.scale}
        for r in run.retrain
        if r.trial_id in proxy and r.accuracy is not None and not pd.isna(proxy[r.trial_id])
    ]
    if not rows:
        return None
    table = pd.DataFrame(rows).sort_values("trial_id").reset_index(drop=True)
    full = table[table["full_scale"]]
    tau = tau_p = rho = rho_p = None
    if len(full) >= 3:
        kendall = stats.kendalltau(full["proxy"], full["full"])
        spearman = stats.spearmanr(full["proxy"], full["full"])
        tau, tau_p = _finite(kendall.statistic), _finite(kendall.pvalue)
        rho, rho_p = _finite(spearman.statistic), _finite(spearman.pvalue)
    return RetrainComparison(table, tau, tau_p, rho, rho_p)


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def retrain_data_flags(config: Mapping[str, Any]) -> list[str]:
    """``--data NAME [--root PATH] [--cache PATH]``: the dataset the search used (search.yaml ``config``)."""
    settings = config.get("config") if isinstance(config.get("config"), Mapping) else config
    flags = ["--data", str(settings.get("data") or "synthetic")]
    for key in ("root", "cache"):
        if settings.get(key):
            flags += [f"--{key}", str(settings[key])]
    return flags


def retrain_command(run: RunData, trial_id: int) -> str:
    """The exact shell command that re-trains trial ``trial_id`` at full scale on the search's dataset."""
    words = ["nas", "retrain", f"{run.run_dir.resolve()}:{int(trial_id)}", *retrain_data_flags(run.config)]
    return shlex.join(words)


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def spec_summary(spec_json: Any) -> str:
    """A one-line description of an architecture from its canonical JSON (``trials.parquet`` ``spec``)."""
    try:
        spec = json.loads(spec_json) if isinstance(spec_json, str) else None
    except json.JSONDecodeError:
        spec = None
    if not isinstance(spec, Mapping):
        return "?"
    if spec.get("family") == "mtnet":
        return f"mtnet-{spec.get('depth')} r={spec.get('ratio')} g={spec.get('substreams')} {spec.get('recurrent')}"
    text = f"{spec.get('conv', '?')}-{spec.get('depth', '?')}"
    srtg = spec.get("srtg") if isinstance(spec.get("srtg"), Mapping) else {}
    if srtg.get("placement", "none") != "none":
        text += (
            f" srtg={srtg.get('placement')} {srtg.get('recurrent')} rho={srtg.get('reduction')}"
            f" gate={srtg.get('gate')} fusion={srtg.get('fusion')}"
        )
    if spec.get("depth") in (50, 101, 152):
        text += f" exp={spec.get('bottleneck_expansion')}"
    return text
