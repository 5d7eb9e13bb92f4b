"""The proxy training's settings (:class:`ProxyConfig`) and the error naming an impossible one.

Kept apart from :mod:`runners.proxy` (the training loop, which imports torch) so a search's config can be
defaulted and checked without loading torch (docs/architecture.md, "Startup"); :mod:`runners.proxy`
re-exports both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from space.errors import UserInputError

if TYPE_CHECKING:
    from runners.sampling import ViewConfig

__all__ = ["ProxyConfig", "ProxyConfigError"]


class ProxyConfigError(UserInputError):
    """An impossible proxy setting (epochs, batch, lr, device, ...): ``field``, its ``value`` and what is ``allowed``,
    so a caller can name the setting as its user typed it (``nas search`` names the flag)."""

    def __init__(self, message: str, *, field: str | None = None, value: object = None, allowed: str = "") -> None:
        super().__init__(message)
        self.field, self.value, self.allowed = field, value, allowed


def _refuse(field: str, value: object, allowed: str) -> ProxyConfigError:
    return ProxyConfigError(f"proxy {field}={value!r} is not allowed; allowed: {allowed}", field=field, value=value,
                            allowed=allowed)


@dataclass(frozen=True)
class ProxyConfig:
    """The proxy budget and optimiser. ``lr`` is the learning rate at ``batch_size`` (no implicit scaling).

    ``threads``: torch intra-op threads on CPU (the trial's core lease); ``amp``: float16 autocast, CUDA only.
    ``max_stride``: training views use a random temporal stride up to this (when the clips are long enough).
    """

    epochs: int = 4
    batch_size: int = 32
    lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    width_mult: float = 0.25
    frames: int = 8
    size: int = 32
    max_stride: int = 2
    warmup_fraction: float = 0.1
    seed: int = 0
    threads: int = 1
    device: str = "cpu"
    amp: bool = False
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, int) and not isinstance(self.batch_size, bool) and self.batch_size == 1:
            raise _refuse("batch_size", 1, "an integer >= 2 (BatchNorm trains on two clips or more per batch)")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "frames": self.frames, "size": self.size,
                    "threads": self.threads, "max_stride": self.max_stride, "eval_batch_size": self.eval_batch_size}
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _refuse(name, value, "an integer >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise _refuse("lr", self.lr, "a finite number > 0")
        for name in ("weight_decay", "momentum", "warmup_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise _refuse(name, getattr(self, name), "a number in [0, 1)")
        if not 0 < self.width_mult <= 1:
            raise _refuse("width_mult", self.width_mult, "a finite number w with 0 < w <= 1")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise _refuse("device", self.device, "'cpu', 'cuda', 'cuda:N'")

    @property
    def view(self) -> ViewConfig:
        from runners.sampling import ViewConfig  # imports torch

        return ViewConfig(frames=self.frames, size=self.size, max_stride=self.max_stride)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
