"""``nas bench proxy``'s settings: the fidelities it compares and everything else that changes its results.

A :class:`Fidelity` is one way of training the proxy (epochs x width x frames); :data:`FIDELITIES` are the ones
judged against ``reference`` (:mod:`nas.bench.proxy` says why each). :class:`ProxyBenchSettings` holds the
rest (sample size, data, batch, lr); its hash, with the fidelities', names the cache folder, so changing any
of them never reuses a stale result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

__all__ = ["FIDELITIES", "QUICK", "REFERENCE", "RUNGS", "STATIC_PREDICTORS", "Fidelity", "ProxyBenchSettings"]


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
