"""The typed contracts that cross the executor seam (``docs/architecture.md``, "One search core, three executors").

An executor receives a :class:`TrialRequest`, sends back one :class:`EpochReport` per trained epoch, and ends
every trial with one :class:`TrialOutcome`. Nothing else crosses: no string-keyed dict. How an executor carries
them over its own transport (Ray Tune's config and result dicts, a process pool's pipes, a simulated clock) is
its own business, behind the seam.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from space.spec import ArchSpec


@dataclass(frozen=True)
class StaticCosts:
    """What is known about an architecture before training (the real model at the deployment shape)."""

    gmacs: float
    params: int
    recurrent_params: int


@dataclass(frozen=True)
class TrialRequest:
    """One trial to train: which architecture, with which seed, and what is already known about it.

    ``number`` is the Optuna trial number (or the row of a recording); ``baseline`` names the catalog
    architecture a baseline trial trains (baselines are exempt from every rung rule).
    """

    trial_id: str
    number: int
    spec: ArchSpec
    seed: int
    costs: StaticCosts
    baseline: str | None = None


@dataclass(frozen=True)
class LatencyReading:
    """A latency measured for a trial: median forward milliseconds on a named profile, and the coefficient of
    variation of its timings (None where it was not kept: a recorded table without it)."""

    ms: float
    profile: str
    cv: float | None = None


@dataclass(frozen=True)
class EpochReport:
    """One trained epoch of one trial.

    ``seconds``: the epoch's wall seconds (training and validation); ``train_started_at`` / ``reported_at``:
    absolute unix times (``nas bench overhead`` unions such intervals); ``gate_open_rates``: SRTG block name ->
    the share of validation clips whose gate opened (None where the block saw one frame).
    """

    trial_id: str
    epoch: int
    accuracy: float
    loss: float
    seconds: float
    latency: LatencyReading | None = None
    data_wait_seconds: float = 0.0
    train_seconds: float = 0.0
    train_started_at: float = 0.0
    reported_at: float = 0.0
    gate_open_rates: dict[str, float | None] = field(default_factory=dict)


class OutcomeKind(str, Enum):
    """How a trial ended. TRAINED: it reported its epochs and stopped (at the full budget or by a rung rule);
    FAILED: an error in the trial (a divergence, out of memory, a bug); DIED: its process vanished (killed, out
    of host memory), nothing to report; INFEASIBLE: its latency broke ``--max-latency-ms``, never trained."""

    TRAINED = "trained"
    FAILED = "failed"
    DIED = "died"
    INFEASIBLE = "infeasible"


@dataclass(frozen=True)
class TrialOutcome:
    """The end of one trial: how it ended, its last epoch (if any), the error message, the latency measured."""

    trial_id: str
    kind: OutcomeKind
    last: EpochReport | None = None
    error: str | None = None
    traceback: str | None = None
    latency: LatencyReading | None = None

    @property
    def fidelity(self) -> int:
        return self.last.epoch if self.last is not None else 0
