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


def srtg_forward_where(module, x: Tensor) -> Tensor:
    """``SRTG.forward`` before issue 16: fuse every sample, then ``torch.where`` picks x for closed gates."""
    from space.srtg import cycle_back_loss, cycle_consistent

    s = x.mean(dim=(3, 4)).transpose(1, 2)
    h = module.recurrence(s)
    h5 = h.transpose(1, 2).unsqueeze(-1).unsqueeze(-1).to(x.dtype)
    fused = x * h5 if module.fusion == "mul" else x * (1.0 + h5)
    if module.align_weight > 0 and module.training:
        module.last_align_loss = module.align_weight * cycle_back_loss(s, h, tau=module.tau, gate_norm=module.gate_norm)
    if not module.gate_active:
        module._count(torch.ones(x.shape[0], dtype=torch.bool, device=x.device), x.shape[2])
        return fused
    with torch.no_grad():
        is_open = cycle_consistent(
            s.detach(), h.detach(), tau=module.tau, tolerance=module.tolerance, gate_norm=module.gate_norm
        )
    module._count(is_open, x.shape[2])
    return torch.where(is_open.view(-1, 1, 1, 1, 1), fused, x)
