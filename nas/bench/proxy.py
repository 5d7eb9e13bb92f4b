"""``nas bench proxy``: how far the proxy's ranking of architectures can be trusted (``docs/proxy.md``).

A seeded sample of architectures from the ``joint`` space (distinct, buildable at the proxy width) is trained
with the search's own proxy loop (:func:`runners.proxy.train_proxy`) at several fidelities and at a reference
fidelity of at least 4x the default's compute; the training-free scores of :mod:`runners.zerocost` and the
static costs (#params, GMACs) are computed for the same architectures. Every predictor is then compared with the
reference's validation top-1: Kendall tau-b and Spearman rho with bootstrap 95% intervals, top-k overlap, and its
cost in CPU-seconds per architecture (process time of the worker that ran it, data thread included).

Fidelities (``FIDELITIES``): ``default`` is the demo search's proxy (``nas.bench.data.DEMO_PROXY``: 3 epochs,
width 0.25, 8 x 32 x 32, batch 32, lr 0.1), trained with two seeds so seed noise is known; ``epoch-1`` and
``epoch-2`` are what an ASHA rung sees, the default run's accuracy after its first and second epoch (read from
its history, no extra training); ``width-0.125`` and ``frames-4`` each lower one axis; ``reference`` trains 7
epochs on 16-frame clips (4.7x the default's multiply-accumulates). Each frame count has its own clips: the same
synthetic dataset (same seed, so the same labels and scenes) rendered at that length, as the search renders its
proxy data at ``--proxy-frames``. Every model is initialised from its run's seed; the reference uses seed 1000 so
it shares no initialisation or batch order with the fidelities it judges.

Size (measured, docs/proxy.md): 30 architectures x 6 runs must fit in 60 minutes on two quiet cores, and the
joint space's mean proxy step costs ~0.35 CPU-s; so the dataset is 288 / 144 clips of 6 classes (9 steps per
epoch), far smaller than the demo's 1,680 / 420 of 12 classes. That is the trade-off: the default fidelity here
has the demo's epochs, width and clip shape but a third as many steps per epoch.

Resumable: each (architecture, fidelity, seed) result is a JSON file under ``OUT/cache/<hash of the settings and the sampled specs>/``, written
atomically when the run finishes; a rerun with the same settings loads those and runs only what is missing.
Runs execute in ``workers`` spawned processes (one torch thread each), longest first. ``quick`` is a smoke test
of the whole pipeline (4 architectures, 32 / 24 clips, at most 2 epochs): every table row, not the real figures.

Where the parts live: :mod:`nas.bench.proxysettings` (fidelities, settings), :mod:`nas.bench.proxyruns` (the
worker tasks, their cache and progress); this module samples the architectures, analyses the results and
writes the report.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from nas.bench.proxyruns import BenchTask, complete_prefix, run_missing, write_json
from nas.bench.proxysettings import (
    FIDELITIES,
    QUICK,
    REFERENCE,
    RUNGS,
    STATIC_PREDICTORS,
    Fidelity,
    ProxyBenchSettings,
)
from nas.rankstats import rank_agreement
from space.errors import UserInputError

__all__ = ["FIDELITIES", "QUICK", "RUNGS", "Fidelity", "ProxyBenchSettings", "run_proxy_benchmark", "sample_architectures"]


# ---- the sample ----------------------------------------------------------------------------------------


def sample_architectures(count: int, *, seed: int, space: str = "joint", width: float = 0.25) -> list[Any]:
    """``count`` distinct architectures drawn uniformly per choice (seeded), each buildable at ``width``."""
    from space.searchspace import load_space

    search_space = load_space(space)
    rng = random.Random(seed)
    specs: list[Any] = []
    seen: set[str] = set()
    for _ in range(200 * count):
        spec = search_space.sample(lambda name, choices: rng.choice(choices))
        if spec.key() not in seen and search_space.is_buildable(spec, width):
            seen.add(spec.key())
            specs.append(spec)
            if len(specs) == count:
                return specs
    raise UserInputError(f"space {space!r} has fewer than {count} distinct architectures buildable at width {width}")


def cache_key(settings: ProxyBenchSettings, specs: list[Any]) -> str:
    """The cache folder's name: the settings and every sampled spec in full (``spec.key()`` covers each field, its
    defaults included), so a changed spec default never reuses runs of the architectures it no longer describes."""
    text = settings.key() + "".join(spec.key() for spec in specs)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---- analysis -------------------------------------------------------------------------------------------


def _load(specs: list[Any], folder: Path) -> dict[str, Any]:
    """Per predictor: values per architecture (NaN where missing) and CPU-seconds per architecture."""
    values: dict[str, list[float]] = {}
    costs: dict[str, list[float]] = {}
    statuses: dict[str, int] = {}

    def put(name: str, arch: int, value: float, cpu: float) -> None:
        values.setdefault(name, [math.nan] * len(specs))[arch] = value
        costs.setdefault(name, [math.nan] * len(specs))[arch] = cpu

    def read(task: BenchTask) -> dict[str, Any] | None:
        path = task.file(folder)
        if path.exists():
            return json.loads(path.read_text())
        statuses["missing"] = statuses.get("missing", 0) + 1
        return None

    for arch in range(len(specs)):
        scores = read(BenchTask(arch, "score"))
        for name, entry in (scores or {}).get("scores", {}).items():
            put(name, arch, float(entry["value"]), float(entry["cpu_seconds"]))
        for fidelity in FIDELITIES.values():
            for seed in fidelity.seeds:
                run = read(BenchTask(arch, "train", fidelity.name, seed)) or {"status": "missing", "cpu_seconds": math.nan}
                if run["status"] == "missing":
                    put(f"{fidelity.name}@{seed}", arch, math.nan, math.nan)
                    continue
                statuses[run["status"]] = statuses.get(run["status"], 0) + 1
                accuracy = float(run["accuracy"]) if run["status"] == "ok" else math.nan
                put(f"{fidelity.name}@{seed}", arch, accuracy, float(run["cpu_seconds"]))
                if fidelity.name == "default":
                    history = run.get("history", [])
                    for rung in RUNGS:
                        value = float(history[rung - 1]) if len(history) >= rung else math.nan
                        put(f"epoch-{rung}@{seed}", arch, value, float(run["cpu_seconds"]) * rung / max(len(history), 1))
    return {"values": values, "costs": costs, "statuses": statuses}


def _predictor_rows(loaded: dict[str, Any], settings: ProxyBenchSettings, top_k: int) -> list[dict[str, Any]]:
    values = {k: np.asarray(v, float) for k, v in loaded["values"].items()}
    costs = {k: np.asarray(v, float) for k, v in loaded["costs"].items()}
    reference_name = f"{REFERENCE}@{FIDELITIES[REFERENCE].seeds[0]}"
    reference = values[reference_name]
    default = FIDELITIES["default"]
    seeds = [f"default@{s}" for s in default.seeds]
    values["default (seed mean)"] = np.mean([values[s] for s in seeds], axis=0)
    costs["default (seed mean)"] = np.sum([costs[s] for s in seeds], axis=0)
    rows = []
    order = [*seeds, "default (seed mean)", *[f"epoch-{rung}@{s}" for rung in RUNGS for s in default.seeds],
             *[f"{f.name}@{s}" for f in FIDELITIES.values() if f.name not in (REFERENCE, "default") for s in f.seeds],
             *[n for n in values if "@" not in n and n != "default (seed mean)"]]
    default_cost = float(np.nanmean(costs[seeds[0]]))
    for name in order:
        agreement = rank_agreement(values[name], reference, top_k=top_k, seed=settings.seed)
        kind = "fidelity" if "@" in name or name.startswith("default") else (
            "static" if name in STATIC_PREDICTORS else "zero-cost")
        cpu = float(np.nanmean(costs[name]))
        rows.append({"predictor": name, "kind": kind, **agreement.to_dict(), "cpu_seconds": cpu,
                     "relative_cost": cpu / default_cost if default_cost > 0 else None})
    return rows


def _seed_noise(loaded: dict[str, Any], settings: ProxyBenchSettings, top_k: int) -> dict[str, Any]:
    """How much the default fidelity's ranking changes with the seed alone."""
    first, second = (np.asarray(loaded["values"][f"default@{s}"], float) for s in FIDELITIES["default"].seeds)
    agreement = rank_agreement(first, second, top_k=top_k, seed=settings.seed)
    both = np.isfinite(first) & np.isfinite(second)
    difference = np.abs(first[both] - second[both])
    return {**agreement.to_dict(), "mean_abs_difference_points": float(100 * difference.mean()) if both.any() else None,
            "max_abs_difference_points": float(100 * difference.max()) if both.any() else None}


