"""Running ``nas bench proxy``'s trainings and scorings: the worker tasks, their cache files and the progress bar.

Each (architecture, fidelity, seed) training and each architecture's scoring is a task whose JSON result file
under the cache folder says it is done (:class:`BenchTask`); :func:`run_missing` runs the missing ones in spawned
worker processes (one torch thread each), longest first within an architecture, so an interrupted run leaves
whole architectures and a rerun resumes where it stopped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.bench.proxysettings import FIDELITIES, Fidelity, ProxyBenchSettings


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
class BenchTask:
    """One unit of work: an architecture's scoring, or its training at one fidelity and seed; done when its file exists."""

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


def _tasks(count: int) -> list[BenchTask]:
    """Architecture by architecture (an interrupted run leaves whole architectures), longest run first within one."""
    tasks = []
    for arch in range(count):
        mine = [BenchTask(arch, "score")] + [BenchTask(arch, "train", f.name, s) for f in FIDELITIES.values() for s in f.seeds]
        tasks += sorted(mine, key=lambda t: -t.weight())
    return tasks


def write_json(path: Path, data: Any) -> None:
    """Write atomically (a temporary file, then a rename): a killed run never leaves half a result."""
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


def run_missing(specs: list[Any], settings: ProxyBenchSettings, folder: Path, workers: int, progress: bool) -> None:
    """Run every task whose result file is missing, in ``workers`` spawned processes, writing each result as it ends."""
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
                write_json(task.file(folder), result)
                label = "scores" if task.kind == "score" else f"{task.fidelity} seed {task.seed}"
                bar.advance(f"arch {task.arch} {label} ({result.get('cpu_seconds', 0.0):.0f} CPU-s)")


def complete_prefix(count: int, folder: Path) -> int:
    """How many architectures, from the first, have every run in the cache (runs go architecture by architecture)."""
    tasks = _tasks(count)
    for arch in range(count):
        if not all(t.file(folder).exists() for t in tasks if t.arch == arch):
            return arch
    return count
