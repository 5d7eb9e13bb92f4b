"""Per-epoch training plans: a plain step-decay schedule, or PySlowFast's multigrid (Wu et al. 2020).

Multigrid trains on cheaper, coarser clips most of the time: a *long cycle* changes the base shape
(frames x size) every few epochs and grows the batch so each iteration costs about the same; a *short
cycle* alternates three spatial sizes from one iteration to the next inside an epoch. Only the sampler and
the batch shape change; the model is never rebuilt (our models take any T x H x W).

The formulas are those of PySlowFast (``slowfast/utils/multigrid.py``: ``get_long_cycle_schedule``,
``init_multigrid``, ``update_long_cycle``; ``slowfast/datasets/multigrid_helper.py``:
``ShortCycleBatchSampler``; ``slowfast/utils/lr_policy.py``: ``steps_with_relative_lrs``) with its default
factors. Two decisions of ours, written in docs/retrain.md:

* shapes are then snapped to the multiples the model accepts (``frames_multiple``, ``size_multiple``);
  batch factors keep PySlowFast's formulas on its own (unsnapped) shapes;
* PySlowFast indexes the short-cycle shapes of the last long cycle even when short cycles are off (an
  ``IndexError`` there); we use that cycle's base shape, which is what the index means.
"""

from __future__ import annotations

from dataclasses import dataclass

from space.errors import UserInputError

__all__ = [
    "LONG_CYCLE_FACTORS",
    "SHORT_CYCLE_FACTORS",
    "MultigridConfig",
    "IterShape",
    "EpochPlan",
    "step_schedule",
    "multigrid_schedule",
    "snap",
]

# (temporal, spatial) factors relative to the default shape: slowfast/config/defaults.py
LONG_CYCLE_FACTORS: tuple[tuple[float, float], ...] = ((0.25, 0.5**0.5), (0.5, 0.5**0.5), (0.5, 1.0), (1.0, 1.0))
# spatial factors of the two extra short-cycle iterations, relative to the default crop size
SHORT_CYCLE_FACTORS: tuple[float, float] = (0.5, 0.5**0.5)


@dataclass(frozen=True)
class MultigridConfig:
    """PySlowFast's ``MULTIGRID`` options with their defaults."""

    long_cycle: bool = True
    short_cycle: bool = True
    long_cycle_factors: tuple[tuple[float, float], ...] = LONG_CYCLE_FACTORS
    short_cycle_factors: tuple[float, float] = SHORT_CYCLE_FACTORS
    epoch_factor: float = 1.5


@dataclass(frozen=True)
class IterShape:
    """One iteration's clip shape and global batch size."""

    frames: int
    size: int
    batch_size: int


@dataclass(frozen=True)
class EpochPlan:
    """What one epoch trains on.

    ``iterations`` is cycled through, one entry per iteration (three with short cycles, else one);
    ``stride_factor`` multiplies the temporal sampling stride so fewer frames still span the same time
    (PySlowFast's ``LONG_CYCLE_SAMPLING_RATE``); ``lr`` is the epoch's learning rate before warm-up.
    """

    epoch: int
    frames: int
    size: int
    batch_size: int
    lr: float
    stride_factor: int
    iterations: tuple[IterShape, ...]


def snap(value: float, multiple: int) -> int:
    """Round to the nearest multiple of ``multiple`` (at least one multiple)."""
    return max(multiple, int(round(value / multiple)) * multiple)


def _step_index(steps: list[float], max_epoch: float, epoch: float) -> int:
    """PySlowFast's ``get_step_index``: which interval of ``steps + [max_epoch]`` holds ``epoch``."""
    bounds = steps + [max_epoch]
    index = len(bounds)
    for index, bound in enumerate(bounds):  # noqa: B007 - the loop index is the answer
        if epoch < bound:
            break
    return index - 1


def step_schedule(
    *, epochs: int, milestones: tuple[int, ...], frames: int, size: int, batch_size: int, base_lr: float, gamma: float
) -> list[EpochPlan]:
    """No multigrid: one shape; lr = base_lr * gamma ** (milestones passed)."""
    plans = []
    for epoch in range(epochs):
        lr = base_lr * gamma ** sum(epoch >= m for m in milestones)
        shape = IterShape(frames, size, batch_size)
        plans.append(EpochPlan(epoch, frames, size, batch_size, lr, 1, (shape,)))
    return plans


def _long_cycle_shapes(config: MultigridConfig, frames: int, size: int) -> list[list[list[float]]]:
    """Per long cycle: its iteration shapes ``[batch factor, T, S]`` (short cycles first, base shape last)."""
    default_size = float(frames * size**2)
    all_shapes = []
    for t_factor, s_factor in config.long_cycle_factors:
        base_t = int(round(frames * t_factor))
        base_s = int(round(size * s_factor))
        if config.short_cycle:
            ts = [[base_t, size * config.short_cycle_factors[0]], [base_t, size * config.short_cycle_factors[1]]]
            ts.append([base_t, base_s])
        else:
            ts = [[base_t, base_s]]
        all_shapes.append([[int(round(default_size / (t * s * s))), t, s] for t, s in ts])
    return all_shapes


