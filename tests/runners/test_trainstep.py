"""The training step and LR warm-up shared by the proxy and retrain loops (runners/trainstep.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from runners.trainstep import OptimisationStep, TrainingDiverged, linear_warmup
from space import ResNet3DSpec, SRTGSpec, build_model
from space.srtg import auxiliary_loss


def _model(align_loss: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    srtg = SRTGSpec(placement="final", gate="cyclic", align_loss=align_loss) if align_loss else None
    spec = ResNet3DSpec(conv="r3d", depth=18, srtg=srtg) if srtg else ResNet3DSpec(conv="r3d", depth=18)
    return build_model(spec, num_classes=3, width_mult=0.125)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 4, 16, 16, generator=generator), torch.tensor([0, 1, 2, 1])


def _parameters(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_a_step_returns_the_loss_before_the_update_and_moves_the_weights() -> None:
    model, (x, y) = _model(), _batch()
    before = _parameters(model)
    with torch.no_grad():
        expected_logits = model(x)
    step = OptimisationStep(model, torch.optim.SGD(model.parameters(), lr=0.1), amp=False)
    result = step(x, y, epoch=0, step=0)
    assert result.loss == pytest.approx(float(F.cross_entropy(expected_logits, y)), rel=1e-5)
    assert result.correct == int((expected_logits.argmax(1) == y).sum())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_srtg_align_loss_is_part_of_the_loss() -> None:
    model, (x, y) = _model(align_loss=1.0), _batch()
    model.train()
    with torch.no_grad():
        logits = model(x)
        align = float(auxiliary_loss(model))
    assert align > 0
    fresh = _model(align_loss=1.0)
    step = OptimisationStep(fresh, torch.optim.SGD(fresh.parameters(), lr=0.0), amp=False)
    result = step(x, y, epoch=0, step=0)
    assert result.loss == pytest.approx(float(F.cross_entropy(logits, y)) + align, rel=1e-4)
    assert auxiliary_loss(fresh).item() == 0.0  # consumed by the step, not carried into the next one


def test_a_non_finite_loss_raises_before_any_update() -> None:
    model, (x, y) = _model(), _batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = OptimisationStep(model, optimizer, amp=False)
    before = _parameters(model)
    x[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"training loss became nan at epoch 3, step 8"):
        step(x, y, epoch=2, step=7)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not optimizer.state  # no momentum buffer was written either


def test_clip_norm_bounds_the_update_and_none_does_not_clip() -> None:
    x, y = _batch()
    moved = {}
    for clip in (None, 1e-3):
        model = _model()
        before = _parameters(model)
        step = OptimisationStep(model, torch.optim.SGD(model.parameters(), lr=1.0), amp=False, clip_norm=clip)
        step(x, y, epoch=0, step=0)
        moved[clip] = math.sqrt(sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(model.parameters(), before)))
    assert moved[1e-3] == pytest.approx(1e-3, rel=1e-3)  # plain SGD at lr 1: the step is the clipped gradient
    assert moved[None] > 10 * moved[1e-3]


def test_forward_goes_through_the_wrapper_and_steps_the_model() -> None:
    model, (x, y) = _model(), _batch()
    calls = []

    class Wrapper(nn.Module):  # stands in for DDP: a module around the model
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            calls.append(batch.shape)
            return self.inner(batch)

    step = OptimisationStep(model, torch.optim.SGD(model.parameters(), lr=0.1), amp=False, forward=Wrapper(model))
    step(x, y, epoch=0, step=0)
    assert calls == [x.shape]


def test_set_lr_sets_every_parameter_group() -> None:
    model = _model()
    groups = [{"params": list(model.parameters())[:2]}, {"params": list(model.parameters())[2:]}]
    step = OptimisationStep(model, torch.optim.SGD(groups, lr=0.1), amp=False)
    step.set_lr(0.025)
    assert [g["lr"] for g in step.optimizer.param_groups] == [0.025, 0.025]


def test_linear_warmup_rises_from_the_start_factor_to_the_base_lr_and_stays() -> None:
    assert linear_warmup(0.4, 0.0) == 0.0
    assert linear_warmup(0.4, 0.25) == pytest.approx(0.1)
    assert linear_warmup(0.4, 0.0, start_factor=0.1) == pytest.approx(0.04)
    assert linear_warmup(0.4, 0.5, start_factor=0.1) == pytest.approx(0.22)
    assert linear_warmup(0.4, 1.0, start_factor=0.1) == 0.4
    assert linear_warmup(0.4, 7.0) == 0.4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_amp_step_on_cuda_is_scaled_and_finite() -> None:
    model, (x, y) = _model().cuda(), _batch()
    step = OptimisationStep(model, torch.optim.SGD(model.parameters(), lr=0.1), amp=True, clip_norm=1.0)
    result = step(x.cuda(), y.cuda(), epoch=0, step=0)
    assert math.isfinite(result.loss) and step.scaler.is_enabled() and step.scaler.get_scale() > 1