def _architecture_rows(specs: list[Any], loaded: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for arch, spec in enumerate(specs):
        row = {"arch": arch, "key": spec.key(), "spec": json.dumps(spec.to_dict(), sort_keys=True)}
        row.update({name: values[arch] for name, values in loaded["values"].items()})
        rows.append(row)
    return rows


def _machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average_at_end": [round(v, 2) for v in load]}


def run_proxy_benchmark(
    out_dir: Path,
    *,
    quick: bool = False,
    settings: ProxyBenchSettings | None = None,
    workers: int = 2,
    top_k: int = 5,
    progress: bool = True,
    train: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the benchmark into ``out_dir``; writes proxy.json, proxy.md, proxy.html; returns headlines.

    ``train=False`` runs nothing: it analyses the architectures whose runs are all in the cache (a partial
    result of an interrupted or still-running benchmark, marked as such in the report).
    """
    settings = settings or (QUICK if quick else ProxyBenchSettings())
    if workers < 1:
        raise UserInputError(f"workers={workers} is not allowed; allowed: an integer >= 1")
    specs = sample_architectures(settings.architectures, seed=settings.seed, space=settings.space,
                                 width=FIDELITIES["default"].width)
    folder = Path(out_dir) / "cache" / cache_key(settings, specs)
    write_json(folder / "settings.json", {"settings": asdict(settings),
                                           "fidelities": {n: asdict(f) for n, f in FIDELITIES.items()}})
    started = time.perf_counter()
    sampled = len(specs)
    if train:
        run_missing(specs, settings, folder, workers, progress)
    else:
        specs = specs[: complete_prefix(len(specs), folder)]
        if len(specs) < 3:
            raise UserInputError(f"only {len(specs)} architectures are complete in {folder}; at least 3 are needed")
    loaded = _load(specs, folder)
    rows = _predictor_rows(loaded, settings, top_k)
    total_cpu = float(sum(np.nansum(c) for name, c in loaded["costs"].items() if not name.startswith("epoch-")))
    default_cpu = float(np.nanmean(loaded["costs"]["default@0"]))
    reference_cpu = float(np.nanmean(loaded["costs"][f"{REFERENCE}@{FIDELITIES[REFERENCE].seeds[0]}"]))
    figures = {
        "benchmark": "proxy",
        "quick": quick,
        "settings": asdict(settings),
        "fidelities": _fidelity_table(settings),
        "architectures": len(specs),
        "sampled_architectures": sampled,
        "statuses": loaded["statuses"],
        "predictors": rows,
        "seed_noise": _seed_noise(loaded, settings, top_k),
        "reference_over_default_cpu": reference_cpu / default_cpu if default_cpu > 0 else None,
        "total_cpu_seconds": total_cpu,
        "quiet_two_core_minutes_estimate": total_cpu / 2 / 60,
        "wall_seconds_this_call": time.perf_counter() - started,
        "workers": workers,
        "machine": _machine(),
        "rows": _architecture_rows(specs, loaded),
    }
    write_json(Path(out_dir) / "proxy.json", figures)
    from reports.proxybench import write_proxy_report

    write_proxy_report(Path(out_dir))
    return _headline(figures, rows, Path(out_dir) / "proxy.md")


def _fidelity_table(settings: ProxyBenchSettings) -> dict[str, Any]:
    """Every fidelity as the report shows it: its fields, its epochs under ``settings`` and its relative cost."""
    default_epochs = settings.epochs(FIDELITIES["default"])
    return {n: {**asdict(f), "epochs": settings.epochs(f), "relative_macs": f.relative_macs(settings.epochs(f), default_epochs)}
            for n, f in FIDELITIES.items()}


def _headline(figures: dict[str, Any], rows: list[dict[str, Any]], report: Path) -> dict[str, Any]:
    """What ``nas bench proxy`` prints: the default fidelity's agreement with the reference, its seed noise, the
    best zero-cost score and the cost."""
    default = next(r for r in rows if r["predictor"] == "default@0")
    best = max((r for r in rows if r["kind"] == "zero-cost" and r["tau"] is not None), key=lambda r: r["tau"],
               default=None)
    return {
        "architectures": figures["architectures"],
        "default_tau": default["tau"],
        "default_tau_interval": [default["tau_low"], default["tau_high"]],
        "seed_noise_tau": figures["seed_noise"]["tau"],
        "best_zero_cost": best and {"name": best["predictor"], "tau": best["tau"]},
        "reference_over_default_cpu": figures["reference_over_default_cpu"],
        "total_cpu_seconds": round(figures["total_cpu_seconds"], 1),
        "report": str(report),
    }