def _long_cycle_schedule(
    config: MultigridConfig, steps: list[int], max_epoch: int, frames: int, size: int
) -> list[tuple[int, list[float], int]]:
    """PySlowFast's ``get_long_cycle_schedule``: (step index, [batch factor, T, S], end epoch) per phase."""
    all_shapes = _long_cycle_shapes(config, frames, size)
    avg_bs = [sum(s[0] for s in shapes) / len(shapes) for shapes in all_shapes]
    total_iters = 0.0
    schedule: list[tuple[int, list[float], float]] = []
    for step_index in range(len(steps) - 1):
        step_epochs = steps[step_index + 1] - steps[step_index]
        for cycle, shapes in enumerate(all_shapes):
            cur_epochs = step_epochs * avg_bs[cycle] / sum(avg_bs)
            total_iters += cur_epochs / avg_bs[cycle]
            schedule.append((step_index, shapes[-1], cur_epochs))
    iter_saving = steps[-1] / total_iters
    final_step_epochs = max_epoch - steps[-1]
    # the fine-tuning phase saves as many iterations as the rest of training
    ft_epochs = final_step_epochs / iter_saving * avg_bs[-1]
    schedule.append((len(steps) - 1, all_shapes[-1][-1], ft_epochs))
    x = max_epoch * config.epoch_factor / sum(s[2] for s in schedule)
    final, total = [], 0.0
    for step_index, shape, epochs in schedule:
        total += epochs * x
        final.append((step_index, shape, int(round(total))))
    return final


def multigrid_schedule(
    *,
    epochs: int,
    milestones: tuple[int, ...],
    frames: int,
    size: int,
    batch_size: int,
    base_lr: float,
    gamma: float,
    config: MultigridConfig = MultigridConfig(),
    frames_multiple: int = 1,
    size_multiple: int = 1,
) -> list[EpochPlan]:
    """The per-epoch plan of multigrid training for a baseline of ``epochs`` epochs decayed at ``milestones``.

    ``frames`` x ``size`` and ``batch_size`` (global) are the default (full) shape and batch; ``base_lr`` is
    the learning rate at that batch. As in PySlowFast, the run lasts about ``epoch_factor`` x ``epochs``
    epochs (long cycle: the schedule's end; short cycle only: ``int(epochs * epoch_factor)``).
    """
    if not (config.long_cycle or config.short_cycle):
        return step_schedule(
            epochs=epochs, milestones=milestones, frames=frames, size=size, batch_size=batch_size, base_lr=base_lr, gamma=gamma
        )
    steps = [0] + sorted(set(int(m) for m in milestones if 0 < m < epochs))
    if config.long_cycle and len(steps) < 2:
        raise UserInputError(
            f"multigrid's long cycle needs at least one lr step inside the {epochs} epochs (milestones {milestones}); "
            "allowed: more epochs, or milestones between 1 and epochs - 1"
        )

    def short_iterations(base_frames: int, base_size: int, base_batch: int, raw_size: float) -> tuple[IterShape, ...]:
        return _short_cycle(config, size, size_multiple, base_frames, base_size, base_batch, raw_size)

    if not config.long_cycle:  # short cycle only: PySlowFast stretches steps and epochs by epoch_factor
        total = int(epochs * config.epoch_factor)
        stretched = tuple(int(s * config.epoch_factor) for s in steps[1:])
        plans = step_schedule(
            epochs=total, milestones=stretched, frames=frames, size=size, batch_size=batch_size, base_lr=base_lr, gamma=gamma
        )
        iterations = short_iterations(snap(frames, frames_multiple), snap(size, size_multiple), batch_size, size)
        return [EpochPlan(p.epoch, p.frames, p.size, p.batch_size, p.lr, 1, iterations) for p in plans]

    schedule = _long_cycle_schedule(config, steps, epochs, frames, size)
    lr_steps = [0] + [end for _, _, end in schedule]
    lr_steps[-1] = (lr_steps[-2] + lr_steps[-1]) // 2  # fine-tuning phase: first half keeps the previous lr
    relative_lrs = [gamma**step_index * shape[0] for step_index, shape, _ in schedule]
    relative_lrs = relative_lrs[:-1] + [relative_lrs[-2], relative_lrs[-1]]
    max_epoch = schedule[-1][-1]

    plans = []
    for epoch in range(max_epoch):
        batch_factor, t, s = next((shape for _, shape, end in schedule if epoch < end), schedule[-1][1])
        base_frames, base_size = snap(t, frames_multiple), snap(s, size_multiple)
        base_batch = int(batch_factor) * batch_size
        lr = base_lr * relative_lrs[_step_index(lr_steps, max_epoch, epoch)]
        stride_factor = max(1, frames // int(t))
        iterations = short_iterations(base_frames, base_size, base_batch, s)
        plans.append(EpochPlan(epoch, base_frames, base_size, base_batch, lr, stride_factor, iterations))
    return plans


def _short_cycle(config: MultigridConfig, size: int, size_multiple: int, base_frames: int, base_size: int,
                 base_batch: int, raw_size: float) -> tuple[IterShape, ...]:
    """One epoch's iteration shapes, as PySlowFast's ShortCycleBatchSampler: batch x round((S / (f * S_default))^2)
    at crop round(f * S_default) for each short-cycle factor f, then the epoch's own shape (only that one
    without a short cycle). ``size`` is the default crop S_default, ``raw_size`` the epoch's unsnapped S."""
    if not config.short_cycle:
        return (IterShape(base_frames, base_size, base_batch),)
    shapes = []
    for factor in config.short_cycle_factors:
        bs_factor = int(round((float(raw_size) / (factor * size)) ** 2))
        crop = snap(int(round(factor * size)), size_multiple)
        shapes.append(IterShape(base_frames, crop, base_batch * bs_factor))
    return (*shapes, IterShape(base_frames, base_size, base_batch))
