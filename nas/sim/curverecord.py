"""``nas bench curves SPACE``: record a space's benchmark table (:mod:`nas.sim.curvetable`) without Ray.

Every buildable architecture of the space is trained by :func:`runners.curve.train_curve` at the settings of
:data:`BENCH_SETTINGS` and evaluated at each of its budgets (``docs/bench/bench-table.md``). Runs go to a
local process pool: ``workers`` processes at once, each with ``threads`` torch threads, **a fresh process per
run** (so the run's peak memory is its own, and a crash or leak cannot reach the next run). Only torch is
needed, so a machine without Ray (a lent GPU box, a laptop) can record too.

Order (:func:`record_plan`): the architectures round-robin over their strata, each with its second seed right
after its first for a stratified third of them; then the second seed of the rest. A partial recording is a
stratified sample of the space with two seeds for a third of it.

Resumable: the table is rewritten (atomically) after every run; a second call with the same ``out`` reads it,
refuses it when it was recorded with other settings, and trains only the (architecture, seed) pairs not yet in
it. Latency (the manifest's CPU profile) is measured last, alone on the machine, one architecture at a time,
and cached on disk (:mod:`runners.latency`), once every run has trained.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

from nas.sim.curvetable import CURVE_TABLE_VERSION, CurveTable, curve_frame, pack_correct, pack_loss, \
    read_curve_table, write_curve_table
from nas.sim.table import space_digest
from runners.proxy import ProxyConfig
from space.errors import UserInputError

TABLE_NAME = "table.parquet"


@dataclass(frozen=True)
class BenchSettings:
    """What every run of a benchmark table is trained and measured with (stored in its manifest)."""

    proxy: ProxyConfig
    budgets: tuple[float, ...]  # epochs; the last one is proxy.epochs
    train_clips: int
    val_clips: int
    num_classes: int = 12
    data_seed: int = 0  # the same clips for every training seed: seed-to-seed spread is training noise only
    deploy_shape: tuple[int, int, int] = (16, 112, 112)
    latency_profile: str = "cpu-quick"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps({**dataclasses.asdict(self), "proxy": self.proxy.to_dict()}))


# 48 steps per epoch at batch 32; evaluations after 24, 48, 96, 144 and 192 steps (8x); lr 0.05 as the search's
# default proxy (the demo's 0.1 collapses some runs to chance: docs/proxy.md).
BENCH_SETTINGS = BenchSettings(
    proxy=ProxyConfig(epochs=4, batch_size=32, lr=0.05, width_mult=0.25, frames=8, size=32, threads=1),
    budgets=(0.5, 1.0, 2.0, 3.0, 4.0), train_clips=1536, val_clips=1024,
)


@dataclass(frozen=True)
class CurveJob:
    """One (architecture, training seed) to record."""

    spec: dict[str, Any]
    spec_key: str
    seed: int


def record_plan(space_name: str, settings: BenchSettings, seeds: int) -> tuple[list[CurveJob], str]:
    """The runs of a full recording in recording order, and the space digest (refuses unbuildable architectures).

    Order: the architectures round-robin over their strata (family, depth, conv or sub-streams), so a partial
    recording is a stratified sample; seed 1 of every third architecture of each stratum right after its seed 0,
    so a partial recording already has a second seed for a third of what it holds; then seed 1 of the others;
    then seeds 2 and up.
    """
    from space.searchspace import load_space

    space = load_space(space_name)
    specs = list(space.enumerate())
    broken = [s.key() for s in specs if space.build_error(s, 1.0) or space.build_error(s, settings.proxy.width_mult)]
    if broken:
        raise UserInputError(f"space {space_name!r} has {len(broken)} architecture(s) not buildable at width 1 or "
                             f"{settings.proxy.width_mult}; a benchmark space must be buildable whole")
    strata: dict[tuple, list[tuple[dict, str]]] = {}
    for spec in specs:
        d = spec.to_dict()
        strata.setdefault((d["family"], d.get("depth"), str(d.get("conv", d.get("substreams")))), []).append((d, spec.key()))
    twice = {key for members in strata.values() for i, (_, key) in enumerate(members) if i % 3 == 0}
    ordered = _round_robin(list(strata.values()))
    jobs = []
    for spec, key in ordered:
        jobs.append(CurveJob(spec, key, 0))
        if seeds > 1 and key in twice:
            jobs.append(CurveJob(spec, key, 1))
    jobs += [CurveJob(spec, key, 1) for spec, key in ordered if seeds > 1 and key not in twice]
    jobs += [CurveJob(spec, key, seed) for seed in range(2, seeds) for spec, key in ordered]
    return jobs, space_digest(key for _, key in ordered)


def _round_robin(groups: list[list]) -> list:
    """One item of each group in turn, until every group is empty."""
    out, depth = [], max(len(g) for g in groups)
    for i in range(depth):
        out += [g[i] for g in groups if i < len(g)]
    return out


def record_curves(space_name: str, out_dir: Path, *, seeds: int = 2, workers: int = 2,
                  settings: BenchSettings = BENCH_SETTINGS, limit: int | None = None,
                  measure_latency: bool = True) -> CurveTable:
    """Record (or resume) ``space_name``'s benchmark table into ``out_dir/table.parquet``.

    ``limit``: train at most this many runs in this call (a partial recording, resumed by the next call).
    """
    if seeds < 1 or workers < 1:
        raise UserInputError(f"--seeds {seeds} / --workers {workers}: allowed: integers >= 1")
    jobs, digest = record_plan(space_name, settings, seeds)
    path = out_dir / TABLE_NAME
    existing = read_curve_table(path) if path.exists() else None
    manifest = _manifest(space_name, settings, digest, seeds, existing)
    rows = existing.rows.to_dict("records") if existing is not None else []
    done = existing.done() if existing is not None else set()
    rows = [r for r in rows if (r["spec_key"], int(r["seed"])) in done]  # drop half-recorded runs: retrained
    todo = [job for job in jobs if (job.spec_key, job.seed) not in done][:limit]
    out_dir.mkdir(parents=True, exist_ok=True)
    table = CurveTable(curve_frame(rows), manifest)
    write_curve_table(path, table)
    if todo:
        table = _train_all(todo, settings, workers, path, table, total=len(jobs), done=len(done))
    if measure_latency and len(table.done()) == len(jobs):
        table = _measure_latencies(table, settings, out_dir / "latency-cache", path)
    return table


def _manifest(space_name: str, settings: BenchSettings, digest: str, seeds: int, existing: CurveTable | None) -> dict:
    from nas.sim.record import space_yaml
    from runners.latency import get_profile

    if existing is not None:
        old = existing.manifest
        if old.get("space_digest") != digest or old.get("settings") != settings.to_dict():
            raise UserInputError(f"the table in this folder was recorded for another space or other settings "
                                 f"(space {old.get('space')!r}); record into another --out")
        return {**old, "seeds": sorted(set(old.get("seeds", [])) | set(range(seeds)))}
    profile = get_profile(settings.latency_profile)
    return {
        "version": CURVE_TABLE_VERSION, "space": space_name, "space_digest": digest, "space_yaml": space_yaml(space_name),
        "settings": settings.to_dict(), "budgets": list(settings.budgets), "seeds": list(range(seeds)),
        "data": {"kind": "synthetic", "train": settings.train_clips, "val": settings.val_clips,
                 "num_classes": settings.num_classes, "seed": settings.data_seed,
                 "clip": [settings.proxy.frames, settings.proxy.size, settings.proxy.size]},
        "latency": {"profile": profile.name, "shape": list(profile.shape), "note": profile.note},
        "machine": _machine(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _machine() -> dict[str, Any]:
    import platform

    import torch

    from nas.runlock import cpu_model, git_revision

    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": sys.version.split()[0], "torch": str(torch.__version__), "git_revision": git_revision(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _train_all(todo: list[CurveJob], settings: BenchSettings, workers: int, path: Path, table: CurveTable, *,
               total: int, done: int) -> CurveTable:
    """Run the jobs ``workers`` at a time, a fresh process each; rewrite the table as each run ends.

    A worker that dies (killed, out of memory) breaks its whole pool: every run in flight fails with it, and
    nothing says which one broke it. Those runs are retried one at a time, each in a pool of its own; only a run
    that breaks a pool while alone is recorded as a failure, and the others go on.
    """
    from nas.runlock import git_revision

    revision = git_revision()
    rows = table.rows.to_dict("records")
    started, finished = time.time(), 0

    def record(job: CurveJob, job_rows: list[dict]) -> None:
        nonlocal table, finished
        rows.extend(job_rows)
        table = CurveTable(curve_frame(rows), table.manifest)
        write_curve_table(path, table)
        finished += 1
        rate = (time.time() - started) / finished
        left = rate * (len(todo) - finished)
        print(f"curves: {done + finished}/{total} runs · {rate:.0f} s/run · ETA {left / 3600:.1f} h "
              f"· last {job.spec_key} seed {job.seed}", file=sys.stderr, flush=True)

    queue, suspects = list(todo), []
    while queue or suspects:
        if not suspects:
            suspects = _run_pool(queue, workers, settings, revision, record)
            continue
        job = suspects.pop(0)
        if _run_pool([job], 1, settings, revision, record):
            record(job, [_failure_row(job, "its worker process died while it trained alone (killed, or out of "
                                           "memory)", revision)])
    return table


def _run_pool(queue: list[CurveJob], workers: int, settings: BenchSettings, revision: str | None,
              record: Callable[[CurveJob, list[dict]], None]) -> list[CurveJob]:
    """Run ``queue``'s jobs (consumed) in one pool, ``record`` each as it ends; the jobs lost if the pool broke."""
    context = get_context("forkserver")
    context.set_forkserver_preload(["torch", "runners.curve", "space"])
    pending: dict[Future, CurveJob] = {}
    lost: list[CurveJob] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, max_tasks_per_child=1) as pool:
        while (queue and not lost) or pending:
            while queue and not lost and len(pending) < workers:
                job = queue.pop(0)
                try:
                    pending[pool.submit(record_run, job, settings, revision)] = job
                except BrokenProcessPool:
                    lost.append(job)
            ready, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in ready:
                job = pending.pop(future)
                if isinstance(future.exception(), BrokenProcessPool):
                    lost.append(job)
                else:
                    record(job, _rows_or_failure(future, job, revision))
    return lost


