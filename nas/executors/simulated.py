"""The simulated executor: trials replayed from a recorded table on a discrete-event clock, no Ray, no training.

It drives the same loop as every executor (:class:`~nas.executors.loop.SearchLoop`: the real core, the real rung
rule, a real sampler over an in-memory study), so statuses, counting, duplicates, constraints and fronts are
exactly a real search's. Only training is replaced: a started trial is looked up in the table (its
architecture, at a recorded seed drawn per trial) and its epochs "happen" when the clock reaches them.

The clock (simulated seconds from 0) jumps from event to event. ``workers`` trials run at once, and as in
Ray Tune ``pending`` more are requested ahead (:func:`ray_pending`): such a trial waits for the next free worker,
sampled without the results of the trials running meanwhile. A trial's timeline, from the moment it starts:

* ``startup_s``: the executor's start of the trial to its first training step (the table's median
  ``startup_seconds``: Ray scheduling the trial, the actor, building the model);
* epoch k ends ``seconds_k`` later (the recorded epoch seconds, training and validation);
* the latency is measured alongside the first epoch: the first report comes at
  ``startup_s + max(seconds_1, latency_s)``, ``latency_s`` being the architecture's recorded measuring time.

Both overheads can be switched off (:meth:`Overheads.none`): one FIFO worker's elapsed time is then the plain
sum of the recorded epoch seconds.
"""

from __future__ import annotations

import itertools
import random
import statistics
from dataclasses import dataclass, field
from heapq import heappop, heappush

from nas.config import SearchConfig
from nas.core.searchcore import FINISHED
from nas.executors.contracts import EpochReport, LatencyReading, OutcomeKind, TrialOutcome, TrialRequest
from nas.executors.loop import TrialLoop
from nas.sim.table import Table


@dataclass(frozen=True)
class Overheads:
    """What a real trial spends besides its epochs (seconds), modelled from the table's figures."""

    startup_s: float
    latency_s: dict[str, float]  # spec key -> seconds the measurer took for it

    @classmethod
    def from_table(cls, table: Table) -> "Overheads":
        startups = [float(v) for v in table.rows["startup_seconds"].dropna()]
        latency = {key: float(value) for key, value in zip(table.rows["spec_key"], table.rows["latency_seconds"])
                   if value is not None and value == value}
        return cls(startup_s=statistics.median(startups) if startups else 0.0, latency_s=latency)

    @classmethod
    def none(cls) -> "Overheads":
        return cls(startup_s=0.0, latency_s={})

    def describe(self) -> str:
        measured = sorted(self.latency_s.values())
        latency = f"median {statistics.median(measured):.1f} s" if measured else "none"
        return (f"start-up {self.startup_s:.2f} s per trial (median recorded); latency measurement {latency} per "
                f"architecture, overlapping its first epoch")


class SimClock:
    """The simulated wall clock (seconds from the start); the core reads it through ``clock=``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ray_pending(config: SearchConfig) -> int:
    """Trials Ray Tune asks our searcher for beyond those running: its ``max_pending_trials`` is 1 for a custom
    searcher, and with ``--max-concurrent`` its concurrency limiter caps running + pending at that number."""
    return 0 if config.execution.max_concurrent else 1


@dataclass
class _Running:
    request: TrialRequest
    curve: list[dict]  # the recorded epoch rows (or one failure row)
    next_epoch: int = 0  # index into curve of the next report
    train_started: float = 0.0
    last: EpochReport | None = None


@dataclass
class SimulatedExecutor:
    """Replays the loop's requests from ``table``; ``seeds_used``: trial number -> the recorded seed replayed."""

    table: Table
    clock: SimClock
    seed: int
    workers: int = 1
    pending: int = 1
    overheads: Overheads = field(default_factory=Overheads.none)
    table_seed: int | None = None
    latency_profile: str | None = None  # None: latency is not an objective, reports carry none
    seeds_used: dict[int, int] = field(default_factory=dict)
    _order: itertools.count = field(default_factory=itertools.count, repr=False)

    def run(self, loop: TrialLoop) -> None:
        draw = random.Random(self.seed)
        events: list[tuple[float, int, str]] = []
        running: dict[str, _Running] = {}
        queued: list[TrialRequest] = []  # requested, waiting for a worker
        counter, finished = 0, False
        while True:
            while True:
                while queued and len(running) < self.workers:
                    self._start(queued.pop(0), running, events, draw)
                if finished or len(running) + len(queued) >= self.workers + self.pending:
                    break
                counter += 1
                request = loop.request(f"sim-{counter:05d}")
                if request == FINISHED:
                    finished = True
                elif request is None:
                    break
                else:
                    queued.append(request)
            if not events:
                return
            self.clock.now, _, trial_id = heappop(events)
            self._step(loop, running[trial_id], running, events)

    def _start(self, request: TrialRequest, running: dict[str, _Running], events: list, draw: random.Random) -> None:
        key = request.spec.key()
        recorded = self.table.seeds_of(key)
        seed = self.table_seed if self.table_seed in recorded else draw.choice(recorded)
        self.seeds_used[request.number] = seed
        run = _Running(request, self.table.curve(key, seed).to_dict("records"),
                       train_started=self.clock.now + self.overheads.startup_s)
        running[request.trial_id] = run
        first = run.curve[0]
        epoch_s = 0.0 if first["epoch"] == 0 else float(first["seconds"])
        wait = max(epoch_s, self.overheads.latency_s.get(key, 0.0)) if self.latency_profile else epoch_s
        self._schedule(events, run.train_started + wait, request.trial_id)

    def _schedule(self, events: list, at: float, trial_id: str) -> None:
        """Events at the same time happen in the order they were scheduled."""
        heappush(events, (at, next(self._order), trial_id))

    def _step(self, loop: TrialLoop, run: _Running, running: dict[str, _Running], events: list) -> None:
        row = run.curve[run.next_epoch]
        trial_id = run.request.trial_id
        latency = self._latency(row)
        if row["epoch"] == 0:  # a recorded failure: the trial reported its error
            del running[trial_id]
            loop.finish(TrialOutcome(trial_id, OutcomeKind.FAILED, error=str(row["error"]), latency=latency))
            return
        run.last = EpochReport(
            trial_id=trial_id, epoch=int(row["epoch"]), accuracy=float(row["accuracy"]), loss=float(row["loss"]),
            seconds=float(row["seconds"]), latency=latency, train_started_at=run.train_started,
            reported_at=self.clock.now, train_seconds=self.clock.now - run.train_started)
        keep = loop.report(run.last)
        run.next_epoch += 1
        if keep and run.next_epoch < len(run.curve):
            self._schedule(events, self.clock.now + float(run.curve[run.next_epoch]["seconds"]), trial_id)
            return
        del running[trial_id]
        loop.finish(TrialOutcome(trial_id, OutcomeKind.TRAINED, last=run.last, latency=latency))

    def _latency(self, row: dict) -> LatencyReading | None:
        value = row.get("latency_ms")
        if self.latency_profile is None or value is None or value != value:
            return None
        cv = row.get("latency_cv")
        return LatencyReading(float(value), self.latency_profile, None if cv is None or cv != cv else float(cv))
