"""Squeeze and Recursion Temporal Gates (SRTG, docs/srtg.md).

An SRTG block squeezes activations ``x`` (B x C x T x H x W) to a sequence ``s`` (B x T x C), runs a
2-layer RNN over time to get ``h`` (B x T x C, in (-1, 1)), and fuses ``h`` back into ``x``. With a
``cyclic`` gate the fusion happens per sample only when ``s`` and ``h`` are temporally
cycle-consistent in both directions (paper eqs. 4-5); otherwise the block returns ``x`` untouched.

Two fixes over the authors' released code, both in docs/srtg.md:

* embeddings are normalised (``gate_norm``) before the consistency check. Raw activations and a
  tanh-bounded RNN output live on different scales, so unnormalised the gate never opens;
* distances are squared distances divided by C, so ``tau`` means the same at C = 64 and C = 2048.

The decision is a ``torch.where`` over the batch (no data-dependent Python branch), so the module traces
with ``torch.jit.trace`` and, under DDP, the RNN takes part in every step even when no gate opens.
Each module counts how often its gate opened (non-persistent buffers, so never in checkpoints).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from space.spec import SpecError, SRTGSpec

__all__ = [
    "SRTG",
    "cycle_consistent",
    "consistency_share",
    "soft_nearest_neighbour_weights",
    "cycle_back_loss",
    "normalise_sequence",
    "set_gate_epoch",
    "reset_gate_counters",
    "gate_open_rates",
    "gate_single_frame_samples",
    "auxiliary_loss",
    "srtg_modules",
    "ddp_ignore_gate_counters",
]

_STD_EPS = 1e-5
_TIE_RTOL = 1e-6


# --------------------------------------------------------------------------------------------
# Cycle consistency (pure functions on B x T x C sequences)
# --------------------------------------------------------------------------------------------


def normalise_sequence(seq: Tensor, mode: str) -> Tensor:
    """``std``: zero mean, unit variance over T x C per sample; ``l2``: unit RMS per frame; ``none``.

    ``l2`` fixes each frame's direction only (its L2 norm), but scales it to unit root-mean-square over C
    (norm sqrt(C)), not to unit norm: distances are divided by C, so with unit-norm frames every distance
    would be at most 4 / C and ``tau`` would mean something different at every C (at C = 64 and tau = 0.05
    the soft nearest neighbour is then nearly uniform and the gate never opens). With unit RMS, ``std`` and
    ``l2`` put distances on the same scale (squared distance / C between unit-RMS vectors lies in [0, 4]).
    """
    if mode == "std":
        centred = seq - seq.mean(dim=(1, 2), keepdim=True)
        return centred / (centred.pow(2).mean(dim=(1, 2), keepdim=True).sqrt() + _STD_EPS)
    if mode == "l2":
        return seq / (seq.pow(2).mean(dim=2, keepdim=True).sqrt() + _STD_EPS)
    return seq


def _mean_sq_dist(a: Tensor, b: Tensor) -> Tensor:
    """Squared distances divided by C: B x Ta x C, B x Tb x C -> B x Ta x Tb."""
    channels = a.shape[-1]
    sq = a.pow(2).sum(-1).unsqueeze(2) + b.pow(2).sum(-1).unsqueeze(1) - 2.0 * torch.bmm(a, b.transpose(1, 2))
    return sq.clamp_min(0.0) / channels


def soft_nearest_neighbour_weights(a: Tensor, b: Tensor, tau: float) -> Tensor:
    """z[b, t, i] = softmax_i(-d(a_t, b_i) / tau): how much frame t of ``a`` attends to frame i of ``b``."""
    return torch.softmax(-_mean_sq_dist(a, b) / tau, dim=-1)


def _direction_share(a: Tensor, b: Tensor, tau: float, tolerance: int) -> Tensor:
    """One direction A -> B: the share of A's frames whose soft nearest neighbour in B cycles back to
    within ``tolerance`` frames of themselves. Returns B floats in [0, 1]."""
    frames = a.shape[1]
    b_tilde = torch.bmm(soft_nearest_neighbour_weights(a, b, tau), b)
    dist = _mean_sq_dist(b_tilde, b)
    nearest, k = dist.min(dim=-1)
    tie_margin = _TIE_RTOL * (1.0 + nearest.abs())
    ties = (dist <= (nearest + tie_margin).unsqueeze(-1)).sum(dim=-1) > 1  # a static clip: no unique neighbour
    t = torch.arange(frames, device=a.device).unsqueeze(0)
    ok = ((k - t).abs() <= tolerance) & ~ties
    return ok.float().mean(dim=1)


def consistency_share(s: Tensor, h: Tensor, *, tau: float, tolerance: int = 0, gate_norm: str = "std") -> Tensor:
    """Per sample: the smaller of the two directions' shares of frames that cycle back. Returns B floats.

    The gate opens where this share reaches its ``quorum`` (1.0: every frame, the paper's rule). A sequence
    of one frame has nothing to align; its share is defined as 1.
    """
    if s.shape[1] == 1:
        return torch.ones(s.shape[0], device=s.device)
    a = normalise_sequence(s.float(), gate_norm)
    b = normalise_sequence(h.float(), gate_norm)
    return torch.minimum(_direction_share(a, b, tau, tolerance), _direction_share(b, a, tau, tolerance))


def cycle_consistent(
    s: Tensor, h: Tensor, *, tau: float, tolerance: int = 0, gate_norm: str = "std", quorum: float = 1.0
) -> Tensor:
    """Per sample: are ``s`` and ``h`` (B x T x C) cycle-consistent in both directions? Returns B bools.

    A direction holds when at least ``quorum`` of the frames cycle back (counted in whole frames:
    ceil(quorum * T)); quorum 1.0 and tolerance 0 are the paper's exact rule.
    A sequence of a single frame has nothing to align: it counts as consistent here (what the module does
    with T = 1 is the module's decision, see :class:`SRTG`).
    """
    frames = s.shape[1]
    needed = math.ceil(quorum * frames - 1e-9)
    share = consistency_share(s, h, tau=tau, tolerance=tolerance, gate_norm=gate_norm)
    return torch.round(share * frames) >= needed


def cycle_back_loss(s: Tensor, h: Tensor, *, tau: float, gate_norm: str = "std") -> Tensor:
    """Differentiable version of the gate's test (soft cycle-back regression), both directions.

    For frame t of A: the soft nearest neighbour b~_t in B (as the gate computes it), then a soft argmin
    beta_i = softmax_i(-d(b~_t, b_i) / tau) in place of the gate's hard one; the loss is the squared error
    between t and the expected index sum_i beta_i i, divided by T^2 so it lies in [0, 1]. Unlike temporal
    cycle-consistency learning's A -> B -> A cycle (blind to any reordering of B), this regresses onto the
    index the gate compares, so lowering it is what opens the gate.
    """
    frames = s.shape[1]
    if frames == 1:
        return s.new_zeros(())
    a = normalise_sequence(s.float(), gate_norm)
    b = normalise_sequence(h.float(), gate_norm)
    index = torch.arange(frames, device=s.device, dtype=a.dtype)
    total = a.new_zeros(())
    for first, second in ((a, b), (b, a)):
        soft_neighbour = torch.bmm(soft_nearest_neighbour_weights(first, second, tau), second)
        beta = soft_nearest_neighbour_weights(soft_neighbour, second, tau)
        expected = beta @ index
        total = total + ((expected - index) ** 2).mean() / frames**2
    return total / 2


# --------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------


class SRTG(nn.Module):
    """One SRTG block for ``channels`` input channels, configured by ``spec`` (placement is the caller's)."""

    def __init__(self, channels: int, *, spec: SRTGSpec, name: str = "srtg") -> None:
        super().__init__()
        if channels % spec.reduction != 0:
            raise SpecError(
                f"srtg.reduction={spec.reduction} does not divide C={channels} at {name}; "
                f"allowed: a reduction in {{1, 2, 4, 8, 16}} that divides every SRTG block's channels"
            )
        hidden = channels // spec.reduction
        rnn_type = nn.LSTM if spec.recurrent == "lstm" else nn.GRU
        self.rnn = rnn_type(channels, hidden, num_layers=2, batch_first=True)
        self.expand = nn.Linear(hidden, channels) if spec.reduction > 1 else None
        self.fusion = spec.fusion
        self.gate_mode = spec.gate
        self.gate_norm = spec.gate_norm
        self.tau = spec.tau
        self.tolerance = spec.tolerance
        self.quorum = spec.quorum
        self.align_weight = spec.align_loss
        self.block_name = name
        self.spec = spec
        # `warmup` starts inactive; set_gate_epoch() switches it on at the configured epoch.
        self.gate_active = spec.gate == "cyclic"
        self.register_buffer("gate_opened", torch.zeros((), dtype=torch.float64), persistent=False)
        self.register_buffer("gate_samples", torch.zeros((), dtype=torch.float64), persistent=False)
        # Samples seen with T = 1 (nothing to align): counted apart so they never dilute real decisions.
        self.register_buffer("gate_single_frame", torch.zeros((), dtype=torch.float64), persistent=False)
        self.last_align_loss: Tensor | None = None

    def recurrence(self, s: Tensor) -> Tensor:
        """h = RNN(s) with zero initial state, back at C channels; B x T x C in (-1, 1)."""
        h, _ = self.rnn(s)
        if self.expand is not None:
            h = torch.tanh(self.expand(h))
        return h

    def fuse(self, x: Tensor, h: Tensor, is_open: Tensor | None = None) -> Tensor:
        """``x * h`` (or ``x * (1 + h)``) where the gate is open, ``x`` itself where it is closed.

        The gate is applied to the small per-frame factor (B x C x T x 1 x 1), not to the fused activations:
        one pass over ``x`` instead of two (fuse, then ``torch.where``), with the same values (a closed
        sample is ``x * 1``) and the same gradients (none reaches ``h`` through a closed gate). Measured on
        1 x 64 x 16 x 56 x 56, one thread: broadcast multiply 3.3 ms, the row view below 1.1 ms, and the
        ``torch.where`` it replaces 16 ms.
        """
        factor = h.transpose(1, 2).unsqueeze(-1).unsqueeze(-1).to(x.dtype)  # B x C x T x 1 x 1
        if self.fusion != "mul":
            factor = 1.0 + factor
        if is_open is not None:
            factor = torch.where(is_open.view(-1, 1, 1, 1, 1), factor, torch.ones((), dtype=x.dtype, device=x.device))
        if x.is_contiguous():  # rows of H*W times one factor each: a 3x faster CPU loop than broadcasting over H, W
            rows = factor.numel()
            return (x.view(rows, -1) * factor.reshape(rows, 1)).view(x.shape)
        return x * factor

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean(dim=(3, 4)).transpose(1, 2)  # squeeze: B x T x C
        h = self.recurrence(s)
        if self.align_weight > 0 and self.training:
            self.last_align_loss = self.align_weight * cycle_back_loss(s, h, tau=self.tau, gate_norm=self.gate_norm)
        if not self.gate_active:
            self._count(torch.ones(x.shape[0], dtype=torch.bool, device=x.device), x.shape[2])
            return self.fuse(x, h)
        with torch.no_grad():  # a hard decision: no gradient through it
            if x.shape[2] == 1:
                # T = 1: nothing to align, so nothing shows the RNN's output is consistent: the gate stays shut
                # (docs/srtg.md: fusing there with `mul` cost 44 points of top-1 on the demo proxy).
                is_open = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            else:
                is_open = cycle_consistent(
                    s.detach(), h.detach(), tau=self.tau, tolerance=self.tolerance, gate_norm=self.gate_norm,
                    quorum=self.quorum,
                )
        self._count(is_open, x.shape[2])
        return self.fuse(x, h, is_open)

    def _count(self, is_open: Tensor, frames: int) -> None:
        """Count a forward's decisions; a T = 1 forward decides nothing and goes to its own counter."""
        if torch.jit.is_tracing() or torch.jit.is_scripting():
            return
        if frames == 1:
            self.gate_single_frame += is_open.numel()
            return
        self.gate_opened += is_open.sum().to(self.gate_opened.dtype)
        self.gate_samples += is_open.numel()

    def extra_repr(self) -> str:
        return (f"gate={self.gate_mode}, active={self.gate_active}, fusion={self.fusion}, tau={self.tau}, "
                f"tolerance={self.tolerance}, quorum={self.quorum}")


# --------------------------------------------------------------------------------------------
# Model-level helpers (what training loops and reports call)
# --------------------------------------------------------------------------------------------


def srtg_modules(model: nn.Module) -> dict[str, SRTG]:
    """Every SRTG module of ``model`` by its qualified name, in model order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, SRTG)}


def set_gate_epoch(model: nn.Module, epoch: int, total_epochs: int) -> None:
    """Switch ``warmup`` gates: inactive while ``epoch`` (0-based) < their warm-up length, cyclic after."""
    for module in srtg_modules(model).values():
        if module.gate_mode != "warmup":
            continue
        module.gate_active = epoch >= module.spec.warmup_epochs(total_epochs)


_COUNTERS = ("gate_opened", "gate_samples", "gate_single_frame")


def reset_gate_counters(model: nn.Module) -> None:
    for module in srtg_modules(model).values():
        for counter in _COUNTERS:
            getattr(module, counter).zero_()


def _gate_counts(model: nn.Module) -> dict[str, tuple[float, float, float]]:
    """Block name -> (opened, decided samples with T > 1, samples with T = 1), summed across DDP ranks."""
    modules = srtg_modules(model)
    if not modules:
        return {}
    counts = torch.stack([torch.stack([getattr(m, c) for c in _COUNTERS]) for m in modules.values()])
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        counts = counts.clone()
        torch.distributed.all_reduce(counts)
    return {name: tuple(row) for name, row in zip(modules, counts.tolist())}


def gate_open_rates(model: nn.Module) -> dict[str, float | None]:
    """Block name -> share of T > 1 samples whose gate opened since the last reset.

    T = 1 samples are not decisions and never enter the share; ``None`` marks a block that saw no T > 1
    sample (only T = 1, or nothing). Under ``torch.distributed`` the counters are summed across ranks.
    """
    return {name: (opened / decided if decided > 0 else None)
            for name, (opened, decided, _) in _gate_counts(model).items()}


def gate_single_frame_samples(model: nn.Module) -> dict[str, int]:
    """Block name -> samples it saw with T = 1 since the last reset (summed across ranks)."""
    return {name: int(single) for name, (_, _, single) in _gate_counts(model).items()}


def auxiliary_loss(model: nn.Module) -> Tensor:
    """Sum of the weighted align losses computed in the last training forward (0 when there are none)."""
    losses = [m.last_align_loss for m in srtg_modules(model).values() if m.last_align_loss is not None]
    for module in srtg_modules(model).values():
        module.last_align_loss = None
    if not losses:
        return torch.zeros(())
    return torch.stack([loss.reshape(()) for loss in losses]).sum()


def ddp_ignore_gate_counters(model: nn.Module) -> None:
    """Keep DDP from broadcasting rank 0's gate counters over the others' (they are summed when read)."""
    names = [f"{name}.{buf}" for name in srtg_modules(model) for buf in _COUNTERS]
    nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, names)
