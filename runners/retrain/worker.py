"""The Ray Train worker: the epoch loop every rank runs (train steps, evaluation, checkpoints)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from runners.checkpoint import (
    init_from_checkpoint,
    load_newest_readable,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from runners.clips import ClipSet
from runners.sampling import ViewConfig, distinct_views, predict_probabilities
from runners.multigrid import EpochPlan
from runners.trainstep import OptimisationStep
from space import ArchSpec, build_model, spec_from_dict
from space.srtg import (
    ddp_ignore_gate_counters,
    gate_open_rates,
    reset_gate_counters,
    set_gate_epoch,
)
from runners.retrain.artifacts import CHECKPOINT_FILE, checkpoints_newest_first, set_last_epoch_gates
from runners.retrain.config import METRICS_COLUMNS, RetrainConfig
from runners.retrain.schedule import (
    step_batches,
    epoch_plans,
    eval_shard,
    learning_rate,
    train_batch,
    train_shard,
)


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


def history_rows(tensor: Tensor) -> list[dict[str, float]]:
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


# A caller's hook, called on every rank after each training step with ``(rank, epoch, step)`` (0-based): a
# plug-in point for instrumentation; the retraining fault tests kill a rank here (tests/runners/retrain_faults.py).
# It travels to the workers with the loop config (pickled), so it must be picklable.
AfterStep = Callable[[int, int, int], None]


@dataclass(frozen=True)
class _Training:
    """Everything one rank trains with, built once by :func:`_set_up` (the model and optimiser change in place)."""

    config: RetrainConfig
    spec: ArchSpec
    train_set: ClipSet
    test_set: ClipSet
    ctx: _Rank
    model: nn.Module  # the bare model: its state dict, its SRTG gates
    wrapped: nn.Module  # what batches go through: DDP around ``model`` when world_size > 1
    optimizer: torch.optim.Optimizer
    step: OptimisationStep
    view: ViewConfig
    plans: list[EpochPlan]
    after_step: AfterStep | None = None  # the caller's hook (see :data:`AfterStep`), called on every rank


@dataclass
class _Progress:
    """Where the run stands: the epochs done (``metrics.csv`` rows) and, once measured, the multi-view result."""

    history: list[dict[str, float]]
    epochs_done: int = 0
    final: dict[str, Any] | None = None


def train_worker(loop_config: dict[str, Any]) -> None:
    """The function every Ray Train worker runs: train the planned epochs, then evaluate multi-view.

    Each epoch ends with a checkpoint (reported on every rank, attached by rank 0); a restarted run resumes
    from the newest readable one, and one resumed after its last epoch goes straight to the final evaluation.
    """
    run = _set_up(loop_config)
    progress = _resume(run)
    for epoch in range(progress.epochs_done, len(run.plans)):
        row = _train_and_test_one_epoch(run, epoch)
        progress.history.append(row)
        progress.epochs_done = epoch + 1
        _report({"epoch": epoch + 1, **row}, _checkpoint_state(run, progress), run.ctx.rank)
        run.ctx.progress({"kind": "epoch", "row": row, "epochs": len(run.plans)})
    if progress.final is None:
        progress.final = _evaluate_multiview(run)
        _report({"epoch": len(run.plans), "final": 1}, _checkpoint_state(run, progress), run.ctx.rank)
    run.ctx.progress({"kind": "done"})


def _set_up(loop_config: dict[str, Any]) -> _Training:
    """Read the driver's settings, open the shared data, seed, and build the model and optimiser on this rank."""
    import ray.train
    import ray.train.torch

    config = RetrainConfig(**{**loop_config["config"], "lr_milestones": tuple(loop_config["config"]["lr_milestones"])})
    spec = spec_from_dict(loop_config["spec"])
    train_set = _open_shared(loop_config["train"])
    test_set = _open_shared(loop_config["test"])
    context = ray.train.get_context()
    device = ray.train.torch.get_device()
    ctx = _Rank(context.get_world_rank(), context.get_world_size(), device, config.amp and device.type == "cuda",
                loop_config.get("queue"))
    ctx.progress({"kind": "started", "workers": ctx.world_size})
    torch.set_num_threads(config.cpus_per_worker)
    _seed_everything(config.seed)
    model = build_model(spec, num_classes=train_set.num_classes, width_mult=config.width_mult)
    if config.init and ray.train.get_checkpoint() is None:
        report = init_from_checkpoint(model, config.init)
        ctx.progress({"kind": "init", "summary": report.summary()})
    ddp_ignore_gate_counters(model)
    wrapped = ray.train.torch.prepare_model(model)  # moves to the device; DDP when world_size > 1
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.scaled_lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    step = OptimisationStep(model, optimizer, amp=ctx.amp, clip_norm=config.grad_clip_norm, forward=wrapped)
    frames, size = loop_config["frames"], loop_config["size"]
    return _Training(
        config=config, spec=spec, train_set=train_set, test_set=test_set, ctx=ctx, model=model, wrapped=wrapped,
        optimizer=optimizer, step=step, view=ViewConfig(frames=frames, size=size, max_stride=config.max_stride),
        plans=epoch_plans(config, spec, frames, size), after_step=loop_config.get("after_step"),
    )  # fmt: skip


