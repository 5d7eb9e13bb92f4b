"""A proxy run evaluated at several budgets: one learning curve, as the benchmark table records it.

The training is exactly the proxy loop's (:mod:`runners.proxy`: same model build, seeded batch feeder, SGD with
Nesterov momentum, warm-up then cosine decay over ``config.epochs``), so a curve's point at a whole epoch is the
number a search trial with the same :class:`~runners.proxy.ProxyConfig` reports at that epoch. What differs is
only when it evaluates and what it keeps of each evaluation (``docs/bench/bench-table.md``):

* evaluations at ``budgets`` (in epochs, e.g. 0.5, 1, 2, 3, 4: fractions of an epoch are fractions of its
  optimisation steps), the largest being ``config.epochs``;
* per evaluation: validation top-1 and mean cross-entropy, **per-clip correctness and per-clip loss** (so
  statistics on a smaller validation set can be recomputed exactly by subsampling), the mean training loss
  since the previous evaluation, and wall and CPU seconds since the previous evaluation (CPU seconds of this
  process: less disturbed than wall seconds when the machine is shared).

Evaluation never changes training: it consumes no random numbers and BatchNorm statistics are not updated in
eval mode, so the weights at budget b are those of a run that never evaluated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from runners.clips import ClipSet
from runners.layout import to_training_layout
from runners.proxy import BatchFeeder, LrSchedule, ProxyConfig, ProxyConfigError, check_proxy_data, resolve_device
from runners.sampling import predict_probabilities
from runners.trainstep import OptimisationStep
from space.build import build_model
from space.spec import ArchSpec
from space.srtg import reset_gate_counters, set_gate_epoch

__all__ = ["CurvePoint", "budget_steps", "train_curve"]


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation of a learning curve.

    ``correct``: one bool per validation clip (in the validation set's order); ``clip_loss``: each clip's
    cross-entropy (float32). ``train_loss``: mean training loss over the steps since the previous point.
    ``seconds`` / ``cpu_seconds``: wall and process CPU time since the previous point (training + this
    evaluation).
    """

    budget: float  # epochs
    steps: int  # optimisation steps trained so far
    accuracy: float
    val_loss: float
    train_loss: float
    seconds: float
    cpu_seconds: float
    correct: np.ndarray
    clip_loss: np.ndarray


def budget_steps(budgets: tuple[float, ...], steps_per_epoch: int, epochs: int) -> list[int]:
    """Each budget (epochs) as a number of optimisation steps; budgets must rise to exactly ``epochs``.

    A fractional budget rounds to the nearest step (at least one); two budgets that round to the same step
    are an error, as is a budget beyond the run.
    """
    if not budgets or any(not (b > 0) for b in budgets) or list(budgets) != sorted(set(budgets)):
        raise ProxyConfigError(f"curve budgets {budgets!r} are not allowed; allowed: rising numbers of epochs > 0")
    if budgets[-1] != epochs:
        raise ProxyConfigError(f"the last curve budget ({budgets[-1]}) must equal the proxy epochs ({epochs})")
    steps = [max(1, round(b * steps_per_epoch)) for b in budgets]
    if len(set(steps)) != len(steps):
        raise ProxyConfigError(f"curve budgets {budgets!r} give the same step twice at {steps_per_epoch} steps/epoch")
    return steps


def train_curve(spec: ArchSpec, train: ClipSet, val: ClipSet, config: ProxyConfig, budgets: tuple[float, ...],
                on_point: Callable[[CurvePoint], None] | None = None) -> list[CurvePoint]:
    """Train ``spec`` as :func:`runners.proxy.train_proxy` does and evaluate it at every budget."""
    check_proxy_data(train, val, config)
    device = resolve_device(config)
    steps_per_epoch = max(len(train) // config.batch_size, 1)
    targets = budget_steps(tuple(float(b) for b in budgets), steps_per_epoch, config.epochs)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        torch.manual_seed(config.seed)
        model = to_training_layout(build_model(spec, num_classes=train.num_classes, width_mult=config.width_mult),
                                   spec, device)
        return _run(model, train, val, config, device, budgets, targets, steps_per_epoch, on_point)
    finally:
        torch.set_num_threads(previous_threads)


def _run(model, train: ClipSet, val: ClipSet, config: ProxyConfig, device: torch.device, budgets, targets: list[int],
         steps_per_epoch: int, on_point) -> list[CurvePoint]:
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    use_amp = config.amp and device.type == "cuda"
    trainer = OptimisationStep(model, optimizer, amp=use_amp)
    feeder = BatchFeeder(train, config, np.random.default_rng(config.seed), device)
    schedule = LrSchedule(config.lr, steps_per_epoch * config.epochs, config.warmup_fraction)
    points: list[CurvePoint] = []
    losses: list[float] = []
    clock = (time.perf_counter(), time.process_time())
    step = 0
    try:
        for epoch in range(config.epochs):
            model.train()
            set_gate_epoch(model, epoch, config.epochs)
            batches = feeder.epoch()
            pending = feeder.submit(batches[0])
            for i in range(len(batches)):
                x, y = pending.result()
                if i + 1 < len(batches):
                    pending = feeder.submit(batches[i + 1])
                trainer.set_lr(schedule(epoch * steps_per_epoch + i))
                losses.append(trainer(x, y, epoch=epoch, step=i).loss)
                step += 1
                if step in targets:
                    point = _evaluate(model, val, config, device, use_amp, budgets[targets.index(step)], step,
                                      losses, clock)
                    points.append(point)
                    if on_point is not None:
                        on_point(point)
                    losses, clock = [], (time.perf_counter(), time.process_time())
                    model.train()
    finally:
        feeder.close()
    return points


def _evaluate(model, val: ClipSet, config: ProxyConfig, device, use_amp: bool, budget: float, step: int,
              losses: list[float], clock: tuple[float, float]) -> CurvePoint:
    reset_gate_counters(model)
    probabilities = predict_probabilities(model, val, config.view, batch_size=config.eval_batch_size, device=device,
                                          amp=use_amp)
    labels = np.asarray(val.labels, dtype=np.int64)
    correct = probabilities.argmax(axis=1) == labels
    picked = probabilities[np.arange(len(labels)), labels].astype(np.float64)
    clip_loss = -np.log(np.clip(picked, 1e-12, 1.0)).astype(np.float32)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return CurvePoint(budget=float(budget), steps=step, accuracy=float(correct.mean()), val_loss=float(clip_loss.mean()),
                      train_loss=float(np.mean(losses)), seconds=time.perf_counter() - clock[0],
                      cpu_seconds=time.process_time() - clock[1], correct=correct, clip_loss=clip_loss)
