"""Clip sampling (``docs/data.md``): random windows for training, single- and multi-view evaluation.

Everything works on uint8 arrays N x T x H x W x 3 (a :class:`~runners.clips.ClipSet`, possibly memory-mapped)
and gathers a whole batch with one fancy-indexing call, so feeding a small proxy costs a few milliseconds per
batch. Conversion to float, the channel-first layout B x 3 x T x H x W and normalisation happen in torch, on
the training device.

Training view: a random temporal stride in ``[1, max_stride]`` (limited by the clip length), a random window
start and a random ``size`` x ``size`` crop. No horizontal flip: it would turn ``move_right`` into
``move_left`` (and real datasets have direction-dependent classes too).

Evaluation views: ``num_clips`` windows evenly spaced over the clip, at the largest stride <= ``max_stride``
that fits, times ``num_crops`` spatial crops (1: centre; 3: start / centre / end along the longer side, as
PySlowFast does). Predictions are softmax probabilities averaged over all clips x crops; ``10 x 3`` is the
usual full-scale protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from runners.clips import ClipSet
from space.errors import UserInputError

__all__ = [
    "ViewConfig",
    "sample_training_batch",
    "evaluation_views",
    "gather_views",
    "to_model_input",
    "predict_probabilities",
]

# Per-channel mean / std of the 0-1 range, as torchvision's Kinetics video models use.
MEAN = (0.43216, 0.394666, 0.37645)
STD = (0.22803, 0.22145, 0.216989)


class SamplingError(UserInputError):
    """Clip shape and requested view do not fit together."""


@dataclass(frozen=True)
class ViewConfig:
    """What the model sees: ``frames`` x ``size`` x ``size`` windows taken at a stride of at most ``max_stride``."""

    frames: int
    size: int
    max_stride: int = 2

    def check_fits(self, clip_shape: tuple[int, int, int]) -> None:
        t, h, w = clip_shape
        if t < self.frames or min(h, w) < self.size:
            raise SamplingError(
                f"clips of {t}x{h}x{w} (TxHxW) are too small for {self.frames}x{self.size}x{self.size} views; "
                f"allowed: frames <= {t}, size <= {min(h, w)} (prepare the data with more frames or a larger size)"
            )
        if self.max_stride < 1:
            raise SamplingError(f"max_stride={self.max_stride} is not allowed; allowed: >= 1")


def _largest_stride(length: int, frames: int, max_stride: int) -> int:
    return max(1, min(max_stride, (length - 1) // max(frames - 1, 1)))


def sample_training_batch(
    videos: np.ndarray, indices: np.ndarray, view: ViewConfig, rng: np.random.Generator
) -> np.ndarray:
    """Random training views of ``videos[indices]``: uint8 B x frames x size x size x 3, one gather."""
    b = len(indices)
    t, h, w = videos.shape[1:4]
    top_stride = _largest_stride(t, view.frames, view.max_stride)
    stride = rng.integers(1, top_stride + 1, size=b)
    span = (view.frames - 1) * stride + 1
    start = (rng.random(b) * (t - span + 1)).astype(np.int64)
    times = start[:, None] + stride[:, None] * np.arange(view.frames)  # B x F
    top = rng.integers(0, h - view.size + 1, size=b)
    left = rng.integers(0, w - view.size + 1, size=b)
    return _gather(videos, indices, times, top, left, view.size)


def _gather(
    videos: np.ndarray, indices: np.ndarray, times: np.ndarray, top: np.ndarray, left: np.ndarray, size: int
) -> np.ndarray:
    """videos[i, times[b], top[b]:top[b]+size, left[b]:left[b]+size] for each batch element b, in one call."""
    rows = top[:, None] + np.arange(size)  # B x S
    cols = left[:, None] + np.arange(size)
    clip = np.asarray(indices)[:, None, None, None]
    if isinstance(videos, np.memmap) or not videos.flags.c_contiguous:
        # A memory map: read only the clips we need once, then crop in memory.
        videos = np.asarray(videos[np.asarray(indices)])
        clip = np.arange(len(indices))[:, None, None, None]
    return videos[clip, times[:, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]


def evaluation_views(
    clip_shape: tuple[int, int, int], view: ViewConfig, num_clips: int, num_crops: int
) -> list[tuple[np.ndarray, int, int]]:
    """The (frame indices, top, left) of every clips x crops view, the same for every clip of the set."""
    if num_clips < 1 or num_crops not in (1, 3):
        raise SamplingError(f"{num_clips} clips x {num_crops} crops is not allowed; allowed: clips >= 1, crops 1 or 3")
    t, h, w = clip_shape
    stride = _largest_stride(t, view.frames, view.max_stride)
    span = (view.frames - 1) * stride + 1
    room = t - span
    starts = [room // 2] if num_clips == 1 else [int(round(i * room / (num_clips - 1))) for i in range(num_clips)]
    centre = ((h - view.size) // 2, (w - view.size) // 2)
    if num_crops == 1:
        crops = [centre]
    elif w >= h:  # three crops along the longer side
        crops = [(centre[0], 0), centre, (centre[0], w - view.size)]
    else:
        crops = [(0, centre[1]), centre, (h - view.size, centre[1])]
    return [(s + stride * np.arange(view.frames), top, left) for s in starts for top, left in crops]


def distinct_views(
    clip_shape: tuple[int, int, int], view: ViewConfig, num_clips: int, num_crops: int
) -> tuple[int, int]:
    """``(clips, crops)`` with the same averaged prediction as ``num_clips x num_crops`` and no repeated view.

    A clip exactly as long as the sampled span has one start, a clip exactly the crop size one crop: then every
    requested view is the same and averaging them costs ``num_clips x num_crops`` passes for nothing.
    """
    views = evaluation_views(clip_shape, view, num_clips, num_crops)
    starts = {int(times[0]) for times, _, _ in views}
    crops = {(top, left) for _, top, left in views}
    return (1 if len(starts) == 1 else num_clips), (1 if len(crops) == 1 else num_crops)


def gather_views(videos: np.ndarray, indices: np.ndarray, times: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """One evaluation view of ``videos[indices]``: uint8 B x frames x size x size x 3."""
    b = len(indices)
    return _gather(
        videos, np.asarray(indices), np.broadcast_to(times, (b, len(times))),
        np.full(b, top), np.full(b, left), size,
    )  # fmt: skip


def to_model_input(batch: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 B x T x H x W x 3 -> normalised float32 B x 3 x T x H x W on ``device``."""
    tensor = torch.from_numpy(np.ascontiguousarray(batch))
    device = torch.device(device)
    if device.type == "cuda":
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    x = tensor.permute(0, 4, 1, 2, 3).float().div_(255.0)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1, 1)
    return x.sub_(mean).div_(std).contiguous()


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    clips: ClipSet,
    view: ViewConfig,
    *,
    num_clips: int = 1,
    num_crops: int = 1,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    amp: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Softmax probabilities N x C averaged over ``num_clips`` x ``num_crops`` views (model put in eval mode).

    ``on_batch(done, total)`` is called after each batch of clips (progress of a long multi-view test).
    """
    view.check_fits(clips.clip_shape)
    views = evaluation_views(clips.clip_shape, view, num_clips, num_crops)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    total: np.ndarray | None = None
    try:
        for lo in range(0, len(clips), batch_size):
            indices = np.arange(lo, min(lo + batch_size, len(clips)))
            summed = None
            for times, top, left in views:
                x = to_model_input(gather_views(clips.videos, indices, times, top, left, view.size), device)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
                    logits = model(x)
                probs = torch.softmax(logits.float(), dim=1)
                summed = probs if summed is None else summed + probs
            batch_probs = (summed / len(views)).cpu().numpy()
            if total is None:
                total = np.empty((len(clips), batch_probs.shape[1]), dtype=np.float32)
            total[indices] = batch_probs
            if on_batch is not None:
                on_batch(int(indices[-1]) + 1, len(clips))
    finally:
        model.train(was_training)
    assert total is not None
    return total
