"""Full-scale retraining of one architecture with Ray Train (SPEC 7).

``retrain(spec, config, train=..., test=..., out_dir=...)`` runs :func:`train_worker` on ``config.workers``
Ray Train workers (``TorchTrainer``: DDP over gloo on CPU, NCCL on GPU), so the same call trains on one
laptop core or a GPU cluster. What it does, top-down:

* **optimisation** (papers' settings, all in :class:`RetrainConfig`): SGD momentum 0.9, lr 0.1 at batch 32
  scaled linearly with the global batch, linear warm-up, gradient clipping, step decay, weight decay 1e-6;
  optional multigrid (:mod:`runners.multigrid`: only the sampler and batch shape change);
* **data**: each rank trains on a disjoint shard of a seeded per-epoch permutation (DistributedSampler with
  ``drop_last``: never a duplicated clip) and evaluates a disjoint shard of the test split without padding;
  correct / total counts are summed across ranks, so every test clip counts exactly once;
* **SRTG** ``warmup`` gates are switched per epoch (:func:`space.srtg.set_gate_epoch`);
* **checkpoints** every epoch through ``ray.train.report``: state dicts, tensors and numbers only (RNG
  states as tensors), read back with ``weights_only=True``. Data order and augmentation are functions of
  (seed, epoch, rank), so a run killed after epoch k and resumed ends bitwise equal to an uninterrupted one;
* **evaluation**: top-1 / top-5 single-view on the test split each epoch, multi-view (clips x crops,
  softmax-averaged) at the end;
* **output folder**: ``spec.yaml``, ``retrain.json`` (the config), ``model.pt`` (final weights),
  ``metrics.csv`` (one row per epoch, no wall-clock values so reruns compare bitwise), ``result.json``;
  :func:`load_model` rebuilds the trained model in one call.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from runners.checkpoint import (
    CheckpointError,
    init_from_checkpoint,
    load_checkpoint,
    load_newest_readable,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from runners.clips import ClipSet
from runners.sampling import ViewConfig, distinct_views, predict_probabilities, sample_training_batch, to_model_input
from runners.multigrid import EpochPlan, MultigridConfig, multigrid_schedule, step_schedule
from space import ArchSpec, build_model, spec_from_dict
from space.errors import UserInputError
from space.files import atomic_write
from space.spec import MTNetSpec
from space.srtg import auxiliary_loss, ddp_ignore_gate_counters, gate_open_rates, reset_gate_counters, set_gate_epoch

__all__ = [
    "RetrainConfig",
    "RetrainResult",
    "retrain",
    "load_model",
    "epoch_plans",
    "learning_rate",
    "train_batch",
    "train_shard",
    "eval_shard",
    "evaluate",
    "METRICS_COLUMNS",
]

CHECKPOINT_FILE = "checkpoint.pt"

METRICS_COLUMNS = (
    "epoch",
    "lr",
    "frames",
    "size",
    "batch_size",
    "train_loss",
    "train_top1",
    "train_clips",
    "train_unique_clips",
    "test_loss",
    "test_top1",
    "test_top5",
    "test_clips",
    "test_unique_clips",
    "gate_open_rate",
)


# --------------------------------------------------------------------------------------------
# Configuration and result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainConfig:
    """Everything that decides a retraining run (SPEC 7 defaults). ``batch_size`` is the global batch.

    ``lr`` is the learning rate at ``lr_reference_batch`` clips; the run uses ``lr * batch_size /
    lr_reference_batch``. ``lr_milestones`` are fractions of ``epochs`` at which the lr is multiplied by
    ``lr_gamma``. ``frames`` / ``size`` default to the data's clip length and short side.
    With ``multigrid`` the run lasts about ``MultigridConfig.epoch_factor`` x ``epochs`` epochs (PySlowFast).
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.1
    lr_reference_batch: int = 32
    momentum: float = 0.9
    weight_decay: float = 1e-6
    warmup_epochs: float = 1.0
    warmup_start_factor: float = 0.1
    lr_milestones: tuple[float, ...] = (0.5, 0.8)
    lr_gamma: float = 0.1
    grad_clip_norm: float = 5.0
    frames: int | None = None
    size: int | None = None
    multigrid: bool = False
    workers: int = 1
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    amp: bool = False
    seed: int = 0
    width_mult: float = 1.0
    max_stride: int = 2
    test_clips: int = 3
    test_crops: int = 3
    eval_batch_size: int = 16
    init: str | None = None

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("workers", self.workers >= 1, ">= 1"),
            ("batch_size", self.batch_size % self.workers == 0, f"a multiple of workers ({self.workers})"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("warmup_epochs", self.warmup_epochs >= 0, ">= 0"),
            ("grad_clip_norm", self.grad_clip_norm > 0, "> 0"),
            ("frames", self.frames is None or self.frames >= 1, ">= 1"),
            ("size", self.size is None or self.size >= 8, ">= 8"),
            ("cpus_per_worker", self.cpus_per_worker >= 1, ">= 1"),
            ("gpus_per_worker", self.gpus_per_worker >= 0, ">= 0"),
            ("width_mult", 0 < self.width_mult <= 1, "in (0, 1]"),
            ("test_clips", self.test_clips >= 1, ">= 1"),
            ("test_crops", self.test_crops in (1, 3), "1 or 3"),
            ("max_stride", self.max_stride >= 1, ">= 1"),
            ("lr_milestones", all(0 < m < 1 for m in self.lr_milestones), "fractions in (0, 1)"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise UserInputError(f"retrain {name}={getattr(self, name)!r} is not allowed; allowed: {allowed}")

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0

    @property
    def scaled_lr(self) -> float:
        """lr at the global batch: linear scaling from ``lr_reference_batch``."""
        return self.lr * self.batch_size / self.lr_reference_batch

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        return d


@dataclass(frozen=True)
class RetrainResult:
    """What a finished run measured. ``history`` holds the rows of ``metrics.csv``."""

    out_dir: Path
    spec: ArchSpec
    epochs: int
    history: tuple[dict[str, float], ...]
    test_top1: float
    test_top5: float
    multiview_top1: float
    multiview_top5: float
    multiview: str
    gate_open_rates: dict[str, float | None] = field(default_factory=dict)
    resumed_from_epoch: int | None = None
    init_report: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "spec_key": self.spec.key(),
            "epochs": self.epochs,
            "test_top1": self.test_top1,
            "test_top5": self.test_top5,
            "multiview_top1": self.multiview_top1,
            "multiview_top5": self.multiview_top5,
            "multiview": self.multiview,
            "gate_open_rates": self.gate_open_rates,
            "resumed_from_epoch": self.resumed_from_epoch,
            "init_report": self.init_report,
            "seconds": self.seconds,
        }


# --------------------------------------------------------------------------------------------
# Plans, shards
# --------------------------------------------------------------------------------------------


def input_multiples(spec: ArchSpec) -> tuple[int, int]:
    """(frames, size) multiples multigrid snaps to: every stage then sees whole windows.

    Both families take any T x H x W; MTNet's long stream halves T, so an even T keeps the streams aligned.
    """
    return (2, 8) if isinstance(spec, MTNetSpec) else (1, 8)


def epoch_plans(config: RetrainConfig, spec: ArchSpec, frames: int, size: int) -> list[EpochPlan]:
    """The per-epoch (frames, size, batch size, lr) plan: step decay, or multigrid's cycles."""
    milestones = tuple(sorted({int(round(m * config.epochs)) for m in config.lr_milestones}))
    common = dict(
        epochs=config.epochs,
        milestones=milestones,
        frames=frames,
        size=size,
        batch_size=config.batch_size,
        base_lr=config.scaled_lr,
        gamma=config.lr_gamma,
    )
    if not config.multigrid:
        return step_schedule(**common)
    frames_multiple, size_multiple = input_multiples(spec)
    return multigrid_schedule(
        **common, config=MultigridConfig(), frames_multiple=frames_multiple, size_multiple=size_multiple
    )


def train_shard(num_clips: int, *, rank: int, world_size: int, seed: int, epoch: int) -> np.ndarray:
    """This rank's training clips for ``epoch``: DistributedSampler semantics with ``drop_last``.

    One seeded permutation per epoch, cut to a multiple of ``world_size`` (the few clips left over change
    from epoch to epoch), dealt round-robin: shards are disjoint and equally long, so every rank takes the
    same number of steps and no clip is duplicated.
    """
    order = np.random.default_rng([seed, epoch, 0x5A3]).permutation(num_clips)
    usable = num_clips // world_size * world_size
    return order[rank:usable:world_size]


def eval_shard(num_clips: int, *, rank: int, world_size: int) -> np.ndarray:
    """This rank's evaluation clips: ``rank::world_size``, no padding (shards may differ by one clip)."""
    return np.arange(rank, num_clips, world_size)


# --------------------------------------------------------------------------------------------
# Clip sampling and evaluation (runners.sampling's views, shared with the proxy training)
# --------------------------------------------------------------------------------------------


def train_batch(
    videos: np.ndarray, indices: np.ndarray, *, view: ViewConfig, frames: int, size: int, stride_factor: int, rng: np.random.Generator
) -> Tensor:
    """Training views of ``videos[indices]`` at ``frames`` x ``size`` x ``size`` (normalised float).

    Without multigrid this is exactly :func:`runners.sampling.sample_training_batch`. Multigrid's coarser
    shapes take the full-size crop with a ``stride_factor`` longer stride and resize it, so a cheap clip still
    covers the same time and field of view (PySlowFast scales its crop jitter the same way).
    """
    coarse = ViewConfig(frames=frames, size=view.size, max_stride=view.max_stride * stride_factor)
    x = to_model_input(sample_training_batch(videos, indices, coarse, rng))
    if size != view.size:
        b, c, t, h, w = x.shape
        x = F.interpolate(x.transpose(1, 2).reshape(b * t, c, h, w), size=(size, size), mode="bilinear", align_corners=False)
        x = x.reshape(b, t, c, size, size).transpose(1, 2).contiguous()
    return x


def evaluate(
    model: nn.Module,
    clips: ClipSet,
    indices: np.ndarray,
    *,
    view: ViewConfig,
    views: tuple[int, int] = (1, 1),
    batch_size: int = 16,
    device: torch.device = torch.device("cpu"),
    amp: bool = False,
    on_batch: Any = None,
) -> dict[str, Tensor]:
    """Counts over the clips ``indices``: loss sum, top-1 / top-5 correct, clips, and a per-clip bincount.

    ``views = (clips, crops)``: softmax averaged over clips x crops by
    :func:`runners.sampling.predict_probabilities`. Tensors, so ranks can ``all_reduce`` them.
    """
    counts = torch.zeros(4, dtype=torch.float64)  # loss sum, top1, top5, clips
    seen = torch.zeros(len(clips), dtype=torch.int64)
    if len(indices):
        probs = predict_probabilities(
            model, clips.subset(indices), view, num_clips=views[0], num_crops=views[1],
            batch_size=batch_size, device=device, amp=amp, on_batch=on_batch,
        )
        probs_t = torch.from_numpy(probs).double()
        labels = torch.from_numpy(np.asarray(clips.labels[indices], dtype=np.int64))
        topk = probs_t.topk(min(5, clips.num_classes), dim=1).indices
        counts[0] = F.nll_loss(probs_t.clamp_min(1e-12).log(), labels, reduction="sum")
        counts[1] = (topk[:, 0] == labels).sum()
        counts[2] = (topk == labels[:, None]).any(dim=1).sum()
        counts[3] = len(indices)
        seen[torch.from_numpy(indices)] += 1
    return {"counts": counts, "seen": seen}


# --------------------------------------------------------------------------------------------
# The per-worker training loop
# --------------------------------------------------------------------------------------------


def learning_rate(plan: EpochPlan, epoch_float: float, config: RetrainConfig) -> float:
    """The epoch's lr with a linear warm-up from ``warmup_start_factor`` over ``warmup_epochs``."""
    if epoch_float < config.warmup_epochs:
        progress = epoch_float / config.warmup_epochs
        return plan.lr * (config.warmup_start_factor + (1 - config.warmup_start_factor) * progress)
    return plan.lr


def _all_reduce(tensor: Tensor) -> Tensor:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(tensor)
    return tensor


def _sync_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's BN statistics before evaluating (DDP leaves each rank its own last update)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    persistent = model.state_dict().keys()
    for name, buffer in model.named_buffers():
        if name in persistent and buffer.is_floating_point():
            torch.distributed.broadcast(buffer, src=0)


def _batches(shard: np.ndarray, plan: EpochPlan, world_size: int) -> list[tuple[np.ndarray, int, int]]:
    """Cut this rank's shard into iterations cycling through the plan's shapes: (indices, frames, size)."""
    out, begin, step = [], 0, 0
    while begin < len(shard):
        shape = plan.iterations[step % len(plan.iterations)]
        per_rank = max(1, shape.batch_size // world_size)
        out.append((shard[begin : begin + per_rank], shape.frames, shape.size))
        begin += per_rank
        step += 1
    return out


def _mean_open_rate(rates: dict[str, float | None]) -> float:
    """Mean training gate open-rate over the SRTG blocks that had frames to align (NaN: no such block)."""
    values = [r for r in rates.values() if r is not None]
    return sum(values) / len(values) if values else float("nan")


def _history_row(
    epoch: int, plan: EpochPlan, lr: float, train: Tensor, seen_train: Tensor, test: dict[str, Tensor], gate_rate: float
) -> dict[str, float]:
    loss_sum, correct, clips = train.tolist()
    t_loss, t_top1, t_top5, t_clips = test["counts"].tolist()
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "frames": plan.frames,
        "size": plan.size,
        "batch_size": plan.batch_size,
        "train_loss": loss_sum / max(clips, 1),
        "train_top1": correct / max(clips, 1),
        "train_clips": int(clips),
        "train_unique_clips": int((seen_train > 0).sum()),
        "test_loss": t_loss / max(t_clips, 1),
        "test_top1": t_top1 / max(t_clips, 1),
        "test_top5": t_top5 / max(t_clips, 1),
        "test_clips": int(t_clips),
        "test_unique_clips": int((test["seen"] > 0).sum()),
        "gate_open_rate": gate_rate,
    }


def _history_tensor(history: list[dict[str, float]]) -> Tensor:
    return torch.tensor([[row[c] for c in METRICS_COLUMNS] for row in history], dtype=torch.float64).reshape(-1, len(METRICS_COLUMNS))


def _history_rows(tensor: Tensor) -> list[dict[str, float]]:
    integers = {"epoch", "frames", "size", "batch_size", "train_clips", "train_unique_clips", "test_clips", "test_unique_clips"}
    return [
        {c: (int(v) if c in integers else float(v)) for c, v in zip(METRICS_COLUMNS, row)} for row in tensor.tolist()
    ]


def _report(metrics: dict[str, Any], state: dict[str, Any] | None, rank: int) -> None:
    """``ray.train.report`` on every rank (it is a barrier); rank 0 attaches the checkpoint."""
    import ray.train

    if rank != 0 or state is None:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(Path(tmp) / CHECKPOINT_FILE, state)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


@dataclass(frozen=True)
class _Rank:
    """Who this worker is, where it computes, and where rank 0 sends progress events."""

    rank: int
    world_size: int
    device: torch.device
    amp: bool
    queue: Any

    def progress(self, event: dict[str, Any]) -> None:
        if self.queue is not None and self.rank == 0:
            self.queue.put(event)


def _train_step(
    wrapped: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any, x: Tensor, y: Tensor,
    *, clip_norm: float, amp: bool,
) -> tuple[float, int]:  # fmt: skip
    """One SGD step (AMP-aware, clipped after unscaling); returns (loss, correct predictions)."""
    with torch.autocast(device_type=x.device.type, dtype=torch.float16, enabled=amp):
        logits = wrapped(x)
        loss = F.cross_entropy(logits.float(), y) + auxiliary_loss(model).to(x.device)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    scaler.step(optimizer)
    scaler.update()
    return loss.item(), int((logits.argmax(1) == y).sum())


def multiview_label(requested: tuple[int, int], views: tuple[int, int]) -> str:
    """``3 clips x 3 crops``, or what was evaluated instead when some requested views were identical."""
    def phrase(clips: int, crops: int) -> str:
        return f"{clips} clip{'s' if clips != 1 else ''} x {crops} crop{'s' if crops != 1 else ''}"

    if tuple(views) == tuple(requested):
        return phrase(*requested)
    return f"{phrase(*views)} (the {phrase(*requested)} requested repeat identical views of these clips)"


def _evaluate_everywhere(
    model: nn.Module, clips: ClipSet, ctx: _Rank, *, view: ViewConfig, views: tuple[int, int], batch_size: int,
    on_batch: Any = None,
) -> dict[str, Tensor]:
    """:func:`evaluate` on this rank's shard, summed over all ranks (every clip counted once)."""
    shard = eval_shard(len(clips), rank=ctx.rank, world_size=ctx.world_size)
    out = evaluate(model, clips, shard, view=view, views=views, batch_size=batch_size, device=ctx.device, amp=ctx.amp,
                   on_batch=on_batch)
    _all_reduce(out["counts"])
    _all_reduce(out["seen"])
    return out


def train_worker(loop_config: dict[str, Any]) -> None:
    """The function every Ray Train worker runs (see the module docstring for what it does)."""
    import ray
    import ray.train
    import ray.train.torch

    config = RetrainConfig(**{**loop_config["config"], "lr_milestones": tuple(loop_config["config"]["lr_milestones"])})
    spec = spec_from_dict(loop_config["spec"])
    train_set = _open_shared(loop_config["train"])
    test_set = _open_shared(loop_config["test"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    ctx = _Rank(rank, world_size, device, config.amp and device.type == "cuda", loop_config.get("queue"))
    ctx.progress({"kind": "started", "workers": world_size})
    torch.set_num_threads(config.cpus_per_worker)

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    import random

    random.seed(config.seed)
    model = build_model(spec, num_classes=train_set.num_classes, width_mult=config.width_mult)
    if config.init and ray.train.get_checkpoint() is None:
        report = init_from_checkpoint(model, config.init)
        ctx.progress({"kind": "init", "summary": report.summary()})
    ddp_ignore_gate_counters(model)
    wrapped = ray.train.torch.prepare_model(model)  # moves to the device; DDP when world_size > 1
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.scaled_lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scaler = torch.amp.GradScaler("cuda", enabled=ctx.amp)

    frames, size = loop_config["frames"], loop_config["size"]
    view = ViewConfig(frames=frames, size=size, max_stride=config.max_stride)
    plans = epoch_plans(config, spec, frames, size)
    history: list[dict[str, float]] = []
    start_epoch, final = 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state, used, skipped = load_newest_readable(_checkpoints_newest_first(Path(folder)))
        for reason in skipped:
            ctx.progress({"kind": "checkpoint-skipped", "reason": reason, "used": str(used)})
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
        history = _history_rows(state["history"])
        start_epoch, final = int(state["epoch"]), state.get("final")
        ctx.progress({"kind": "resumed", "epoch": start_epoch})

    def gather_rng() -> list[dict[str, Tensor]]:
        gathered: list[Any] = [None] * world_size
        if world_size > 1:
            torch.distributed.all_gather_object(gathered, rng_state())
            return gathered
        return [rng_state()]

    def state_dict(epoch: int, final_results: dict[str, Any] | None) -> dict[str, Any]:
        rngs = gather_rng()  # a collective: every rank calls it
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rngs,
            "epoch": epoch,
            "history": _history_tensor(history),
            "final": final_results,
            "config": config.to_dict(),
            "spec": spec.to_json(),
            "num_classes": train_set.num_classes,
        }

    for epoch in range(start_epoch, len(plans)):
        plan = plans[epoch]
        set_gate_epoch(model, epoch, len(plans))
        reset_gate_counters(model)
        wrapped.train()
        shard = train_shard(len(train_set), rank=rank, world_size=world_size, seed=config.seed, epoch=epoch)
        rng = np.random.default_rng([config.seed, epoch, rank, 0xA06])  # augmentation: a function of (seed, epoch, rank)
        batches = _batches(shard, plan, world_size)
        running = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, clips
        seen = torch.zeros(len(train_set), dtype=torch.int64)
        lr = plan.lr
        for step, (indices, it_frames, it_size) in enumerate(batches):
            lr = learning_rate(plan, epoch + step / len(batches), config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = train_batch(
                train_set.videos, indices, view=view, frames=it_frames, size=it_size,
                stride_factor=plan.stride_factor, rng=rng,
            ).to(device)  # fmt: skip
            y = torch.from_numpy(np.asarray(train_set.labels[indices], dtype=np.int64)).to(device)
            loss, correct = _train_step(wrapped, model, optimizer, scaler, x, y, clip_norm=config.grad_clip_norm, amp=ctx.amp)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at epoch {epoch + 1}, step {step + 1}")
            running += torch.tensor([loss * len(indices), correct, len(indices)], dtype=torch.float64)
            seen[torch.from_numpy(indices)] += 1
            ctx.progress({"kind": "step", "epoch": epoch, "step": step + 1, "steps": len(batches), "loss": loss})
        _all_reduce(running)
        _all_reduce(seen)
        gate_rate = _mean_open_rate(gate_open_rates(model))  # summed over ranks inside
        _sync_buffers(model)
        test = _evaluate_everywhere(model, test_set, ctx, view=view, views=(1, 1), batch_size=config.eval_batch_size)
        row = _history_row(epoch, plan, lr, running, seen, test, gate_rate)
        history.append(row)
        _report({"epoch": epoch + 1, **row}, state_dict(epoch + 1, None), rank)
        ctx.progress({"kind": "epoch", "row": row, "epochs": len(plans)})

    if final is None:
        # a run resumed from its last epoch's checkpoint skipped the loop: gates as at the last epoch (issue 11.3)
        set_last_epoch_gates(model, len(plans))
        reset_gate_counters(model)
        requested = (config.test_clips, config.test_crops)
        views = distinct_views(test_set.clip_shape, view, *requested)  # identical views: evaluated once
        ctx.progress({"kind": "multiview", "requested": list(requested), "views": list(views)})
        multi = _evaluate_everywhere(
            model, test_set, ctx, view=view, views=views, batch_size=config.eval_batch_size,
            on_batch=lambda done, total: ctx.progress({"kind": "test", "done": done, "total": total}),
        )
        _, top1, top5, clips = multi["counts"].tolist()
        final = {
            "multiview_top1": top1 / max(clips, 1),
            "multiview_top5": top5 / max(clips, 1),
            "multiview_clips": int(clips),
            "multiview_unique_clips": int((multi["seen"] > 0).sum()),
            "multiview": multiview_label(requested, views),
            "gate_open_rates": json.dumps(gate_open_rates(model)),
        }
        _report({"epoch": len(plans), "final": 1}, state_dict(len(plans), final), rank)
    ctx.progress({"kind": "done"})


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------


def _share(clips: ClipSet) -> dict[str, Any]:
    """How workers get a split: a memory-mapped cache is reopened by path (no copy, one page cache);
    in-memory clips go once into Ray's object store."""
    import ray

    import mmap

    videos = clips.videos
    # only a whole mapped file (np.load(..., mmap_mode="r")): a slice of one has a different start
    if isinstance(videos, np.memmap) and isinstance(videos.base, mmap.mmap) and videos.filename:
        return {
            "memmap": str(videos.filename), "offset": int(videos.offset), "dtype": videos.dtype.str,
            "shape": tuple(videos.shape), "labels": np.asarray(clips.labels), "classes": clips.classes,
        }  # fmt: skip
    return {"ref": ray.put(clips)}


def _open_shared(shared: dict[str, Any]) -> ClipSet:
    import ray

    if "ref" in shared:
        return ray.get(shared["ref"])
    videos = np.memmap(shared["memmap"], mode="r", dtype=np.dtype(shared["dtype"]), shape=shared["shape"], offset=shared["offset"])
    return ClipSet(videos, shared["labels"], tuple(shared["classes"]))


def _write_metrics_csv(path: Path, history: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METRICS_COLUMNS)
    for row in history:
        writer.writerow([repr(row[c]) if isinstance(row[c], float) else row[c] for c in METRICS_COLUMNS])
    atomic_write(path, buffer.getvalue())


def _prepare_out_dir(out_dir: Path, spec: ArchSpec, config: RetrainConfig, resume: bool, data_info: dict[str, Any]) -> None:
    """Refuse to mix runs: a fresh run needs an empty folder, ``resume`` needs the same settings."""
    record = {"config": config.to_dict(), "spec_key": spec.key(), "data": data_info}
    config_file = out_dir / "retrain.json"
    if resume:
        if not config_file.is_file():
            raise UserInputError(f"--resume: {out_dir} holds no retraining run to resume (no retrain.json)")
        previous = json.loads(config_file.read_text())
        if previous != record:
            changed = sorted(
                k for k in set(previous["config"]) | set(record["config"])
                if previous["config"].get(k) != record["config"].get(k)
            )
            what = ", ".join(changed) or ("the architecture" if previous["spec_key"] != spec.key() else "the data")
            raise UserInputError(f"--resume: {out_dir} was started with other settings ({what}); resume with the same ones")
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserInputError(f"output folder {out_dir} is not empty; pass --resume to continue it or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spec.yaml").write_text(spec.to_yaml())
    config_file.write_text(json.dumps(record, indent=2, sort_keys=True))


def _ensure_ray(config: RetrainConfig, address: str | None) -> None:
    """Reuse the caller's Ray; else join ``address`` (a cluster) or start a private local instance."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        return
    import os

    ray.init(
        address="local",  # never attach to some other process's cluster by accident
        num_cpus=max(os.cpu_count() or 1, config.workers * config.cpus_per_worker),
        include_dashboard=False,
        log_to_driver=False,
    )


def retrain(
    spec: ArchSpec,
    config: RetrainConfig,
    *,
    train: ClipSet,
    test: ClipSet,
    out_dir: str | Path,
    resume: bool = False,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    data_info: dict[str, Any] | None = None,
    address: str | None = None,
) -> RetrainResult:
    """Train ``spec`` on ``train`` with Ray Train, evaluate on ``test``, write the output folder.

    ``on_event`` receives progress events from rank 0 (``step``, ``epoch``, ``init``, ``resumed``) in the
    calling thread; the CLI draws its progress bar from them. ``resume`` continues the run in ``out_dir``
    from its last checkpoint. Ray: the caller's if initialised, else ``address`` (an existing cluster), else
    a private local instance.
    """
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Empty, Queue

    if train.classes != test.classes:
        raise UserInputError("train and test splits have different classes")
    frames = config.frames or train.clip_shape[0]
    size = config.size or min(train.clip_shape[1:])
    view = ViewConfig(frames=frames, size=size, max_stride=config.max_stride)
    view.check_fits(train.clip_shape)
    view.check_fits(test.clip_shape)
    epoch_plans(config, spec, frames, size)  # a bad schedule fails here, before anything is written
    if config.init and not resume:
        load_checkpoint(config.init)  # so does a bad --init file
    out_dir = Path(out_dir).resolve()
    _prepare_out_dir(out_dir, spec, config, resume, data_info or {})
    _ensure_ray(config, address)

    started = time.time()
    queue = Queue(actor_options={"num_cpus": 0})
    loop_config = {
        "config": config.to_dict(),
        "spec": spec.to_dict(),
        "train": _share(train),
        "test": _share(test),
        "frames": frames,
        "size": size,
        "queue": queue,
    }
    resources = {"CPU": config.cpus_per_worker}
    if config.use_gpu:
        resources["GPU"] = config.gpus_per_worker
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.workers, use_gpu=config.use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name="train",
            storage_path=str(out_dir / "ray"),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    events: list[dict[str, Any]] = []
    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    while thread.is_alive() or not queue.empty():
        try:
            event = queue.get(timeout=0.2)
        except Empty:
            continue
        events.append(event)
        if event["kind"] == "epoch":
            done = [e["row"] for e in events if e["kind"] == "epoch"]
            _write_partial_metrics(out_dir, done)
        if on_event is not None:
            on_event(event)
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return _finish(out_dir, spec, outcome["result"], events, time.time() - started)


def _checkpoints_newest_first(latest: Path) -> list[Path]:
    """Ray's latest checkpoint file, then the older ones it kept beside it (``checkpoint_<time>`` sorts by time)."""
    older = sorted(
        (d for d in latest.parent.glob("checkpoint_*") if d.is_dir() and d.name < latest.name), reverse=True
    )
    return [latest / CHECKPOINT_FILE, *(d / CHECKPOINT_FILE for d in older)]


def _write_partial_metrics(out_dir: Path, rows: list[dict[str, float]]) -> None:
    """Keep metrics.csv current while training (rows of a resumed run are completed by the checkpoint)."""
    existing = []
    path = out_dir / "metrics.csv"
    if path.is_file():
        with path.open() as f:
            existing = [r for r in csv.DictReader(f)]
    by_epoch = {int(r["epoch"]): r for r in existing}
    for row in rows:
        by_epoch[row["epoch"]] = row
    merged = [by_epoch[e] for e in sorted(by_epoch)]
    _write_metrics_csv(path, [{c: _parse(r[c]) for c in METRICS_COLUMNS} for r in merged])


def _parse(value: Any) -> Any:
    if isinstance(value, str):
        return int(value) if value.lstrip("-").isdigit() else float(value)
    return value


def _finish(out_dir: Path, spec: ArchSpec, result: Any, events: list[dict[str, Any]], seconds: float) -> RetrainResult:
    """Copy the final weights and the authoritative metrics out of the last checkpoint."""
    if result.checkpoint is None:
        raise CheckpointError(f"the run in {out_dir} finished without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        state = load_checkpoint(Path(folder) / CHECKPOINT_FILE)
    final = state["final"]
    history = _history_rows(state["history"])
    save_checkpoint(
        out_dir / "model.pt",
        {
            "model": state["model"],
            "num_classes": state["num_classes"],
            "width_mult": state["config"]["width_mult"],
            "spec": state["spec"],
            "epochs": len(history),  # load_model sets warm-up gates as at the last of them
        },
    )
    _write_metrics_csv(out_dir / "metrics.csv", history)
    resumed = next((e["epoch"] for e in events if e["kind"] == "resumed"), None)
    init = next((e["summary"] for e in events if e["kind"] == "init"), None)
    last = history[-1] if history else {}
    outcome = RetrainResult(
        out_dir=out_dir,
        spec=spec,
        epochs=len(history),
        history=tuple(history),
        test_top1=float(last.get("test_top1", float("nan"))),
        test_top5=float(last.get("test_top5", float("nan"))),
        multiview_top1=float(final["multiview_top1"]),
        multiview_top5=float(final["multiview_top5"]),
        multiview=str(final["multiview"]),
        gate_open_rates=json.loads(final["gate_open_rates"]),
        resumed_from_epoch=resumed,
        init_report=init,
        seconds=seconds,
    )
    (out_dir / "result.json").write_text(json.dumps(outcome.to_json(), indent=2))
    return outcome


# --------------------------------------------------------------------------------------------
# Using a trained model
# --------------------------------------------------------------------------------------------


def load_model(folder: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The trained model of a ``nas retrain`` output folder, in eval mode, in one call."""
    folder = Path(folder)
    spec_file, weights = folder / "spec.yaml", folder / "model.pt"
    if not spec_file.is_file() or not weights.is_file():
        raise UserInputError(f"{folder} is not a finished retraining folder (needs spec.yaml and model.pt)")
    spec = spec_from_dict(yaml.safe_load(spec_file.read_text()))
    state = load_checkpoint(weights, map_location=map_location)
    model = build_model(spec, num_classes=int(state["num_classes"]), width_mult=float(state["width_mult"]))
    model.load_state_dict(state["model"])
    epochs = state.get("epochs")
    if epochs is None:  # a folder written before the epoch count was saved: metrics.csv has one row per epoch
        with open(folder / "metrics.csv", newline="") as handle:
            epochs = sum(1 for _ in csv.DictReader(handle))
    set_last_epoch_gates(model, int(epochs))
    return model.eval()


def set_last_epoch_gates(model: nn.Module, epochs: int) -> None:
    """Switch ``warmup`` gates to their state in the last of ``epochs`` epochs (gate state is not a weight).

    A ``warmup`` model is built with inactive gates; without this a loaded or resumed model would always
    fuse and its outputs would differ from the trained model's.
    """
    set_gate_epoch(model, max(epochs - 1, 0), max(epochs, 1))
