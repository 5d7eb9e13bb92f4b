"""``nas bench record SPACE``: train every architecture of a space through a real executor and write its table.

"A real executor" literally: the executor a search uses (:mod:`nas.executors`: Ray Tune by default, the local
pool with ``executor="local"``) runs the trial body every search trial runs, with the settings a search builds,
the latency measurer a search starts, and the proxy data a search with that seed builds. Only the choice of
what to train differs: every (architecture, seed) in a fixed order, handed out by :class:`RecordingLoop`, with
no trial ever stopped. A trial trains with the seed a search with seed ``s`` would give it
(:func:`nas.core.searchcore.trial_seed`), so a real search's trial and its table row trained identically.

Resumable: the table is rewritten (atomically) after every trial; a second run with the same ``--out``
reads it, refuses it if it was recorded with other settings, and trains only the pairs not in it yet.
Order: seed by seed (every architecture of seed 0, then of seed 1, ...), so a half-done recording is
already a complete one-seed table.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from nas.config import SearchConfig
from nas.core.searchcore import FINISHED, trial_seed
from nas.executors.contracts import EpochReport, OutcomeKind, TrialOutcome, TrialRequest
from nas.sim.table import TABLE_FILE, TABLE_VERSION, Table, check_compatible, read_table, recorded_settings, \
    space_digest, table_frame, write_table
from space import ArchSpec, catalog_spec
from space.errors import UserInputError
from space.searchspace import load_space


@dataclass(frozen=True)
class Job:
    """One (architecture, search seed) to train."""

    spec: ArchSpec
    seed: int
    baseline: str | None


@dataclass(frozen=True)
class RecordOutcome:
    table_path: Path
    recorded: int  # (architecture, seed) pairs trained by this call
    total: int  # pairs the finished table will hold
    done: int  # pairs in the table now
    seconds_per_trial: float | None  # mean wall seconds of this call's trials


def record_plan(config: SearchConfig, *, seeds: int) -> tuple[list[Job], list[str], str]:
    """Every buildable architecture of the space (then the config's baselines) for seeds 0..seeds-1.

    Returns (jobs in recording order, spec keys not buildable at full or proxy width, the space digest).
    A baseline whose architecture is in the space is not recorded twice: the simulator finds it by spec key.
    """
    space = load_space(config.space)
    specs, unbuildable = [], []
    for spec in space.enumerate():
        if space.build_error(spec, 1.0) or space.build_error(spec, config.proxy.width_mult):
            unbuildable.append(spec.key())
        else:
            specs.append(spec)
    digest = space_digest(s.key() for s in space.enumerate())
    in_space = {spec.key() for spec in space.enumerate()}
    extra = [(catalog_spec(name), name) for name in config.problem.baselines]
    # a baseline that is also an architecture of the space (the demo's r3d-18, srtg-r3d-18-final) is recorded once
    archs = [(spec, None) for spec in specs] + [(spec, name) for spec, name in extra if spec.key() not in in_space]
    jobs = [Job(spec, seed, baseline) for seed in range(seeds) for spec, baseline in archs]
    return jobs, unbuildable, digest


def space_yaml(name_or_path: str) -> str:
    """The YAML text of a preset or a space file."""
    from importlib import resources

    from space.searchspace import preset_names

    if str(name_or_path) in preset_names():
        return (resources.files("space") / "presets" / f"{name_or_path}.yaml").read_text()
    return Path(name_or_path).read_text(encoding="utf-8")


def check_record_args(config: SearchConfig, *, seeds: int, workers: int) -> None:
    """Bad input before anything is started or written."""
    if seeds < 1:
        raise UserInputError(f"--seeds {seeds} is not allowed; allowed: an integer >= 1 (the issue asks for >= 2)")
    if workers < 1:
        raise UserInputError(f"--workers {workers} is not allowed; allowed: an integer >= 1")
    if config.problem.constraints:
        raise UserInputError("a recording trains every architecture: it takes no --max-* constraint "
                             "(the simulator applies constraints to the recorded costs)")


def _manifest(config: SearchConfig, *, digest: str, unbuildable: list[str], seeds: list[int], started: str) -> dict:
    """What the table was recorded with; ``space_yaml`` keeps the space itself, so a table outlives its file."""
    from nas.runlock import environment
    from runners.latency import get_profile, hardware_fingerprint

    fingerprint = hardware_fingerprint(get_profile(config.problem.latency_profile))
    env = environment()
    return {
        "version": TABLE_VERSION,
        "space": str(config.space),
        "space_digest": digest,
        "space_yaml": space_yaml(config.space),
        "unbuildable": unbuildable,
        "baselines": list(config.problem.baselines),
        "seeds": seeds,
        "settings": recorded_settings(config),
        "data": {"kind": config.data.dataset, "num_clips": config.data.num_clips, "num_classes": config.data.num_classes,
                 "cache": config.data.cache, "seeded_by": "the search seed (the data a search with that seed builds)"},
        "hardware": {"latency_fingerprint": fingerprint.as_dict(), "cpu": env["cpu"], "cpu_count": env["cpu_count"],
                     "gpu": env["gpu"], "platform": env["platform"], "hostname": env["hostname"]},
        "versions": {k: env[k] for k in ("python", "torch", "ray", "optuna", "git_revision")},
        "started_at": started,
    }


def record_table(*, config: SearchConfig, out_dir: Path, seeds: int = 2, workers: int = 1,
                 show_progress: bool = True, jobs: list[Job] | None = None) -> RecordOutcome:
    """Record (or resume recording) the table of ``config.space`` into ``out_dir/table.parquet``.

    ``jobs``: record these (architecture, seed) pairs of the space instead of all of it (``nas confirm``)."""
    check_record_args(config, seeds=seeds, workers=workers)
    config = config.replace(max_concurrent=workers)
    if jobs is None:
        jobs, unbuildable, digest = record_plan(config, seeds=seeds)
    else:
        unbuildable, digest = [], space_digest(s.key() for s in load_space(config.space).enumerate())
    table_path = out_dir / TABLE_FILE
    existing = read_table(table_path) if table_path.exists() else None
    if existing is not None:
        check_compatible(existing.manifest, config=config, digest=digest, what=f"the table at {table_path}")
    done = existing.done() if existing is not None else set()
    todo = [job for job in jobs if (job.spec.key(), job.seed) not in done]
    total = len({(j.spec.key(), j.seed) for j in jobs} | done)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = existing.manifest.get("started_at") if existing else time.strftime("%Y-%m-%dT%H:%M:%S%z")
    manifest = _manifest(config, digest=digest, unbuildable=unbuildable, seeds=sorted({j.seed for j in jobs}),
                         started=started)
    if existing is not None:
        manifest["seeds"] = sorted(set(manifest["seeds"]) | set(existing.manifest.get("seeds", [])))
    writer = _TableWriter(table_path, manifest, existing)
    progress = RecordProgress(total=total, done=len(done), enabled=show_progress)
    if todo:
        _run_jobs(config, todo, out_dir, writer, progress)
    writer.flush()
    final = read_table(table_path)
    return RecordOutcome(table_path, progress.recorded, total, len(final.done()), progress.seconds_per_trial())


class _TableWriter:
    """Collects rows as trials finish and rewrites the table after each (atomic, so resumable at any moment)."""

    def __init__(self, path: Path, manifest: dict, existing: Table | None) -> None:
        self.path, self.manifest = path, manifest
        self.rows: list[dict] = existing.rows.to_dict("records") if existing is not None else []
        if existing is not None:  # drop pairs left half-recorded by an interrupted run: they are trained again
            done = existing.done()
            self.rows = [r for r in self.rows if (r["spec_key"], int(r["seed"])) in done]

    def add(self, rows: list[dict]) -> None:
        recorded = {(r["spec_key"], int(r["seed"])) for r in self.rows}
        self.rows.extend(r for r in rows if (r["spec_key"], int(r["seed"])) not in recorded)  # never one pair twice
        self.flush()

    def flush(self) -> None:
        self.manifest["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_table(self.path, Table(table_frame(self.rows), self.manifest))


class RecordProgress:
    """A bar with the trials done, seconds per trial and an ETA; on a pipe, one plain line per trial on stderr."""

    def __init__(self, *, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, done, enabled
        self.recorded = 0
        self.started = time.time()
        self.plain = not sys.stderr.isatty()
        self._bar = None
        if enabled and not self.plain:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("record"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                 TextColumn("ETA"), TimeRemainingColumn(), transient=False)
            self._task = self._bar.add_task("record", total=total, completed=done, rate="")
            self._bar.start()
        self.line()

    def seconds_per_trial(self) -> float | None:
        return (time.time() - self.started) / self.recorded if self.recorded else None

    def trial_done(self) -> None:
        self.recorded += 1
        self.done += 1
        self.line()

    def line(self) -> None:
        if not self.enabled:
            return
        rate = self.seconds_per_trial()
        rate_text = f"{rate:.0f} s/trial" if rate else "timing the first trial"
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=rate_text)
            return
        eta = "ETA: after the first trial"
        if rate:
            left = rate * (self.total - self.done)
            eta = f"ETA {int(left // 3600)}:{int(left % 3600 // 60):02d}:{int(left % 60):02d}"
        print(f"record: {self.done}/{self.total} trials · {rate_text} · {eta}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _run_jobs(config: SearchConfig, todo: list[Job], out_dir: Path, writer: _TableWriter,
              progress: RecordProgress) -> None:
    """The jobs seed by seed (each seed has its own proxy data) through one executor: Ray Tune or the local pool."""
    from nas.executors.raytune import local_cpus_for
    from nas.measurer import measurer_resources
    from nas.proxydata import build_proxy_data
    from nas.search import static_cost_fn

    costs_dir = out_dir / "costs"
    measure_first = _measures_first(config)
    workers = config.execution.max_concurrent or 1
    try:
        with _executor(config, out_dir, measure_first=measure_first, num_cpus=local_cpus_for(
                workers, config.execution.cpus_per_trial, measurer_resources(config.problem.latency_profile)
                .get("num_cpus", 0)) if measure_first else None) as executor:
            if measure_first:
                _measure_every_latency(executor, todo, enabled=progress.enabled)
            static_costs = static_cost_fn(config.problem)
            for seed in sorted({job.seed for job in todo}):
                jobs = [job for job in todo if job.seed == seed]
                data = build_proxy_data(config.data, frames=config.proxy.frames, size=config.proxy.size, seed=seed)
                loop = RecordingLoop(jobs, static_costs, writer, progress, costs_dir / "measurer-log.jsonl")
                executor.run(loop, data)
    finally:
        progress.close()


def _executor(config: SearchConfig, out_dir: Path, *, measure_first: bool, num_cpus: int | None):
    if config.execution.executor == "local":
        from nas.executors.localpool import LocalPoolExecutor

        return LocalPoolExecutor(config, costs_dir=out_dir / "costs", share_measurer_cores=measure_first)
    from nas.executors.raytune import RayTuneExecutor

    return RayTuneExecutor(config, state_dir=out_dir / "ray", costs_dir=out_dir / "costs",
                           name=f"record-{out_dir.resolve()}", num_cpus=num_cpus, measure_first=measure_first)


def _measures_first(config: SearchConfig) -> bool:
    """Several trials at once on a local CPU machine: every latency is measured first, then trials use every core.

    A search keeps trials off the measurer's core because it measures while trials train. A recording knows
    every architecture up front, so it measures them all first, alone on the machine (the same measurer, the
    same cache); after that the measurer only answers from its cache, and ``--workers`` trials may train
    on every core, including the measurer's, without disturbing a measurement.
    """
    from runners.latency import get_profile

    return ((config.execution.max_concurrent or 1) > 1 and config.problem.needs_latency
            and not config.execution.address and not get_profile(config.problem.latency_profile).device.startswith("cuda"))


def _measure_every_latency(executor, todo: list[Job], *, enabled: bool) -> None:
    """Ask the measurer for each architecture's latency, one after the other, before any trial starts."""
    specs = list({job.spec.key(): job.spec for job in todo}.values())
    for number, spec in enumerate(specs, start=1):
        try:
            executor.measure_latency(spec)
        except Exception as error:  # noqa: BLE001 - its trial asks again and records the failure in its row
            print(f"record: latency of {spec.key()} failed ({error}); its trial records the error", file=sys.stderr)
        if enabled:
            print(f"record: latency first, {number}/{len(specs)} architectures measured", file=sys.stderr, flush=True)


class RecordingLoop:
    """A recording as the executors' loop (:class:`nas.executors.loop.TrialLoop`): the jobs in order, every epoch
    continues (FIFO), each trial's outcome becomes its table rows. A trial whose process died records nothing:
    a resumed recording trains it again."""

    def __init__(self, jobs: list[Job], static_costs, writer: _TableWriter, progress: RecordProgress,
                 measurer_log: Path) -> None:
        self.queue = list(enumerate(jobs))
        self.static_costs, self.writer, self.progress, self.measurer_log = static_costs, writer, progress, measurer_log
        self.running: dict[str, tuple[Job, TrialRequest, float, list[EpochReport]]] = {}

    def request(self, trial_id: str) -> TrialRequest | str | None:
        if not self.queue:
            return FINISHED if not self.running else None
        number, job = self.queue.pop(0)
        request = TrialRequest(trial_id=trial_id, number=number, spec=job.spec, seed=trial_seed(job.seed, job.spec.key()),
                               costs=self.static_costs(job.spec), baseline=job.baseline)
        self.running[trial_id] = (job, request, time.time(), [])
        return request

    def is_exempt(self, trial_id: str) -> bool:
        return True

    def report(self, report: EpochReport) -> bool:
        if report.trial_id in self.running:
            self.running[report.trial_id][3].append(report)
        return True

    def finish(self, outcome: TrialOutcome) -> None:
        job, request, started, reports = self.running.pop(outcome.trial_id)
        if outcome.kind is OutcomeKind.DIED:
            print(f"record: trial {outcome.trial_id} died; it is retrained on resume", file=sys.stderr, flush=True)
            return
        rows = trial_rows(job, request, reports, outcome, started=started,
                          latency_seconds=_measure_seconds(self.measurer_log))
        self.writer.add(rows)
        self.progress.trial_done()


def _measure_seconds(log: Path) -> dict[str, float]:
    """Per spec key, the wall seconds the measurer took the first (uncached) time: its longest logged call."""
    import json

    seconds: dict[str, float] = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            key = entry["spec_key"]
            seconds[key] = max(seconds.get(key, 0.0), float(entry["end"]) - float(entry["start"]))
    return seconds


def trial_rows(job: Job, request: TrialRequest, reports: list[EpochReport], outcome: TrialOutcome, *,
               started: float | None, latency_seconds: dict[str, float]) -> list[dict]:
    """One trial's epochs -> its table rows (one per epoch; one epoch-0 row for a failure)."""
    import json

    spec_key = job.spec.key()
    base = {
        "spec_key": spec_key, "spec": json.dumps(job.spec.to_dict(), sort_keys=True), "family": job.spec.family,
        "baseline": job.baseline, "gmacs": request.costs.gmacs, "params": request.costs.params,
        "recurrent_params": request.costs.recurrent_params, "latency_seconds": latency_seconds.get(spec_key),
        "seed": job.seed, "trial_seed": request.seed,
    }
    if outcome.kind is not OutcomeKind.TRAINED or not reports:
        latency = outcome.latency.ms if outcome.latency is not None else None
        return [{**base, "latency_ms": latency, "epoch": 0, "error": str(outcome.error or "no epoch reported")}]
    train_started = reports[0].train_started_at
    startup = train_started - started if started is not None else None
    rows, previous = [], train_started
    for report in reports:
        rows.append({**base, "latency_ms": report.latency.ms if report.latency else None, "startup_seconds": startup,
                     "error": None, "epoch": report.epoch, "accuracy": report.accuracy, "loss": report.loss,
                     "seconds": report.seconds, "report_seconds": report.reported_at - previous})
        previous = report.reported_at
    return rows