def _seed_everything(seed: int) -> None:
    import random

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _resume(run: _Training) -> _Progress:
    """The state of the newest readable checkpoint Ray Train hands back (a restart), or a fresh start."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return _Progress(history=[])
    with checkpoint.as_directory() as folder:
        state, used, skipped = load_newest_readable(checkpoints_newest_first(Path(folder)))
    for reason in skipped:
        run.ctx.progress({"kind": "checkpoint-skipped", "reason": reason, "used": str(used)})
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.step.scaler.load_state_dict(state["scaler"])
    rank = run.ctx.rank
    set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
    progress = _Progress(history=history_rows(state["history"]), epochs_done=int(state["epoch"]),
                         final=state.get("final"))
    run.ctx.progress({"kind": "resumed", "epoch": progress.epochs_done})
    return progress


def _train_and_test_one_epoch(run: _Training, epoch: int) -> dict[str, float]:
    """Train ``epoch`` on this rank's shard, then test single-view on every rank; the epoch's metrics row."""
    plan = run.plans[epoch]
    set_gate_epoch(run.model, epoch, len(run.plans))
    reset_gate_counters(run.model)
    lr, counts, seen = _train_one_epoch(run, epoch, plan)
    gate_rate = _mean_open_rate(gate_open_rates(run.model))  # summed over ranks inside
    _sync_buffers(run.model)
    test = _evaluate_everywhere(run.model, run.test_set, run.ctx, view=run.view, views=(1, 1),
                                batch_size=run.config.eval_batch_size)
    return _history_row(epoch, plan, lr, counts, seen, test, gate_rate)


def _train_one_epoch(run: _Training, epoch: int, plan: EpochPlan) -> tuple[float, Tensor, Tensor]:
    """The epoch's training steps; returns (last lr, [loss sum, correct, clips], per-clip visits) over all ranks."""
    ctx, config, train_set = run.ctx, run.config, run.train_set
    run.wrapped.train()
    shard = train_shard(len(train_set), rank=ctx.rank, world_size=ctx.world_size, seed=config.seed, epoch=epoch)
    rng = np.random.default_rng([config.seed, epoch, ctx.rank, 0xA06])  # augmentation: a function of (seed, epoch, rank)
    batches = step_batches(shard, plan, ctx.world_size)
    counts = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, clips
    seen = torch.zeros(len(train_set), dtype=torch.int64)
    lr = plan.lr
    for step, (indices, frames, size) in enumerate(batches):
        lr = learning_rate(plan, epoch + step / len(batches), config)
        run.step.set_lr(lr)
        x = train_batch(
            train_set.videos, indices, view=run.view, frames=frames, size=size, stride_factor=plan.stride_factor, rng=rng,
        ).to(ctx.device)  # fmt: skip
        y = torch.from_numpy(np.asarray(train_set.labels[indices], dtype=np.int64)).to(ctx.device)
        result = run.step(x, y, epoch=epoch, step=step)
        counts += torch.tensor([result.loss * len(indices), result.correct, len(indices)], dtype=torch.float64)
        seen[torch.from_numpy(indices)] += 1
        ctx.progress({"kind": "step", "epoch": epoch, "step": step + 1, "steps": len(batches), "loss": result.loss})
        if run.after_step is not None:
            run.after_step(ctx.rank, epoch, step)
    return lr, _all_reduce(counts), _all_reduce(seen)


def _evaluate_multiview(run: _Training) -> dict[str, Any]:
    """The final test: clips x crops per clip (identical views evaluated once), gates as at the last epoch."""
    ctx, config = run.ctx, run.config
    # a run resumed from its last epoch's checkpoint skipped the loop: gates as at the last epoch (docs/retrain.md, "Checkpoints, resume")
    set_last_epoch_gates(run.model, len(run.plans))
    reset_gate_counters(run.model)
    requested = (config.test_clips, config.test_crops)
    views = distinct_views(run.test_set.clip_shape, run.view, *requested)
    ctx.progress({"kind": "multiview", "requested": list(requested), "views": list(views)})
    multi = _evaluate_everywhere(
        run.model, run.test_set, ctx, view=run.view, views=views, batch_size=config.eval_batch_size,
        on_batch=lambda done, total: ctx.progress({"kind": "test", "done": done, "total": total}),
    )  # fmt: skip
    _, top1, top5, clips = multi["counts"].tolist()
    return {
        "multiview_top1": top1 / max(clips, 1),
        "multiview_top5": top5 / max(clips, 1),
        "multiview_clips": int(clips),
        "multiview_unique_clips": int((multi["seen"] > 0).sum()),
        "multiview": multiview_label(requested, views),
        "gate_open_rates": json.dumps(gate_open_rates(run.model)),
    }


def _checkpoint_state(run: _Training, progress: _Progress) -> dict[str, Any]:
    """What a checkpoint holds (state dicts, tensors and numbers only). A collective: every rank calls it."""
    return {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.step.scaler.state_dict(),
        "rng": _gather_rng_states(run.ctx.world_size),
        "epoch": progress.epochs_done,
        "history": _history_tensor(progress.history),
        "final": progress.final,
        "config": run.config.to_dict(),
        "spec": run.spec.to_json(),
        "num_classes": run.train_set.num_classes,
    }


def _gather_rng_states(world_size: int) -> list[dict[str, Tensor]]:
    """Every rank's RNG state, in rank order (each rank draws its own augmentation)."""
    if world_size == 1:
        return [rng_state()]
    gathered: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(gathered, rng_state())
    return gathered


def share(clips: ClipSet) -> dict[str, Any]:
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
