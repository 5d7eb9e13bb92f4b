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

Resumable: each (architecture, fidelity, seed) result is a JSON file under ``OUT/cache/<settings hash>/``, written
atomically when the run finishes; a rerun with the same settings loads those and runs only what is missing.
Runs execute in ``workers`` spawned processes (one torch thread each), longest first. ``quick`` is a smoke test
of the whole pipeline (4 architectures, 32 / 24 clips, at most 2 epochs): every table row, not the real figures.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import platform
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.rankstats import rank_agreement
from space.errors import UserInputError

__all__ = ["FIDELITIES", "Fidelity", "ProxyBenchSettings", "run_proxy_benchmark", "sample_architectures"]


@dataclass(frozen=True)
class Fidelity:
    """One way of training the proxy: epochs x width x frames (batch, lr and data are the benchmark's)."""

    name: str
    epochs: int
    width: float
    frames: int
    seeds: tuple[int, ...] = (0,)
    about: str = ""

    def relative_macs(self, epochs: int | None = None, default_epochs: int | None = None) -> float:
        """Training multiply-accumulates relative to the default (channels enter squared, frames and epochs linearly)."""
        default = FIDELITIES["default"]
        ratio = (epochs or self.epochs) / (default_epochs or default.epochs)
        return ratio * (self.frames / default.frames) * (self.width / default.width) ** 2


FIDELITIES: dict[str, Fidelity] = {
    f.name: f
    for f in (
        Fidelity("default", 3, 0.25, 8, seeds=(0, 1), about="the demo search's proxy (DEMO_PROXY), two seeds"),
        Fidelity("width-0.125", 3, 0.125, 8, about="half the proxy width"),
        Fidelity("frames-4", 3, 0.25, 4, about="half the frames"),
        Fidelity("reference", 7, 0.25, 16, seeds=(1000,), about="16 frames, 7 epochs: the yardstick"),
    )
}
REFERENCE = "reference"
# What an ASHA / MO-ASHA rung sees: the default run's validation top-1 after epoch k of its 3-epoch schedule
# (the same run, read from its history: no extra training; its cost is that share of the run's CPU time).
RUNGS = (1, 2)
STATIC_PREDICTORS = ("params", "gmacs")


@dataclass(frozen=True)
class ProxyBenchSettings:
    """Everything that changes the results (hashed into the cache folder's name)."""

    architectures: int = 30
    space: str = "joint"
    train_clips: int = 288
    val_clips: int = 144
    num_classes: int = 6
    size: int = 32
    batch_size: int = 32
    lr: float = 0.1
    score_batch: int = 64  # clips the zero-cost scores see
    seed: int = 0
    max_epochs: int | None = None  # quick mode caps every fidelity's epochs
    deploy_shape: tuple[int, int, int] = (16, 112, 112)  # where #params / GMACs are counted (the search's default)

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True) + json.dumps({n: asdict(f) for n, f in FIDELITIES.items()})
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def epochs(self, fidelity: Fidelity) -> int:
        return fidelity.epochs if self.max_epochs is None else min(fidelity.epochs, self.max_epochs)


QUICK = ProxyBenchSettings(architectures=4, train_clips=32, val_clips=24, score_batch=8, max_epochs=2)


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


# ---- work done in the worker processes ------------------------------------------------------------------

_DATA: dict[int, dict[str, Any]] = {}  # frames -> {"train", "val"}, per worker process


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _clips(settings: ProxyBenchSettings, frames: int) -> dict[str, Any]:
    """The benchmark's synthetic dataset rendered at ``frames`` frames (built once per worker and length)."""
    if frames not in _DATA:
        from runners.synthetic import SyntheticConfig, synthetic_splits

        config = SyntheticConfig(num_classes=settings.num_classes, frames=frames, size=settings.size)
        _DATA[frames] = synthetic_splits(train=settings.train_clips, val=settings.val_clips, config=config,
                                         seed=settings.seed)
    return _DATA[frames]