def _rows_or_failure(future: Future, job: CurveJob, revision: str | None) -> list[dict]:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - the run could not even start (an unbuildable spec): one failure row
        return [_failure_row(job, f"{type(exc).__name__}: {exc}", revision)]


def _failure_row(job: CurveJob, error: str, revision: str | None) -> dict:
    return {"spec_key": job.spec_key, "spec": json.dumps(job.spec, sort_keys=True), "family": job.spec["family"],
            "seed": job.seed, "budget": 0.0, "error": error, "revision": revision}


def record_run(job: CurveJob, settings: BenchSettings, revision: str | None) -> list[dict]:
    """In a worker process: costs, then the learning curve; one row per budget (one failure row on error)."""
    from runners.costs import model_costs
    from runners.curve import train_curve
    from runners.synthetic import SyntheticConfig, synthetic_splits
    from space import spec_from_dict

    spec = spec_from_dict(job.spec)
    costs = model_costs(spec, shape=settings.deploy_shape, num_classes=400)
    base = {"spec_key": job.spec_key, "spec": json.dumps(job.spec, sort_keys=True), "family": job.spec["family"],
            "gmacs": costs.gmacs, "params": costs.params, "recurrent_params": costs.recurrent_params,
            "seed": job.seed, "revision": revision}
    synthetic = SyntheticConfig(num_classes=settings.num_classes, frames=settings.proxy.frames, size=settings.proxy.size)
    data = synthetic_splits(train=settings.train_clips, val=settings.val_clips, config=synthetic, seed=settings.data_seed)
    rss_before = _rss_mib()
    try:
        points = train_curve(spec, data["train"], data["val"], dataclasses.replace(settings.proxy, seed=job.seed),
                             settings.budgets)
    except Exception as exc:  # noqa: BLE001 - a divergence or an error is a recorded outcome, not a crash
        return [{**base, "budget": 0.0, "error": f"{type(exc).__name__}: {exc}"}]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run = {"peak_rss_mib": peak, "train_rss_mib": peak - rss_before, "worker_load": os.getloadavg()[0], "error": None}
    return [{**base, **run, "budget": p.budget, "steps": p.steps, "accuracy": p.accuracy, "val_loss": p.val_loss,
             "train_loss": p.train_loss, "seconds": p.seconds, "cpu_seconds": p.cpu_seconds,
             "correct": pack_correct(p.correct), "clip_loss": pack_loss(p.clip_loss)} for p in points]


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _measure_latencies(table: CurveTable, settings: BenchSettings, cache_dir: Path, path: Path) -> CurveTable:
    """Each architecture's latency on the manifest's profile, alone, one after the other (cached on disk)."""
    from runners.latency import measure_latency
    from space import spec_from_dict

    rows = table.rows.copy()
    keys = table.architectures()
    for number, key in enumerate(keys, start=1):
        result = measure_latency(spec_from_dict(table.spec(key)), settings.latency_profile, cache=cache_dir)
        rows.loc[rows["spec_key"] == key, ["latency_ms", "latency_cv"]] = (result.fwd_ms_median, result.cv)
        print(f"curves: latency {number}/{len(keys)} {key} {result.fwd_ms_median:.1f} ms", file=sys.stderr, flush=True)
    table = CurveTable(rows, table.manifest)
    write_curve_table(path, table)
    return table
