"""Zero-cost scores: hand-computed values on small fixed models, and no dependence on the batch order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from runners.zerocost import ZERO_COST_SCORES, grad_norm, naswot, synflow, temporal_sensitivity
from space import build_model, catalog_spec


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fixed(module: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for p in module.parameters():
        nn.init.normal_(p)
    return module


def test_synflow_of_a_two_layer_bias_free_net_is_log_of_twice_its_positive_output():
    # With |weights| and an all-ones input every ReLU passes; R = 1^T |W2| (|W1| 1) is bilinear in the two
    # layers, so each layer's sum of theta * dR/dtheta is R (Euler) and synflow = 2R.
    conv = nn.Conv3d(3, 2, kernel_size=1, bias=False)
    linear = nn.Linear(2 * 2 * 3 * 3, 4, bias=False)
    model = _fixed(nn.Sequential(conv, nn.ReLU(), nn.Flatten(), linear))
    before = [p.detach().clone() for p in model.parameters()]
    w1 = conv.weight.detach().abs().double().numpy().reshape(2, 3)
    w2 = linear.weight.detach().abs().double().numpy().reshape(4, 2, 2 * 3 * 3)
    per_channel = w1.sum(axis=1)  # every position of channel c holds sum_i |w1[c, i]|
    r = float((w2 * per_channel[None, :, None]).sum())

    score = synflow(model, torch.randn(5, 3, 2, 3, 3))

    assert score == pytest.approx(math.log(2 * r), rel=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the caller's model is untouched


def test_synflow_is_data_free_on_a_real_proxy_model():
    torch.manual_seed(0)
    model = build_model(catalog_spec("r3d-18"), num_classes=6, width_mult=0.25)
    first = synflow(model, torch.randn(4, 3, 8, 32, 32))
    assert math.isfinite(first)
    assert synflow(model, torch.randn(2, 3, 8, 32, 32)) == first


class _TwoReLUCalls(nn.Module):
    """One ReLU module called twice (as MTNet's blocks do): both calls must count."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 3, bias=False)
        self.second = nn.Linear(3, 3, bias=False)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.first(x.flatten(1)))
        return self.fc(self.relu(self.second(h)))


def test_naswot_is_the_log_determinant_of_the_hand_computed_agreement_kernel():
    model = _fixed(_TwoReLUCalls())
    x = torch.randn(6, 1, 1, 2, 2)
    w1, w2 = model.first.weight.detach().numpy(), model.second.weight.detach().numpy()
    h1 = x.flatten(1).numpy() @ w1.T
    h2 = np.maximum(h1, 0) @ w2.T
    kernel = np.zeros((6, 6))
    for pre in (h1, h2):
        codes = pre > 0
        kernel += (codes[:, None, :] == codes[None, :, :]).sum(-1)  # units on which clips i and j agree
    expected = np.linalg.slogdet(kernel)[1]

    assert naswot(model, x) == pytest.approx(expected, rel=1e-10)


def test_grad_norm_of_a_linear_classifier_is_the_norm_of_the_hand_computed_gradient():
    model = _fixed(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
    x = torch.randn(5, 1, 1, 2, 2)
    y = torch.tensor([0, 2, 1, 2, 0])
    weight, bias = (t.detach().numpy().astype(np.float64) for t in (model[1].weight, model[1].bias))
    features = x.flatten(1).numpy().astype(np.float64)
    logits = features @ weight.T + bias
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    gradient = (softmax - np.eye(3)[y.numpy()]).T @ features / len(y)  # d mean-CE / dW; the bias is not scored

    assert grad_norm(model, x, y) == pytest.approx(np.linalg.norm(gradient), rel=1e-5)


class _FirstFrame(nn.Module):
    """Features = per-channel mean of the first frame: as order-sensitive as a model can be."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x[:, :, 0].mean(dim=(2, 3)))


def test_temporal_sensitivity_matches_the_formula_and_is_zero_for_an_order_blind_model():
    x = torch.randn(5, 3, 4, 2, 2, dtype=torch.float64)
    first, last = x[:, :, 0].mean((2, 3)).numpy(), x[:, :, -1].mean((2, 3)).numpy()
    order = ((first - last) ** 2).sum(1).mean()
    spread = ((first[:, None, :] - first[None, :, :]) ** 2).sum(-1).mean()

    assert temporal_sensitivity(_FirstFrame().double(), x) == pytest.approx(order / spread, rel=1e-10)
    blind = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(3, 2)).double()
    assert temporal_sensitivity(blind, x) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["r3d-18", "mtnet-32"])
def test_no_score_depends_on_the_order_of_the_clips_in_the_batch(name):
    torch.manual_seed(0)
    model = build_model(catalog_spec(name), num_classes=6, width_mult=0.25)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 8, 32, 32, generator=generator)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    for score_name, score in ZERO_COST_SCORES.items():
        straight, shuffled = score(model, x, y), score(model, x[order], y[order])
        assert math.isfinite(straight), score_name
        assert shuffled == pytest.approx(straight, rel=1e-4, abs=1e-9), score_name
