"""One optimisation step and the linear LR warm-up: the part of training the proxy and retrain loops share.

Both loops (``runners/proxy.py`` for search trials, ``runners/retrain/worker.py`` for full-scale training)
train the same way step by step: a float16 autocast forward on CUDA when ``amp`` is on, cross-entropy plus the
SRTG align loss (``space.srtg.auxiliary_loss``), a NaN/inf check before anything is updated, and a gradient-
scaled SGD step (optionally clipped after unscaling). That sequence is written once here, so a fix to it (the
order of unscale and clip, where the divergence check sits) reaches both loops. What differs between the loops
(the schedule after warm-up, the data, DDP) stays with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from space.srtg import auxiliary_loss

__all__ = ["TrainingDiverged", "StepResult", "OptimisationStep", "linear_warmup"]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the run failed (not the user's input)."""


@dataclass(frozen=True)
class StepResult:
    """What one step measured: the loss (a Python float, before the update) and the batch's correct top-1."""

    loss: float
    correct: int


class OptimisationStep:
    """One SGD step over a batch, AMP-aware; owns the gradient scaler (its state is part of a checkpoint).

    ``model`` is the module whose parameters are stepped and whose SRTG blocks hold the align loss;
    ``forward`` is what the batch goes through (a DDP wrapper of ``model``; ``model`` itself by default).
    ``clip_norm``: clip the gradient's global norm to this after unscaling (None: no clipping).
    """

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, *, amp: bool, clip_norm: float | None = None,
        forward: nn.Module | None = None,
    ) -> None:  # fmt: skip
        self.model = model
        self.forward = forward if forward is not None else model
        self.optimizer = optimizer
        self.amp = amp
        self.clip_norm = clip_norm
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def __call__(self, x: Tensor, y: Tensor, *, epoch: int, step: int) -> StepResult:
        """Train on ``(x, y)``; ``epoch`` and ``step`` (0-based) only name the place in a divergence error.

        Raises :class:`TrainingDiverged` before any update when the loss is not finite (one host sync per
        step: a NaN must stop the run at once, not after it has spread into the weights and optimiser state).
        """
        with torch.autocast(device_type=x.device.type, dtype=torch.float16, enabled=self.amp):
            logits = self.forward(x)
            loss = F.cross_entropy(logits.float(), y) + auxiliary_loss(self.model).to(x.device)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(f"training loss became {value} at epoch {epoch + 1}, step {step + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return StepResult(loss=value, correct=int((logits.detach().argmax(1) == y).sum()))


def linear_warmup(base_lr: float, progress: float, *, start_factor: float = 0.0) -> float:
    """The learning rate ``progress`` of the way through a linear warm-up to ``base_lr``.

    From ``start_factor * base_lr`` at ``progress = 0`` to ``base_lr`` at 1; ``base_lr`` from there on. The
    proxy warms up by steps from 0 (``progress = (step + 1) / warmup_steps``); retraining by epochs from
    ``warmup_start_factor`` (``progress = epoch / warmup_epochs``).
    """
    if progress >= 1:
        return base_lr
    return base_lr * (start_factor + (1 - start_factor) * progress)
