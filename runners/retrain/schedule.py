"""The plan of a retraining run: epoch plans (multigrid or step decay), LR warm-up, data shards, batches."""

from __future__ import annotations


import numpy as np
import torch.nn.functional as F
from torch import Tensor

from runners.sampling import ViewConfig, sample_training_batch, to_model_input
from runners.multigrid import EpochPlan, MultigridConfig, multigrid_schedule, step_schedule
from runners.trainstep import linear_warmup
from space import ArchSpec
from space.spec import MTNetSpec
from runners.retrain.config import RetrainConfig


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


def learning_rate(plan: EpochPlan, epoch_float: float, config: RetrainConfig) -> float:
    """The epoch's lr with a linear warm-up from ``warmup_start_factor`` over ``warmup_epochs``."""
    progress = epoch_float / config.warmup_epochs if config.warmup_epochs > 0 else 1.0
    return linear_warmup(plan.lr, progress, start_factor=config.warmup_start_factor)


def step_batches(shard: np.ndarray, plan: EpochPlan, world_size: int) -> list[tuple[np.ndarray, int, int]]:
    """Cut this rank's shard into iterations cycling through the plan's shapes: (indices, frames, size)."""
    out, begin, step = [], 0, 0
    while begin < len(shard):
        shape = plan.iterations[step % len(plan.iterations)]
        per_rank = max(1, shape.batch_size // world_size)
        out.append((shard[begin : begin + per_rank], shape.frames, shape.size))
        begin += per_rank
        step += 1
    return out
