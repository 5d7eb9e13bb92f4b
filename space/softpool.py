"""Window pooling for MTNet: SoftPool3d (paper eq. 3) and a ceil-mode mean pool that takes any input size.

SoftPool reduces each window to its softmax-weighted mean, per channel:

    out = sum_{w in window} softmax_w(a) * a_w

Larger activations weigh more than in average pooling, yet every activation contributes (unlike max
pooling). The authors ship a CUDA kernel; this is pure PyTorch so it runs (and gives the same shapes)
on CPU, CUDA and the meta device, and autograd derives the backward pass.

Numerical stability: ``torch.softmax`` subtracts each window's own max before exponentiating, so inputs
of any magnitude stay finite. (Subtracting one max per tensor or per channel would not be enough:
``exp(a - max)`` underflows to 0 for a whole window far below the max and the ratio becomes 0 / 0.)

Two paths, one result (within float rounding; tests/space/test_softpool.py checks values and gradients
against the original gather implementation):

* windows that tile the input (stride = kernel, the only kind MTNet uses): the exp-weighted average-pool
  identity ``out = avgpool(e * a) / avgpool(e)`` with ``e = exp(a - m)`` and ``m`` each window's max
  (``max_pool3d``, broadcast back over its window through a reshape, no copy). The shift is per window,
  so it is as stable as the softmax; it is taken without gradient because the output does not depend on
  it. No window is ever gathered: about 2.5x faster than the gather path (forward + backward);
  On a channels-last input (MTNet's activations, space/mtnet.py) the same identity runs on the window view
  N x T' x kT x H' x kH x W' x kW x C and the window sums are additions of whole slices, so the result stays
  channels-last (``avg_pool3d`` returns a contiguous tensor and is slow on channels-last ones on CPU);
* overlapping windows: windows gathered with ``Tensor.unfold`` and a softmax over each.

In ceil mode the input is padded on the far side with ``-inf`` logits (weight exactly 0) and zero values,
so a partial window at the border is the softmax-weighted mean of its real elements only.

:class:`MeanPool3d` is average pooling over the real elements of each window. It exists because
``F.avg_pool3d`` refuses an input smaller than its kernel even in ceil mode (a 1-frame short stream
pooled by 2 in time must give 1 frame, as the long stream has ceil(1/2) = 1 frame). It keeps a channels-last
input channels-last too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SoftPool3d", "MeanPool3d", "soft_pool3d", "mean_pool3d", "pooled_size"]

Triple = tuple[int, int, int]


def _triple(value: int | tuple[int, ...], name: str) -> Triple:
    values = (value,) * 3 if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != 3 or any(not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name}={value!r} must be a positive int or a triple of positive ints")
    return values  # type: ignore[return-value]


def pooled_size(size: int, kernel: int, stride: int, ceil_mode: bool) -> int:
    """Output length along one axis, by the same rule as ``torch.nn.AvgPool3d`` (padding 0).

    In ceil mode a last partial window is kept only if it starts inside the input.
    """
    span = size - kernel + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1  # floor division rounds towards -inf, as PyTorch's div_rtn
    if ceil_mode and (out - 1) * stride >= size:
        out -= 1
    if out < 1:
        raise ValueError(f"input size {size} is too small for kernel {kernel} and stride {stride}")
    return out


def _far_side_padding(x: Tensor, kernel: Triple, steps: Triple, ceil_mode: bool) -> tuple[int, ...]:
    """``F.pad`` argument that makes the last (partial) window of every axis exist; zeros when windows tile."""
    pads = []
    for size, k, s in zip(x.shape[-3:], kernel, steps):
        out = pooled_size(int(size), k, s, ceil_mode)
        pads.append(max((out - 1) * s + k - int(size), 0))
    return (0, pads[2], 0, pads[1], 0, pads[0])  # F.pad order: W, H, T


def soft_pool3d(
    x: Tensor,
    kernel_size: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] | None = None,
    ceil_mode: bool = False,
) -> Tensor:
    """SoftPool an ``N x C x T x H x W`` tensor; ``stride`` defaults to ``kernel_size``."""
    kernel = _triple(kernel_size, "kernel_size")
    steps = kernel if stride is None else _triple(stride, "stride")
    pad_arg = _far_side_padding(x, kernel, steps, ceil_mode)
    logits, values = x, x
    if any(pad_arg):  # depends on the shape only, never on the data
        logits = F.pad(x, pad_arg, value=-math.inf)
        values = F.pad(x, pad_arg, value=0.0)
    if steps == kernel:
        return _soft_pool_tiled(logits, values, kernel, _layout(x))
    return _soft_pool_gathered(logits, values, kernel, steps)


def _soft_pool_tiled(logits: Tensor, values: Tensor, kernel: Triple, layout: torch.memory_format) -> Tensor:
    """Windows tile the (padded) input: ``mean(e * values) / mean(e)`` per window, ``e = exp(logits - window max)``.

    Everything happens in ``layout``, the input's own memory layout, so every window view is free.
    """
    t, h, w = (size // k * k for size, k in zip(logits.shape[-3:], kernel))
    logits, values = logits[..., :t, :h, :w], values[..., :t, :h, :w]  # floor mode drops a partial last window
    logits, values = logits.contiguous(memory_format=layout), values.contiguous(memory_format=layout)
    with torch.no_grad():  # the output does not depend on the shift: no gradient through it
        shift = F.max_pool3d(logits, kernel).contiguous(memory_format=layout)
    weights = torch.exp(_windows(logits, kernel, layout) - _windows(shift, (1, 1, 1), layout))
    if layout == torch.channels_last_3d:  # sum each window's offsets in place of average pooling (see _tiled_mean)
        weighted = _sum_offsets(weights * _windows(values, kernel, layout))
        return (weighted / _sum_offsets(weights)).permute(0, 4, 1, 2, 3)
    weights = weights.view(logits.shape)
    return F.avg_pool3d(weights * values, kernel) / F.avg_pool3d(weights, kernel)


def _tiled_mean(x: Tensor, kernel: Triple, layout: torch.memory_format) -> Tensor:
    """Average pooling with stride = kernel over windows that tile ``x``, the result in ``layout``.

    ``F.avg_pool3d`` returns a contiguous tensor from a channels-last one and is slow on it on CPU: there, the
    offsets of every window are added up as whole slices (:func:`_sum_offsets`), channels innermost.
    """
    if layout == torch.channels_last_3d:
        return (_sum_offsets(_windows(x, kernel, layout)) / math.prod(kernel)).permute(0, 4, 1, 2, 3)
    return F.avg_pool3d(x, kernel)


def _sum_offsets(windows: Tensor) -> Tensor:
    """Sum a channels-last window view (N x T' x kT x H' x kH x W' x kW x C) over its offset axes 2, 4 and 6.

    As kT + kH + kW - 3 additions of whole slices, not a reduction. One thread, 32x16x8x16x16 pooled (1, 2, 2),
    forward + backward: 5.0 ms, against 13.4 ms for ``avg_pool3d`` on the contiguous tensor; ``Tensor.sum``
    over the three strided axes is slower still (docs/throughput.md). Plain autograd ops, so tracers (the
    fvcore MAC counter, ONNX export) see nothing unusual.
    """
    for dim in (6, 4, 2):
        parts = windows.unbind(dim)
        windows = parts[0]
        for part in parts[1:]:
            windows = windows + part
    return windows


def _layout(x: Tensor) -> torch.memory_format:
    """channels-last-3d if ``x`` is stored that way (MTNet's activations, space/mtnet.py), else contiguous."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def _windows(x: Tensor, kernel: Triple, layout: torch.memory_format) -> Tensor:
    """A view that splits T, H, W into (window, offset) axes, in the order ``x`` is stored in ``layout`` (no copy).

    Contiguous: N x C x T' x kT x H' x kH x W' x kW; channels-last: N x T' x kT x H' x kH x W' x kW x C. A
    pooled tensor viewed with a kernel of ones broadcasts over the offsets of the full one.
    """
    n, c, t, h, w = x.shape
    kt, kh, kw = kernel
    if layout == torch.channels_last_3d:
        return x.permute(0, 2, 3, 4, 1).view(n, t // kt, kt, h // kh, kh, w // kw, kw, c)
    return x.view(n, c, t // kt, kt, h // kh, kh, w // kw, kw)


def _soft_pool_gathered(logits: Tensor, values: Tensor, kernel: Triple, steps: Triple) -> Tensor:
    """Overlapping windows: gather them with ``unfold`` and take a softmax over each."""
    for dim, (k, s) in enumerate(zip(kernel, steps), start=2):
        logits = logits.unfold(dim, k, s)
        values = values.unfold(dim, k, s)
    # N x C x T' x H' x W' x kT x kH x kW -> ... x (kT*kH*kW): one row per window and channel.
    logits = logits.flatten(start_dim=-3)
    values = values.flatten(start_dim=-3)
    weights = torch.softmax(logits, dim=-1)
    return (weights * values).sum(dim=-1)


def mean_pool3d(
    x: Tensor,
    kernel_size: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] | None = None,
    ceil_mode: bool = False,
) -> Tensor:
    """Average of the real elements of each window (padding never counts); ``stride`` defaults to the kernel."""
    kernel = _triple(kernel_size, "kernel_size")
    steps = kernel if stride is None else _triple(stride, "stride")
    pad_arg = _far_side_padding(x, kernel, steps, ceil_mode)
    layout = _layout(x)
    if steps != kernel:  # overlapping windows (MTNet has none)
        pool = lambda a: F.avg_pool3d(a, kernel, steps)  # noqa: E731
    else:
        pool = lambda a: _tiled_mean(a.contiguous(memory_format=layout), kernel, layout)  # noqa: E731
    if not any(pad_arg):  # windows tile the input: plain average pooling
        return pool(x)
    sums = pool(F.pad(x, pad_arg))
    valid = F.avg_pool3d(F.pad(x.new_ones((1, 1, *x.shape[-3:])), pad_arg), kernel, steps)
    return (sums / valid).contiguous(memory_format=layout)


class _WindowPool3d(nn.Module):
    """Shared arguments of the two pooling modules (no parameters)."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] | None = None,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = _triple(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _triple(stride, "stride")
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, ceil_mode={self.ceil_mode}"


class SoftPool3d(_WindowPool3d):
    """Module form of :func:`soft_pool3d`."""

    def forward(self, x: Tensor) -> Tensor:
        return soft_pool3d(x, self.kernel_size, self.stride, self.ceil_mode)


class MeanPool3d(_WindowPool3d):
    """Module form of :func:`mean_pool3d`."""

    def forward(self, x: Tensor) -> Tensor:
        return mean_pool3d(x, self.kernel_size, self.stride, self.ceil_mode)
