"""SoftPool3d and MeanPool3d against naive per-window loops, gradcheck, stability and PyTorch's shape rule."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from space.softpool import MeanPool3d, SoftPool3d, mean_pool3d, pooled_size, soft_pool3d

# (input T x H x W, kernel, stride, ceil_mode): tiling, overlapping, partial windows, input smaller than kernel.
CASES = [
    ((4, 6, 6), (2, 2, 2), (2, 2, 2), False),
    ((5, 7, 6), (2, 2, 2), (2, 2, 2), True),
    ((5, 7, 9), (1, 2, 2), (1, 2, 2), True),
    ((6, 5, 7), (3, 3, 2), (2, 1, 2), False),
    ((6, 5, 7), (3, 3, 2), (2, 2, 3), True),
    ((1, 3, 2), (2, 4, 4), (2, 4, 4), True),
    ((3, 4, 5), (1, 1, 1), (1, 1, 1), False),
]




def naive_pool(x: torch.Tensor, kernel, stride, ceil_mode: bool, soft: bool) -> torch.Tensor:
    """One Python loop iteration per output element: the definition of eq. 3 (or the mean) on the real elements."""
    n, c, *sizes = x.shape
    outs = [pooled_size(size, k, s, ceil_mode) for size, k, s in zip(sizes, kernel, stride)]
    result = torch.empty(n, c, *outs, dtype=x.dtype)
    for t, h, w in itertools.product(*(range(o) for o in outs)):
        t0, h0, w0 = t * stride[0], h * stride[1], w * stride[2]
        window = x[:, :, t0 : t0 + kernel[0], h0 : h0 + kernel[1], w0 : w0 + kernel[2]].reshape(n, c, -1)
        if soft:
            exp = torch.exp(window - window.max(dim=-1, keepdim=True).values)
            result[:, :, t, h, w] = (exp * window).sum(-1) / exp.sum(-1)
        else:
            result[:, :, t, h, w] = window.mean(-1)
    return result


@pytest.mark.parametrize("size,kernel,stride,ceil_mode", CASES)
def test_softpool_equals_naive_window_loop(size, kernel, stride, ceil_mode):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size, dtype=torch.float64) * 3
    expected = naive_pool(x, kernel, stride, ceil_mode, soft=True)
    got = SoftPool3d(kernel, stride, ceil_mode=ceil_mode)(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("size,kernel,stride,ceil_mode", CASES)
def test_meanpool_equals_naive_window_loop(size, kernel, stride, ceil_mode):
    torch.manual_seed(1)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    expected = naive_pool(x, kernel, stride, ceil_mode, soft=False)
    torch.testing.assert_close(MeanPool3d(kernel, stride, ceil_mode=ceil_mode)(x), expected)


def test_softpool_is_per_channel_and_weights_large_activations():
    x = torch.zeros(1, 2, 1, 1, 2)
    x[0, 0, 0, 0] = torch.tensor([0.0, 2.0])  # channel 0: softmax weights favour 2
    x[0, 1, 0, 0] = torch.tensor([2.0, 0.0])  # channel 1 is independent of channel 0
    out = soft_pool3d(x, (1, 1, 2))
    expected = 2.0 * torch.exp(torch.tensor(2.0)) / (1 + torch.exp(torch.tensor(2.0)))
    torch.testing.assert_close(out.flatten(), torch.stack([expected, expected]))


GRADCHECK_CASES = [
    ((3, 3, 2), (2, 2, 2), (2, 2, 2), True),  # partial windows
    ((3, 4, 3), (2, 3, 2), (1, 2, 2), True),  # overlapping windows
    ((1, 3, 2), (2, 4, 4), (2, 4, 4), True),  # input smaller than the kernel
]


@pytest.mark.parametrize("size,kernel,stride,ceil_mode", GRADCHECK_CASES)
def test_softpool_and_meanpool_pass_gradcheck(size, kernel, stride, ceil_mode):
    torch.manual_seed(2)
    x = torch.randn(1, 2, *size, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: soft_pool3d(t, kernel, stride, ceil_mode), (x,))
    assert torch.autograd.gradcheck(lambda t: mean_pool3d(t, kernel, stride, ceil_mode), (x,))


def test_softpool_stays_finite_at_magnitude_1e3():
    torch.manual_seed(3)
    # Windows far below the tensor's max would underflow to 0 / 0 with a per-tensor max subtraction.
    x = (torch.randn(2, 4, 5, 7, 6) * 1e3).requires_grad_()
    out = soft_pool3d(x, 2, ceil_mode=True)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    # A convex combination of the window: between the window's min and max (here: close to its max).
    max_pooled = F.max_pool3d(x.detach(), 2, ceil_mode=True)
    assert (out <= max_pooled + 1e-3).all()
    reference = naive_pool(x.detach().double(), (2, 2, 2), (2, 2, 2), True, soft=True)
    torch.testing.assert_close(out.detach().double(), reference, rtol=1e-5, atol=1e-3)


def test_output_size_follows_pytorch_pooling_rule():
    """Same sizes as max_pool3d (which, unlike avg_pool3d, accepts an input smaller than the kernel in ceil mode)."""
    for n, k, s, ceil_mode in itertools.product(range(1, 10), range(1, 5), range(1, 5), (False, True)):
        try:
            expected = F.max_pool3d(torch.zeros(1, 1, n, 1, 1), (k, 1, 1), (s, 1, 1), ceil_mode=ceil_mode).shape[2]
        except RuntimeError:
            with pytest.raises(ValueError):
                pooled_size(n, k, s, ceil_mode)
            continue
        assert pooled_size(n, k, s, ceil_mode) == expected, (n, k, s, ceil_mode)


def test_ceil_mode_halving_gives_ceil_of_half():
    x = torch.randn(1, 1, 9, 97, 75)
    assert soft_pool3d(x, 2, ceil_mode=True).shape[2:] == (5, 49, 38)
    assert mean_pool3d(x, 4, ceil_mode=True).shape[2:] == (3, 25, 19)
    assert soft_pool3d(torch.randn(1, 1, 1, 1, 1), 2, ceil_mode=True).shape[2:] == (1, 1, 1)


def test_runs_on_meta_device():
    x = torch.empty(1, 8, 16, 112, 112, device="meta")
    assert SoftPool3d((1, 2, 2), ceil_mode=True)(x).shape == (1, 8, 16, 56, 56)


@pytest.mark.parametrize("bad", [0, (2, 2), (2, 0, 2), 1.5])
def test_bad_kernel_raises(bad):
    with pytest.raises(ValueError):
        SoftPool3d(bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_result_on_cpu_and_cuda():
    torch.manual_seed(4)
    x = torch.randn(2, 3, 5, 7, 6) * 10
    for pool in (SoftPool3d(2, ceil_mode=True), MeanPool3d((1, 2, 2), ceil_mode=True)):
        cpu = pool(x)
        cuda = pool(x.cuda()).cpu()
        assert cpu.shape == cuda.shape
        torch.testing.assert_close(cpu, cuda, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# The tiled fast path against the previous (gather) implementation, values and gradients
# --------------------------------------------------------------------------------------------

# (N x C x T x H x W, kernel, ceil_mode): MTNet's pools at the proxy shape, odd sizes, input smaller than the
# kernel, a single frame, kernel 1 in one axis.
TILED_CASES = [
    ((4, 16, 8, 16, 16), (1, 2, 2), True),
    ((4, 14, 8, 8, 8), (2, 2, 2), True),
    ((2, 28, 4, 4, 4), (4, 4, 4), True),
    ((3, 5, 7, 9, 11), (2, 2, 2), True),
    ((3, 5, 7, 9, 11), (2, 2, 2), False),
    ((2, 3, 5, 13, 6), (3, 4, 2), True),
    ((2, 3, 1, 1, 1), (2, 2, 2), True),
    ((2, 3, 1, 3, 2), (4, 4, 4), True),
    ((1, 2, 6, 6, 6), (1, 1, 1), False),
]


def _values_and_grad(fn, x: torch.Tensor, upstream_seed: int):
    x = x.detach().requires_grad_()
    out = fn(x)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(upstream_seed), dtype=out.dtype)
    (out * upstream).sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("shape,kernel,ceil_mode", TILED_CASES)
@pytest.mark.parametrize("dtype,scale", [(torch.float64, 3.0), (torch.float32, 3.0), (torch.float32, 300.0)])
def test_tiled_softpool_matches_gather_reference(shape, kernel, ceil_mode, dtype, scale):
    from tests.space.reference_ops import soft_pool3d_gather

    x = torch.randn(shape, generator=torch.Generator().manual_seed(5), dtype=dtype) * scale
    expected, expected_grad = _values_and_grad(lambda t: soft_pool3d_gather(t, kernel, ceil_mode=ceil_mode), x, 6)
    got, got_grad = _values_and_grad(lambda t: soft_pool3d(t, kernel, ceil_mode=ceil_mode), x, 6)
    tolerance = {} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5 * scale}
    torch.testing.assert_close(got, expected, **tolerance)
    torch.testing.assert_close(got_grad, expected_grad, **tolerance)


def test_tiled_softpool_takes_non_contiguous_and_channels_last_inputs():
    """MTNet's stem splits channels into a view; channels-last models pass channels-last tensors."""
    from tests.space.reference_ops import soft_pool3d_gather

    x = torch.randn(2, 12, 5, 6, 7, generator=torch.Generator().manual_seed(7))
    for view in (x[:, 3:], x.contiguous(memory_format=torch.channels_last_3d)):
        expected, expected_grad = _values_and_grad(lambda t: soft_pool3d_gather(t, 2, ceil_mode=True), view, 8)
        got, got_grad = _values_and_grad(lambda t: soft_pool3d(t, 2, ceil_mode=True), view, 8)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got_grad, expected_grad, rtol=1e-5, atol=1e-5)
