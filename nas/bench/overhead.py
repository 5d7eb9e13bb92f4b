"""``nas bench overhead``: what the search harness itself costs (README, Benchmarks).

Runs the demo search (:func:`nas.demo.demo_config`) and reports:

* **harness overhead**: wall time minus the union of the intervals in which a trial trains or evaluates
  (first epoch start to last report, from ``trials.parquet``) or the measurer measures (its log); what
  is left is Ray start-up, scheduling, sampling, storage, data building and reporting;
* **peak memory** of the whole search, Ray's processes included: the peak of a memory cgroup that holds
  the benchmark and everything it starts (see :class:`_PeakMemory`);
* **latency in search vs alone**: every architecture measured during the search is measured again alone,
  with the same profile and a fresh cache, once the search is over; the median ratio and the worst one.
"""

from __future__ import annotations

import json
import shutil
import statistics
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from nas.demo import demo_config

CGROUP = Path("/sys/fs/cgroup")


def _union_seconds(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


class _PeakMemory:
    """Peak memory of this process and everything it starts (Ray's raylet, workers, object store).

    cgroup v1: a child memory cgroup of our own; children inherit it, so ``memory.max_usage_in_bytes``
    is the search's exact peak. cgroup v2: our cgroup's ``memory.peak``. Otherwise None.
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self.kind = "unavailable"
        own = _own_cgroup("memory")
        if own is not None:
            child = CGROUP / "memory" / own.lstrip("/") / f"videonas-bench-{os.getpid()}"
            try:
                child.mkdir(exist_ok=True)
                (child / "cgroup.procs").write_text(str(os.getpid()))
                self.path, self.kind = child / "memory.max_usage_in_bytes", "cgroup v1 child"
            except OSError:
                self.path = None
        if self.path is None:
            unified = _own_cgroup("")
            if unified is not None and (CGROUP / unified.lstrip("/") / "memory.peak").exists():
                self.path, self.kind = CGROUP / unified.lstrip("/") / "memory.peak", "cgroup v2 memory.peak"

    def peak_gib(self) -> float | None:
        return round(_read_int(self.path) / 2**30, 2) if self.path else None

    def close(self) -> None:
        """Leave the child cgroup and remove it (it stays if something of ours still runs in it)."""
        if self.kind != "cgroup v1 child" or self.path is None:
            return
        child = self.path.parent
        try:
            (child.parent / "cgroup.procs").write_text(str(os.getpid()))
            child.rmdir()
        except OSError:
            pass


def _own_cgroup(controller: str) -> str | None:
    """This process's cgroup path for ``controller`` (v1), or the unified one (v2) for ``""``."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (controller and controller in controllers.split(",")) or (not controller and controllers == ""):
            return path
    return None


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _training_intervals(frame: pd.DataFrame) -> list[tuple[float, float]]:
    intervals = []
    for history in frame["history"].dropna():
        epochs = [h for h in json.loads(history) if h.get("train_started_at")]
        if epochs:
            intervals.append((epochs[0]["train_started_at"], max(h["reported_at"] for h in epochs)))
    return intervals


def _measurer_log(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "costs" / "measurer-log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _latency_alone(run_dir: Path, log: list[dict[str, Any]], profile: str) -> list[dict[str, Any]]:
    from runners.latency import LatencyCache, measure_latency
    from space import spec_from_dict

    frame = pd.read_parquet(run_dir / "trials.parquet")
    specs = {row.spec_key: row.spec for row in frame.itertuples() if isinstance(row.spec, str)}
    in_search = {}
    for entry in log:
        in_search.setdefault(entry["spec_key"], entry["fwd_ms_median"])
    fresh = LatencyCache(run_dir / "costs-alone")
    rows = []
    for key, value in in_search.items():
        if key not in specs:
            continue
        alone = measure_latency(spec_from_dict(json.loads(specs[key])), profile, cache=fresh).fwd_ms_median
        rows.append({"spec_key": key, "in_search_ms": value, "alone_ms": alone, "ratio": value / alone})
    return rows


def run_overhead_benchmark(out_dir: Path, *, quick: bool = False) -> dict[str, Any]:
    """Run the demo search under measurement; write ``overhead.md`` and ``overhead.json`` into ``out_dir``."""
    from nas.search import run_search
    from reports.build import build_report

    runs = out_dir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    config = demo_config(runs, name="overhead", **({"trials": 4, "num_clips": 240, "proxy_epochs": 2} if quick else {}))
    memory = _PeakMemory()  # before Ray starts, so Ray's processes are counted too
    started = time.time()
    try:
        outcome = run_search(config, show_progress=False)
        build_report(outcome.run_dir)  # part of what the demo does, so part of the measured overhead
        wall = time.time() - started
        peak = memory.peak_gib()
    finally:
        memory.close()
    frame = pd.read_parquet(outcome.run_dir / "trials.parquet")
    log = _measurer_log(outcome.run_dir)
    busy = _union_seconds(_training_intervals(frame) + [(e["start"], e["end"]) for e in log])
    latency_rows = _latency_alone(outcome.run_dir, log, config.problem.latency_profile)
    ratios = [r["ratio"] for r in latency_rows]
    figures = {
        "search": f"demo space, {config.trials} trials, {config.proxy.epochs} proxy epochs, baselines "
                  f"{', '.join(config.problem.baselines)}",
        "wall_seconds": round(wall, 1),
        "busy_seconds": round(busy, 1),
        "harness_overhead_seconds": round(wall - busy, 1),
        "harness_overhead_share": round((wall - busy) / wall, 4),
        "peak_memory_gib": peak,
        "peak_memory_source": memory.kind,
        "latency_profile": config.problem.latency_profile,
        "latency_in_search_vs_alone_median_ratio": round(statistics.median(ratios), 3) if ratios else None,
        "latency_in_search_vs_alone_worst_ratio": round(max(ratios, key=lambda r: abs(r - 1)), 3) if ratios else None,
        "latency_architectures": len(ratios),
        "trials": frame["status"].value_counts().to_dict(),
    }
    (out_dir / "overhead.json").write_text(json.dumps({**figures, "latency": latency_rows}, indent=2))
    lines = ["# nas bench overhead", "", f"Search: {figures['search']}.", "", "| figure | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in figures.items() if k != "search"]
    lines += ["", "## Latency (ms, profile " + config.problem.latency_profile + "): in search vs alone", "",
              "| spec key | in search | alone | ratio |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['spec_key']} | {r['in_search_ms']:.1f} | {r['alone_ms']:.1f} | {r['ratio']:.3f} |" for r in latency_rows]
    (out_dir / "overhead.md").write_text("\n".join(lines) + "\n")
    return figures
