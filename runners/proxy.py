"""The proxy training loop: train a narrowed copy of an architecture briefly and measure validation top-1.

This is what every search trial runs (docs/proxy.md, docs/search.md). It reads uint8 clips straight from memory (or a memory-mapped
cache), builds ``space.build_model(spec, num_classes, width_mult)``, trains with SGD + Nesterov momentum, a
short linear warm-up and a cosine decay, and evaluates validation top-1 (single view) after every epoch. Each
epoch is reported through ``report(EpochResult)`` so a scheduler can stop the trial at a rung.

SRTG hooks: ``set_gate_epoch`` switches ``warmup`` gates at each epoch, the align loss
(``auxiliary_loss``) is added to the cross-entropy, and gate open-rates are read on the validation pass of each
epoch (counters reset right before it), so they describe the model as trained so far.

Data feeding: the next batch is gathered in a background thread while the current step runs (numpy and
torch release the GIL), so the time the step loop waits for data is normally a small fraction of step time;
both are measured and reported. On CPU the run is deterministic for a given seed and thread count. On CUDA,
batches come from pinned memory and ``amp`` enables float16 autocast with a gradient scaler.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from runners.clips import ClipSet
from runners.layout import to_training_layout
from runners.proxyconfig import ProxyConfig, ProxyConfigError
from runners.sampling import predict_probabilities, sample_training_batch, to_model_input
from runners.trainstep import OptimisationStep, TrainingDiverged, linear_warmup
from space.build import build_model
from space.spec import ArchSpec
from space.srtg import gate_open_rates, reset_gate_counters, set_gate_epoch

__all__ = ["ProxyConfig", "EpochResult", "ProxyResult", "TrainingDiverged", "train_proxy", "ProxyConfigError"]


@dataclass(frozen=True)
class EpochResult:
    """One epoch: validation top-1 in [0, 1], mean training loss, wall seconds (train + eval), time the step
    loop waited for data, time in training steps, and the gate open-rates seen on the validation pass."""

    epoch: int  # 1-based
    accuracy: float
    loss: float
    seconds: float
    data_wait_seconds: float
    step_seconds: float
    gate_open_rates: dict[str, float | None] = field(default_factory=dict)
    inspection: dict[str, object] = field(default_factory=dict)  # what ``inspect(model)`` returned, if given

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ProxyResult:
    """The outcome of a proxy run. ``val_probabilities``: N x C softmax of the last validation pass."""

    accuracy: float
    best_accuracy: float
    history: tuple[EpochResult, ...]
    num_classes: int
    train_seconds: float
    stopped_early: bool
    val_probabilities: np.ndarray

    @property
    def epochs(self) -> int:
        return len(self.history)

    @property
    def data_wait_seconds(self) -> float:
        return sum(e.data_wait_seconds for e in self.history)

    @property
    def data_wait_fraction(self) -> float:
        """Data wait as a share of training-step time (the data pipeline's cost to the step loop)."""
        steps = sum(e.step_seconds for e in self.history)
        return self.data_wait_seconds / steps if steps > 0 else 0.0

    @property
    def gate_open_rates(self) -> dict[str, float | None]:
        return self.history[-1].gate_open_rates if self.history else {}


Report = Callable[[EpochResult], object]
Inspect = Callable[[nn.Module], dict]


def train_proxy(
    spec: ArchSpec, train: ClipSet, val: ClipSet, config: ProxyConfig, report: Report | None = None,
    inspect: Inspect | None = None,
) -> ProxyResult:
    """Train ``spec`` at ``config.width_mult`` on ``train``, evaluate on ``val`` each epoch.

    ``report(epoch_result)`` is called after each epoch; returning ``True`` stops training there (a scheduler's
    decision), and any exception it raises propagates. Raises :class:`TrainingDiverged` on a NaN/inf loss.
    ``inspect(model)``, when given, is called after each validation pass (a study's diagnostics, e.g. the SRTG
    gate study); its JSON-able dict lands in ``EpochResult.inspection``. It must leave the model as it found it.
    """
    check_proxy_data(train, val, config)
    device = resolve_device(config)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        torch.manual_seed(config.seed)
        model = build_model(spec, num_classes=train.num_classes, width_mult=config.width_mult)
        model = to_training_layout(model, spec, device)
        return _run(model, train, val, config, device, report, inspect)
    finally:
        torch.set_num_threads(previous_threads)


def check_proxy_data(train: ClipSet, val: ClipSet, config: ProxyConfig) -> None:
    if len(train) == 0 or len(val) == 0:
        raise ProxyConfigError(f"proxy training needs clips: got {len(train)} train and {len(val)} validation clips")
    if train.classes != val.classes:
        raise ProxyConfigError("train and validation sets have different class lists")
    config.view.check_fits(train.clip_shape)
    config.view.check_fits(val.clip_shape)


def resolve_device(config: ProxyConfig) -> torch.device:
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProxyConfigError(f"proxy device={config.device!r} but CUDA is not available; allowed here: 'cpu'")
    return device


class LrSchedule:
    """Linear warm-up (:func:`runners.trainstep.linear_warmup`) over the first ``warmup_fraction`` of the steps,
    then cosine decay to zero."""

    def __init__(self, base_lr: float, total_steps: int, warmup_fraction: float) -> None:
        self.base_lr = base_lr
        self.total = max(total_steps, 1)
        self.warmup = int(warmup_fraction * self.total)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return linear_warmup(self.base_lr, (step + 1) / self.warmup)
        progress = (step - self.warmup) / max(self.total - self.warmup, 1)
        return 0.5 * self.base_lr * (1 + math.cos(math.pi * min(progress, 1.0)))


class BatchFeeder:
    """Gathers the next training batch in a background thread while the current step runs."""

    def __init__(self, train: ClipSet, config: ProxyConfig, rng: np.random.Generator, device: torch.device) -> None:
        self.train, self.config, self.rng, self.device = train, config, rng, device
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="proxy-batches")

    def epoch(self) -> list[np.ndarray]:
        """Shuffled batch indices of one epoch (the last incomplete batch is dropped, BatchNorm dislikes tiny ones)."""
        order = self.rng.permutation(len(self.train))
        count = max(len(order) // self.config.batch_size, 1)
        return [order[i * self.config.batch_size : (i + 1) * self.config.batch_size] for i in range(count)]

    def submit(self, indices: np.ndarray) -> Future:
        # The rng is only ever used from the one worker thread, in submission order: deterministic.
        return self.pool.submit(self._make, indices)

    def _make(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        batch = sample_training_batch(self.train.videos, indices, self.config.view, self.rng)
        x = to_model_input(batch, self.device)
        y = torch.from_numpy(np.asarray(self.train.labels[indices], dtype=np.int64)).to(self.device)
        return x, y

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _run(
    model: nn.Module, train: ClipSet, val: ClipSet, config: ProxyConfig, device: torch.device, report: Report | None,
    inspect: Inspect | None = None,
) -> ProxyResult:
    rng = np.random.default_rng(config.seed)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
    )
    use_amp = config.amp and device.type == "cuda"
    trainer = OptimisationStep(model, optimizer, amp=use_amp)
    feeder = BatchFeeder(train, config, rng, device)
    steps_per_epoch = max(len(train) // config.batch_size, 1)
    schedule = LrSchedule(config.lr, steps_per_epoch * config.epochs, config.warmup_fraction)
    history: list[EpochResult] = []
    stopped = False
    started = time.perf_counter()
    probabilities = np.zeros((len(val), train.num_classes), dtype=np.float32)
    try:
        for epoch in range(config.epochs):
            epoch_started = time.perf_counter()
            set_gate_epoch(model, epoch, config.epochs)
            loss, wait, step_time = _train_epoch(model, feeder, trainer, schedule, epoch, steps_per_epoch, device)
            reset_gate_counters(model)
            probabilities = predict_probabilities(model, val, config.view, batch_size=config.eval_batch_size,
                                                  device=device, amp=use_amp)
            accuracy = float(np.mean(probabilities.argmax(axis=1) == np.asarray(val.labels)))
            result = EpochResult(
                epoch=epoch + 1, accuracy=accuracy, loss=loss, seconds=time.perf_counter() - epoch_started,
                data_wait_seconds=wait, step_seconds=step_time, gate_open_rates=gate_open_rates(model),
                inspection=inspect(model) if inspect is not None else {},
            )  # fmt: skip
            history.append(result)
            if report is not None and report(result) is True and epoch + 1 < config.epochs:
                stopped = True
                break
    finally:
        feeder.close()
    return ProxyResult(
        accuracy=history[-1].accuracy,
        best_accuracy=max(e.accuracy for e in history),
        history=tuple(history),
        num_classes=train.num_classes,
        train_seconds=time.perf_counter() - started,
        stopped_early=stopped,
        val_probabilities=probabilities,
    )


def _train_epoch(
    model: nn.Module,
    feeder: BatchFeeder,
    trainer: OptimisationStep,
    schedule: LrSchedule,
    epoch: int,
    steps_per_epoch: int,
    device: torch.device,
) -> tuple[float, float, float]:
    """One pass over the training set; returns (mean loss, seconds waiting for data, seconds in the loop)."""
    model.train()
    batches = feeder.epoch()
    pending = feeder.submit(batches[0])
    wait = 0.0
    losses: list[float] = []
    loop_started = time.perf_counter()
    for i in range(len(batches)):
        waited = time.perf_counter()
        x, y = pending.result()
        wait += time.perf_counter() - waited
        if i + 1 < len(batches):
            pending = feeder.submit(batches[i + 1])
        trainer.set_lr(schedule(epoch * steps_per_epoch + i))
        losses.append(trainer(x, y, epoch=epoch, step=i).loss)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return float(np.mean(losses)), wait, time.perf_counter() - loop_started
