"""Frozen copies of implementations that were replaced by faster ones (issue 16).

Each optimised op in ``space`` is tested against its previous implementation here (values and gradients):
the old code is the reference, kept verbatim apart from its names, so a later change to the fast path
cannot silently change results.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from space.softpool import _far_side_padding, _triple


def soft_pool3d_gather(
    x: Tensor,
    kernel_size: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] | None = None,
    ceil_mode: bool = False,
) -> Tensor:
    """SoftPool as first written: every window gathered with ``unfold``, a softmax over each."""
    kernel = _triple(kernel_size, "kernel_size")
    steps = kernel if stride is None else _triple(stride, "stride")
    pad_arg = _far_side_padding(x, kernel, steps, ceil_mode)
    logits, values = x, x
    if any(pad_arg):
        logits = F.pad(x, pad_arg, value=-math.inf)
        values = F.pad(x, pad_arg, value=0.0)
    for dim, (k, s) in enumerate(zip(kernel, steps), start=2):
        logits = logits.unfold(dim, k, s)
        values = values.unfold(dim, k, s)
    logits = logits.flatten(start_dim=-3)
    values = values.flatten(start_dim=-3)
    weights = torch.softmax(logits, dim=-1)
    return (weights * values).sum(dim=-1)
