"""Training in channels-last-3d gives the contiguous layout's loss and gradients (within float rounding)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from runners.layout import to_training_layout, training_memory_format
from space import CATALOG, build_model


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _loss_and_grads(model, x, y):
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), {name: p.grad.detach().contiguous() for name, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["r3d-18", "r2plus1d-18", "srtg-r3d-18-final"])
def test_channels_last_training_step_matches_contiguous(name):
    spec, cpu = CATALOG[name], torch.device("cpu")
    assert training_memory_format(spec, cpu) == torch.channels_last_3d
    torch.manual_seed(0)
    plain = build_model(spec, num_classes=5, width_mult=0.125).train()
    fast = build_model(spec, num_classes=5, width_mult=0.125).train()
    fast.load_state_dict(plain.state_dict())
    fast = to_training_layout(fast, spec, cpu)
    assert fast.stem[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    x = torch.randn(4, 3, 4, 17, 15, generator=torch.Generator().manual_seed(1))  # odd sizes
    y = torch.tensor([0, 1, 2, 3])
    plain_loss, plain_grads = _loss_and_grads(plain, x, y)
    fast_loss, fast_grads = _loss_and_grads(fast, x, y)
    torch.testing.assert_close(fast_loss, plain_loss, rtol=1e-5, atol=1e-6)
    # Per tensor, relative to its norm: element-wise tolerances fail on entries where BatchNorm's backward
    # cancels (both layouts are ~5e-5 from a float64 run there, in different directions).
    for key, grad in plain_grads.items():
        error = (fast_grads[key] - grad).norm() / (grad.norm() + 1e-12)
        assert error < 1e-3, f"{key}: gradient differs by {error:.2e} of its norm"


def test_mtnet_and_cuda_keep_the_contiguous_layout():
    assert training_memory_format(CATALOG["mtnet-32"], torch.device("cpu")) == torch.contiguous_format
    assert training_memory_format(CATALOG["r3d-18"], torch.device("cuda")) == torch.contiguous_format
