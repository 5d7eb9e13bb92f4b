"""Build run directories by hand (search.yaml, trials.parquet, a real Optuna SQLite study, retrain results).

Reports only read these artifacts (docs/run-directory.md), so a hand-written run is a faithful input; the
trials table is built by the run model (:func:`nas.runmodel.trials_table`), as the search writes it.
The default run mixes every status: COMPLETE searched trials, COMPLETE baselines, PRUNED, FAIL,
INFEASIBLE, DUPLICATE, INVALID and one RUNNING trial; SRTG trials carry gate open-rates.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from nas.runmodel import RunDir, trials_table
from space.spec import MTNetSpec, ResNet3DSpec, SRTGSpec

OBJECTIVES = ["accuracy", "gmacs", "latency"]
BOUNDS = {"accuracy": [0.0, 1.0], "gmacs": [0.0, 200.0], "latency": [0.0, 400.0]}
REFERENCE = [1.0, 1.0, 1.0, 1.0]
START = 1_760_000_000.0
# what nas.retrain.write_back records for a retrain at the defaults (docs/retrain.md, "Full-scale or short")
FULL_SCALE = {"full_scale": True, "epochs": 10, "train_clips": 1000, "width_mult": 1.0}
DISTRIBUTIONS = {
    "family": CategoricalDistribution(["resnet3d", "mtnet"]),
    "conv": CategoricalDistribution(["r3d", "r2plus1d"]),
    "depth": CategoricalDistribution([18, 34, 50]),
    "placement": CategoricalDistribution(["none", "start", "mid", "final"]),
    "reduction": IntDistribution(1, 16, log=True),
    "mtnet_depth": CategoricalDistribution([32, 48, 64]),
    "ratio": FloatDistribution(0.5, 1.0),
}


@dataclass
class FakeTrial:
    status: str
    params: dict
    accuracy: float | None = None
    baseline: str | None = None
    error: str | None = None
    duplicate_of: int | None = None
    fidelity: int = 4
    row: dict = field(default_factory=dict)


def _spec(params: dict):
    if params["family"] == "mtnet":
        return MTNetSpec(depth=params["mtnet_depth"], ratio=params["ratio"])
    srtg = SRTGSpec(placement=params["placement"], reduction=params.get("reduction", 1)) if params["placement"] != "none" else SRTGSpec()
    return ResNet3DSpec(conv=params["conv"], depth=params["depth"], bottleneck_expansion=1 if params["depth"] >= 50 else 4, srtg=srtg)


def _costs(params: dict, rng: np.random.Generator) -> tuple[float, float, int]:
    depth = params.get("depth", params.get("mtnet_depth", 32))
    gmacs = float(depth * rng.uniform(1.5, 3.0))
    latency = float(gmacs * rng.uniform(1.2, 2.0))
    return round(gmacs, 3), round(latency, 3), int(depth * 1e6 * rng.uniform(0.5, 1.0))


def _gates(params: dict, rng: np.random.Generator) -> dict:
    if params["family"] != "resnet3d" or params["placement"] == "none":
        return {}
    blocks = [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)]
    return {name: (None if name.startswith("layer4") else round(float(rng.uniform(0, 1)), 3)) for name in blocks}


def random_params(rng: np.random.Generator) -> dict:
    if rng.uniform() < 0.35:
        return {"family": "mtnet", "mtnet_depth": int(rng.choice([32, 48, 64])), "ratio": round(float(rng.uniform(0.5, 1.0)), 3)}
    params = {"family": "resnet3d", "conv": str(rng.choice(["r3d", "r2plus1d"])), "depth": int(rng.choice([18, 34, 50])),
              "placement": str(rng.choice(["none", "start", "mid", "final"]))}
    if params["placement"] != "none":
        params["reduction"] = int(rng.choice([1, 2, 4, 8, 16]))
    return params


def default_trials(seed: int = 0) -> list[FakeTrial]:
    rng = np.random.default_rng(seed)
    trials: list[FakeTrial] = []
    for _ in range(18):
        trials.append(FakeTrial("COMPLETE", random_params(rng), accuracy=round(float(rng.uniform(0.2, 0.8)), 4)))
    for fidelity in (1, 1, 2):
        trials.append(FakeTrial("PRUNED", random_params(rng), accuracy=round(float(rng.uniform(0.1, 0.4)), 4), fidelity=fidelity))
    trials.append(FakeTrial("FAIL", random_params(rng), error="RuntimeError: NaN loss at epoch 2", fidelity=2))
    trials.append(FakeTrial("FAIL", random_params(rng), error="out of memory", fidelity=0))
    trials.append(FakeTrial("INFEASIBLE", {"family": "resnet3d", "conv": "r3d", "depth": 50, "placement": "none"},
                            accuracy=0.0, error="gmacs 160.2 > max_gmacs 120", fidelity=0))
    trials.append(FakeTrial("INFEASIBLE", {"family": "mtnet", "mtnet_depth": 64, "ratio": 0.9},
                            accuracy=0.0, error="gmacs 150.1 > max_gmacs 120", fidelity=0))
    trials.append(FakeTrial("DUPLICATE", dict(trials[0].params), accuracy=trials[0].accuracy, duplicate_of=0))
    trials.append(FakeTrial("DUPLICATE", dict(trials[5].params), accuracy=trials[5].accuracy, duplicate_of=5))
    trials.append(FakeTrial("INVALID", {"family": "resnet3d", "conv": "r3d", "depth": 18, "placement": "start", "reduction": 2},
                            accuracy=0.0, error="srtg.placement='top' is not allowed at depth 18", fidelity=0))
    trials.append(FakeTrial("RUNNING", random_params(rng), accuracy=None, fidelity=1))
    # --baselines: their own study, negative trial ids (nas/runmodel.py baseline_trial_id)
    trials.append(FakeTrial("COMPLETE", {"family": "resnet3d", "conv": "r3d", "depth": 34, "placement": "final", "reduction": 1},
                            accuracy=0.61, baseline="srtg-r3d-34-final"))
    trials.append(FakeTrial("COMPLETE", {"family": "mtnet", "mtnet_depth": 32, "ratio": 0.875}, accuracy=0.55, baseline="mtnet-32"))
    return trials


def write_run(
    run_dir: Path,
    trials: list[FakeTrial] | None = None,
    *,
    seed: int = 0,
    objectives: list[str] | None = None,
    with_study: bool = True,
    retrain: dict[int, float] | None = None,
    data: str = "synthetic",
    root: str | None = None,
    bounds: dict | None = BOUNDS,
) -> pd.DataFrame:
    """Write a run directory; returns the trials table written."""
    rng = np.random.default_rng(seed + 1)
    trials = default_trials(seed) if trials is None else trials
    objectives = objectives or OBJECTIVES
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {  # the layout nas/search.py writes
        "name": run_dir.name,
        "objectives": [{"name": name, "direction": "maximize" if name == "accuracy" else "minimize"} for name in objectives],
        "reference_point": REFERENCE[: len(objectives)],
        "config": {"name": run_dir.name, "trials": 25, "objectives": objectives, "sampler": "tpe", "scheduler": "moasha",
                   "seed": seed, "data": data, "root": root, "cache": None, "max_gmacs": 120.0, "proxy_epochs": 4},
        "environment": {"python": "3.11.2", "torch": "2.13.0+cpu", "optuna": optuna.__version__, "cpu": "test CPU",
                        "git_revision": "abc123", "hostname": "test",
                        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.gmtime(START))},
    }
    if bounds is not None:
        config["bounds"] = {"accuracy": bounds["accuracy"]} | {name: bounds[name] for name in objectives}
        config["bounds_note"] = "hand-written test bounds"
    (run_dir / "search.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    rows = []
    clock = START
    searched = [t for t in trials if t.baseline is None]
    ids = iter(range(len(searched)))
    baseline_ids = iter(range(-1, -len(trials) - 1, -1))
    for trial in trials:
        trial_id = next(baseline_ids) if trial.baseline else next(ids)
        spec = _spec(trial.params)
        gmacs, latency, params = _costs(trial.params, rng)
        started = clock
        clock += float(rng.uniform(20, 60))
        finished = None if trial.status == "RUNNING" else clock
        rows.append({
            "trial_id": trial_id, "status": trial.status, "spec": spec.to_json(), "spec_key": spec.key(),
            "family": spec.family, "baseline": trial.baseline, "accuracy": trial.accuracy, "gmacs": gmacs,
            "latency_ms": latency, "params": params, "recurrent_params": 0,
            "constraint_max_gmacs": gmacs - 120.0, "feasible": trial.status not in ("INFEASIBLE", "INVALID"),
            "fidelity": trial.fidelity, "max_fidelity": 4, "started_at": started, "finished_at": finished,
            "train_seconds": (finished or clock) - started, "error": trial.error, "duplicate_of": trial.duplicate_of,
            "gate_open_rates": json.dumps(_gates(trial.params, rng)), "params_json": json.dumps(trial.params),
            "latency_profile": "cpu-quick", "deploy_shape": "1x3x16x112x112", "history": "[]",
            **trial.row,
        })
    table = trials_table(rows, constraint_flags=["max_gmacs"])
    RunDir(run_dir).write_trials(table)
    if with_study:
        _write_study(run_dir, trials, table, objectives)
    for trial_id, accuracy in (retrain or {}).items():
        folder = run_dir / "retrain" / f"trial-{trial_id}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps({"trial_id": trial_id, "arch": f"{run_dir}:{trial_id}", "test_top1": accuracy,
                                                        "scale": FULL_SCALE}))
    return table


def _write_study(run_dir: Path, trials: list[FakeTrial], table: pd.DataFrame, objectives: list[str]) -> None:
    """The search's study (named after the run) and the baselines' study (``NAME-baselines``), as nas/study.py."""
    columns = {"accuracy": "accuracy", "gmacs": "gmacs", "latency": "latency_ms", "params": "params"}
    storage = f"sqlite:///{run_dir / 'study.db'}"
    directions = ["maximize" if o == "accuracy" else "minimize" for o in objectives]
    study = optuna.create_study(study_name=run_dir.name, storage=storage, directions=directions)
    baselines = optuna.create_study(study_name=run_dir.name + "-baselines", storage=storage, directions=directions)
    for trial, row in zip(trials, table.itertuples()):
        target = baselines if trial.baseline else study
        distributions = {k: DISTRIBUTIONS[k] for k in trial.params}
        if trial.status == "RUNNING":
            target.enqueue_trial(trial.params)
            target.ask(distributions)
            continue
        state = {"PRUNED": optuna.trial.TrialState.PRUNED, "FAIL": optuna.trial.TrialState.FAIL}.get(
            trial.status, optuna.trial.TrialState.COMPLETE)
        values = None
        if state == optuna.trial.TrialState.COMPLETE:  # INFEASIBLE / INVALID are told accuracy 0 (SPEC 5)
            values = [float(getattr(row, columns[o]) or 0.0) for o in objectives]
        target.add_trial(optuna.trial.create_trial(params=trial.params, distributions=distributions, values=values, state=state))