def train_task(spec_dict: dict, fidelity: Fidelity, seed: int, settings: ProxyBenchSettings) -> dict[str, Any]:
    """Train one architecture at one fidelity with the search's proxy loop; accuracy and CPU-seconds."""
    from runners.proxy import ProxyConfig, train_proxy
    from space import spec_from_dict
    from space.build import validate_buildable
    from space.spec import SpecError

    spec = spec_from_dict(spec_dict)
    try:
        validate_buildable(spec, fidelity.width)
    except SpecError as exc:
        return {"status": "unbuildable", "error": str(exc), "cpu_seconds": 0.0}
    data = _clips(settings, fidelity.frames)
    config = ProxyConfig(epochs=settings.epochs(fidelity), batch_size=settings.batch_size, lr=settings.lr,
                         width_mult=fidelity.width, frames=fidelity.frames, size=settings.size, seed=seed, threads=1)
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        result = train_proxy(spec, data["train"], data["val"], config)
    except Exception as exc:  # a diverged or broken run is a result of the benchmark, not its end
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "cpu_seconds": time.process_time() - cpu}
    return {"status": "ok", "accuracy": result.accuracy, "best_accuracy": result.best_accuracy,
            "history": [e.accuracy for e in result.history], "cpu_seconds": time.process_time() - cpu,
            "wall_seconds": time.perf_counter() - wall}


def score_task(spec_dict: dict, settings: ProxyBenchSettings) -> dict[str, Any]:
    """The zero-cost scores (default fidelity's model and clips, seed 0 init) and the static costs, each timed."""
    import torch

    from runners.costs import model_costs
    from runners.sampling import to_model_input
    from runners.zerocost import ZERO_COST_SCORES
    from space import build_model, spec_from_dict

    spec = spec_from_dict(spec_dict)
    default = FIDELITIES["default"]
    train = _clips(settings, default.frames)["train"]
    x = to_model_input(np.asarray(train.videos[: settings.score_batch]))
    y = torch.from_numpy(np.asarray(train.labels[: settings.score_batch], dtype=np.int64))
    torch.manual_seed(default.seeds[0])
    model = build_model(spec, num_classes=train.num_classes, width_mult=default.width)
    values: dict[str, Any] = {}
    for name, score in ZERO_COST_SCORES.items():
        cpu = time.process_time()
        values[name] = {"value": score(model, x, y), "cpu_seconds": time.process_time() - cpu}
    cpu = time.process_time()
    costs = model_costs(spec, shape=settings.deploy_shape, num_classes=train.num_classes)
    counted = (time.process_time() - cpu) / 2  # one meta build gives both
    values["params"] = {"value": float(costs.params), "cpu_seconds": counted}
    values["gmacs"] = {"value": float(costs.gmacs), "cpu_seconds": counted}
    return {"status": "ok", "scores": values}


# ---- scheduling, cache and progress ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    arch: int
    kind: str  # "train" | "score"
    fidelity: str = ""
    seed: int = 0

    def file(self, folder: Path) -> Path:
        name = "scores" if self.kind == "score" else f"{self.fidelity}-seed{self.seed}"
        return folder / f"arch{self.arch:03d}" / f"{name}.json"

    def weight(self) -> float:
        """Rough relative cost, to start the longest runs first (better packing of the workers)."""
        if self.kind == "score":
            return 0.01
        fidelity = FIDELITIES[self.fidelity]
        return fidelity.relative_macs()


def _tasks(count: int) -> list[_Task]:
    """Architecture by architecture (an interrupted run leaves whole architectures), longest run first within one."""
    tasks = []
    for arch in range(count):
        mine = [_Task(arch, "score")] + [_Task(arch, "train", f.name, s) for f in FIDELITIES.values() for s in f.seeds]
        tasks += sorted(mine, key=lambda t: -t.weight())
    return tasks


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1, default=float))
    os.replace(temporary, path)


class _Progress:
    """A rich bar on a terminal; one plain line per finished run on stderr when piped."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.total, self.done, self.enabled = total, done, enabled
        self.console = Console(stderr=True)
        self.interactive = enabled and self.console.is_terminal
        self.bar = Progress(TextColumn("[bold]bench proxy[/bold]"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[last]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=self.console, disable=not self.interactive)
        self.task = self.bar.add_task("runs", total=total, completed=done, last=f"{done} cached")

    def __enter__(self) -> "_Progress":
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def advance(self, label: str) -> None:
        self.done += 1
        self.bar.update(self.task, advance=1, last=label)
        if self.enabled and not self.interactive:
            print(f"bench proxy: {self.done}/{self.total} {label}", file=sys.stderr, flush=True)


def _run_missing(specs: list[Any], settings: ProxyBenchSettings, folder: Path, workers: int, progress: bool) -> None:
    tasks = _tasks(len(specs))
    missing = [t for t in tasks if not t.file(folder).exists()]
    with _Progress(len(tasks), len(tasks) - len(missing), progress) as bar:
        if not missing:
            return
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
            futures = {}
            for task in missing:
                spec_dict = specs[task.arch].to_dict()
                if task.kind == "score":
                    future = pool.submit(score_task, spec_dict, settings)
                else:
                    future = pool.submit(train_task, spec_dict, FIDELITIES[task.fidelity], task.seed, settings)
                futures[future] = task
            for future in as_completed(futures):
                task = futures[future]
                result = future.result()
                _write_json(task.file(folder), result)
                label = "scores" if task.kind == "score" else f"{task.fidelity} seed {task.seed}"
                bar.advance(f"arch {task.arch} {label} ({result.get('cpu_seconds', 0.0):.0f} CPU-s)")


# ---- analysis -------------------------------------------------------------------------------------------


def _load(specs: list[Any], folder: Path) -> dict[str, Any]:
    """Per predictor: values per architecture (NaN where missing) and CPU-seconds per architecture."""
    values: dict[str, list[float]] = {}
    costs: dict[str, list[float]] = {}
    statuses: dict[str, int] = {}

    def put(name: str, arch: int, value: float, cpu: float) -> None:
        values.setdefault(name, [math.nan] * len(specs))[arch] = value
        costs.setdefault(name, [math.nan] * len(specs))[arch] = cpu

    def read(task: _Task) -> dict[str, Any] | None:
        path = task.file(folder)
        if path.exists():
            return json.loads(path.read_text())
        statuses["missing"] = statuses.get("missing", 0) + 1
        return None

    for arch in range(len(specs)):
        scores = read(_Task(arch, "score"))
        for name, entry in (scores or {}).get("scores", {}).items():
            put(name, arch, float(entry["value"]), float(entry["cpu_seconds"]))
        for fidelity in FIDELITIES.values():
            for seed in fidelity.seeds:
                run = read(_Task(arch, "train", fidelity.name, seed)) or {"status": "missing", "cpu_seconds": math.nan}
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


def _complete_prefix(count: int, folder: Path) -> int:
    """How many architectures, from the first, have every run in the cache (runs go architecture by architecture)."""
    tasks = _tasks(count)
    for arch in range(count):
        if not all(t.file(folder).exists() for t in tasks if t.arch == arch):
            return arch
    return count


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
    folder = Path(out_dir) / "cache" / settings.key()
    _write_json(folder / "settings.json", {"settings": asdict(settings),
                                           "fidelities": {n: asdict(f) for n, f in FIDELITIES.items()}})
    started = time.perf_counter()
    sampled = len(specs)
    if train:
        _run_missing(specs, settings, folder, workers, progress)
    else:
        specs = specs[: _complete_prefix(len(specs), folder)]
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
        "fidelities": {n: {**asdict(f), "epochs": settings.epochs(f), "relative_macs": f.relative_macs(settings.epochs(f), settings.epochs(FIDELITIES["default"]))}
                       for n, f in FIDELITIES.items()},
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
    _write_json(Path(out_dir) / "proxy.json", figures)
    from reports.proxybench import write_proxy_report

    write_proxy_report(Path(out_dir))
    default = next(r for r in rows if r["predictor"] == "default@0")
    best = max((r for r in rows if r["kind"] == "zero-cost" and r["tau"] is not None), key=lambda r: r["tau"],
               default=None)
    return {
        "architectures": len(specs),
        "default_tau": default["tau"],
        "default_tau_interval": [default["tau_low"], default["tau_high"]],
        "seed_noise_tau": figures["seed_noise"]["tau"],
        "best_zero_cost": best and {"name": best["predictor"], "tau": best["tau"]},
        "reference_over_default_cpu": figures["reference_over_default_cpu"],
        "total_cpu_seconds": round(total_cpu, 1),
        "report": str(Path(out_dir) / "proxy.md"),
    }

