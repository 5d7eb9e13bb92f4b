"""The SRTG block: cycle-consistency properties, gate modes, counters, align loss, tracing."""

import pytest
import torch

from space import ResNet3DSpec, SRTGSpec, build_model
from space.spec import SRTG_GATE_NORMS
from space.srtg import (
    SRTG,
    auxiliary_loss,
    cycle_back_loss,
    consistency_share,
    cycle_consistent,
    gate_open_rates,
    gate_single_frame_samples,
    normalise_sequence,
    reset_gate_counters,
    set_gate_epoch,
    soft_nearest_neighbour_weights,
)

T = 16


def random_walk(channels: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, T, channels, generator=generator).cumsum(dim=1)


def noisy(seq: torch.Tensor, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return seq + 0.05 * seq.std() * torch.randn(seq.shape, generator=generator)


def consistent(a, b, **kw):
    kw.setdefault("tau", 0.05)
    return cycle_consistent(a, b, **kw)


@pytest.fixture(params=[64, 512], ids=["C64", "C512"])
def walk(request):
    return random_walk(request.param)


@pytest.fixture(params=SRTG_GATE_NORMS)
def gate_norm(request):
    return request.param


def test_a_sequence_is_consistent_with_itself_and_its_noisy_copy(walk, gate_norm):
    assert consistent(walk, walk, gate_norm=gate_norm).item()
    assert consistent(walk, noisy(walk), gate_norm=gate_norm).item()
    assert consistent(noisy(walk), walk, gate_norm=gate_norm).item()


def test_not_consistent_with_a_shuffled_or_reversed_copy(walk, gate_norm):
    shuffled = walk[:, torch.randperm(T, generator=torch.Generator().manual_seed(3))]
    assert not consistent(walk, shuffled, gate_norm=gate_norm).item()
    assert not consistent(walk, walk.flip(1), gate_norm=gate_norm).item()


def test_a_static_clip_is_closed(gate_norm):
    frame = torch.randn(1, 1, 64)
    static = frame.expand(1, T, 64).clone()
    assert not consistent(static, static, gate_norm=gate_norm).item()
    assert not consistent(static, random_walk(64), gate_norm=gate_norm).item()


def test_soft_nearest_neighbour_is_really_soft(walk, gate_norm):
    """``none`` leaves the scale to its input (raw walks of std ~3 make any tau hard): given at unit scale."""
    if gate_norm == "none":
        walk = walk / walk.std()
    a = normalise_sequence(walk, gate_norm)
    b = normalise_sequence(noisy(walk), gate_norm)
    weights = soft_nearest_neighbour_weights(a, b, tau=0.05)
    assert weights.max(dim=-1).values.mean() < 0.99
    assert torch.allclose(weights.sum(-1), torch.ones(1, T))


@pytest.mark.parametrize("channels", [64, 512])
def test_self_and_noisy_consistency_share_is_one_for_every_norm(channels, gate_norm):
    """Over 32 seeded walks, not one fixture: the l2 regression (unit-norm frames gave a share of 0.0)."""
    walks = random_walk(channels, seed=channels, batch=32)
    noisy_walks = walks + 0.05 * walks.std(dim=(1, 2), keepdim=True) * torch.randn(
        walks.shape, generator=torch.Generator().manual_seed(1))
    assert cycle_consistent(walks, walks, tau=0.05, gate_norm=gate_norm).float().mean() == 1.0
    assert cycle_consistent(walks, noisy_walks, tau=0.05, gate_norm=gate_norm).float().mean() == 1.0


def test_l2_scales_each_frame_to_unit_rms_so_tau_means_what_it_means_for_std():
    walk = random_walk(512)
    frames = normalise_sequence(walk, "l2")
    assert torch.allclose(frames.pow(2).mean(dim=2), torch.ones(1, T), atol=1e-4)
    # Directions kept: cosine between l2-normalised and raw frames is 1.
    assert torch.allclose(torch.nn.functional.cosine_similarity(frames, walk, dim=2), torch.ones(1, T), atol=1e-5)
    # Same distance scale as std: the mean scaled distance between frames agrees within a factor of 2.
    def mean_distance(seq):
        d = (seq.unsqueeze(2) - seq.unsqueeze(1)).pow(2).mean(-1)
        return d.mean()
    ratio = mean_distance(frames) / mean_distance(normalise_sequence(walk, "std"))
    assert 0.5 < ratio < 2.0


def test_unnormalised_gate_fails_on_different_scales():
    """The known failure of the authors' code: raw activations vs tanh-bounded outputs."""
    walk = random_walk(64) * 50
    squashed = torch.tanh(walk / 500)  # the same sequence, on the RNN's scale
    assert consistent(walk, squashed, gate_norm="std").item()
    assert not consistent(walk, squashed, gate_norm="none").item()


def test_tolerance_relaxes_the_frame_match():
    walk = random_walk(64)
    shifted = torch.cat([walk[:, 1:], walk[:, -1:]], dim=1)  # one frame ahead, last frame repeated
    assert not consistent(walk, shifted).item()
    assert consistent(walk, walk[:, torch.randperm(T)], tolerance=T).item()


def test_batched_equals_per_sample():
    walks = random_walk(64, batch=6)
    others = torch.cat([walks[:2], noisy(walks[2:4]), walks[4:, torch.randperm(T)]])
    batched = cycle_consistent(walks, others, tau=0.05)
    single = torch.cat([cycle_consistent(walks[i : i + 1], others[i : i + 1], tau=0.05) for i in range(6)])
    assert torch.equal(batched, single)
    assert batched.tolist() == [True, True, True, True, False, False]


def swapped(seq: torch.Tensor, i: int, j: int) -> torch.Tensor:
    order = list(range(seq.shape[1]))
    order[i], order[j] = order[j], order[i]
    return seq[:, order]


def test_quorum_one_is_the_papers_every_frame_rule():
    walks = random_walk(64, batch=8)
    others = torch.cat([walks[:2], swapped(walks[2:5], 3, 9), walks[5:, torch.randperm(T)]])
    share = consistency_share(walks, others, tau=0.05)
    assert torch.equal(cycle_consistent(walks, others, tau=0.05, quorum=1.0), share == 1.0)
    for quorum in (0.25, 0.5, 0.75):
        assert torch.equal(cycle_consistent(walks, others, tau=0.05, quorum=quorum), share >= quorum - 1e-6)


def test_a_quorum_opens_a_pair_that_agrees_on_most_frames():
    walk = random_walk(64)
    two_swapped = swapped(walk, 3, 9)  # 14 of 16 frames still cycle back
    assert 0.75 <= consistency_share(walk, two_swapped, tau=0.05).item() < 1.0
    assert not consistent(walk, two_swapped, quorum=1.0).item()
    assert consistent(walk, two_swapped, quorum=0.75).item()
    assert consistent(walk, two_swapped, quorum=0.5).item()
    assert not consistent(walk, walk.flip(1), quorum=0.5).item()  # reversed: still closed at the default quorum


def test_single_frame_sequences_are_open():
    assert cycle_consistent(torch.randn(3, 1, 8), torch.randn(3, 1, 8), tau=0.05).all()


# --- the module -----------------------------------------------------------------------------


def srtg(gate="cyclic", fusion="mul", tolerance=0, channels=16, **kw):
    torch.manual_seed(0)
    return SRTG(channels, spec=SRTGSpec(placement="mid", gate=gate, fusion=fusion, tolerance=tolerance, **kw))


def clip_from_walk(channels=16, batch=1, seed=0):
    """B x C x T x H x W activations whose spatial mean is a random walk."""
    walk = random_walk(channels, seed=seed, batch=batch)  # B x T x C
    return walk.transpose(1, 2)[..., None, None].expand(batch, channels, T, 3, 3).contiguous()


def static_clip(channels=16):
    return torch.randn(1, channels, 1, 3, 3).expand(1, channels, T, 3, 3).contiguous()


@pytest.mark.parametrize("fusion", ["mul", "residual"])
def test_open_gate_fuses_and_closed_gate_returns_x_exactly(fusion):
    module = srtg(fusion=fusion, tolerance=T)
    x = torch.cat([clip_from_walk(), static_clip()])  # sample 0 opens (tolerance T), sample 1 ties: closed
    y = module(x)
    h = module.recurrence(x.mean(dim=(3, 4)).transpose(1, 2))
    expected_open = module.fuse(x[:1], h[:1])
    assert torch.equal(y[1], x[1])
    assert torch.allclose(y[:1], expected_open)
    h5 = h[:1].transpose(1, 2)[..., None, None]
    assert torch.allclose(expected_open, x[:1] * h5 if fusion == "mul" else x[:1] * (1 + h5))


def test_half_consistent_batch_reports_half():
    module = srtg(tolerance=T)
    module(torch.cat([clip_from_walk(), static_clip()]))
    assert gate_open_rates(module) == {"": 0.5}
    reset_gate_counters(module)
    assert gate_open_rates(module) == {"": None}


@pytest.mark.parametrize("gate", ["cyclic", "warmup"])
def test_an_active_gate_stays_shut_at_t1(gate):
    """Nothing to align at T = 1: the block returns x exactly (docs/srtg.md: fusing there cost 44 points)."""
    module = SRTG(16, spec=SRTGSpec(placement="mid", gate=gate, warmup=1 if gate == "warmup" else None))
    module.gate_active = True
    x = torch.randn(3, 16, 1, 3, 3)
    assert torch.equal(module(x), x)
    assert gate_single_frame_samples(module) == {"": 3}


def test_inactive_fuses_at_t1_too():
    module = srtg(gate="inactive")
    x = torch.randn(2, 16, 1, 3, 3)
    h = module.recurrence(x.mean(dim=(3, 4)).transpose(1, 2))
    assert torch.allclose(module(x), module.fuse(x, h))


def test_default_gate_opens_during_a_short_training_on_a_toy_problem():
    """The default spec (quorum, align loss) on a fixed toy problem: shut at first, open for some samples
    after 200 SGD steps of its align loss (measured: 0.0 at step 0, 0.5 at step 200)."""
    channels = 32
    torch.manual_seed(0)
    module = SRTG(channels, spec=SRTGSpec(placement="mid"))
    x = clip_from_walk(channels=channels, batch=8)

    def open_rate() -> float:
        reset_gate_counters(module)
        module.eval()
        with torch.no_grad():
            module(x)
        module.train()
        return gate_open_rates(module)[""]

    assert open_rate() == 0.0
    optimiser = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    for _ in range(200):
        optimiser.zero_grad()
        module(x)
        auxiliary_loss(module).backward()
        optimiser.step()
    assert open_rate() > 0.0


def test_inactive_always_fuses():
    module = srtg(gate="inactive")
    x = torch.cat([clip_from_walk(), static_clip()])
    y = module(x)
    h = module.recurrence(x.mean(dim=(3, 4)).transpose(1, 2))
    assert torch.allclose(y, module.fuse(x, h))
    assert gate_open_rates(module) == {"": 1.0}


@pytest.mark.parametrize("warmup, switch_epoch", [(0.4, 4), (3, 3)])
def test_warmup_switches_at_the_right_epoch(warmup, switch_epoch):
    model = build_model(
        ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="final", gate="warmup", warmup=warmup)), 4, width_mult=0.25
    )
    modules = [m for m in model.modules() if isinstance(m, SRTG)]
    for epoch in range(10):
        set_gate_epoch(model, epoch, total_epochs=10)
        assert all(m.gate_active == (epoch >= switch_epoch) for m in modules), epoch


def test_counters_are_not_in_the_state_dict():
    model = build_model(ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="mid")), 4, width_mult=0.25)
    model(torch.randn(1, 3, 8, 32, 32))
    assert not [k for k in model.state_dict() if "gate_" in k]
    assert len(gate_open_rates(model)) == 8


def test_single_frame_forwards_are_counted_apart_from_decisions():
    """A T = 1 batch then a closed T = 16 batch: the rate is 0.0 (not 0.5), the T = 1 samples counted apart."""
    module = srtg()
    module(torch.randn(2, 16, 1, 3, 3))  # T = 1: nothing to align
    assert gate_open_rates(module) == {"": None}
    assert gate_single_frame_samples(module) == {"": 2}
    module(static_clip().expand(2, -1, -1, -1, -1).contiguous())  # T = 16, ties: closed
    assert gate_open_rates(module) == {"": 0.0}
    module(torch.randn(3, 16, 1, 3, 3))  # a later T = 1 forward does not hide the decisions either
    assert gate_open_rates(module) == {"": 0.0}
    assert gate_single_frame_samples(module) == {"": 5}
    reset_gate_counters(module)
    assert gate_single_frame_samples(module) == {"": 0}


def test_a_block_that_saw_t_above_1_once_reports_its_rate_after_a_t1_forward():
    model = build_model(ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="final", gate="inactive")), 4, width_mult=0.25)
    model(torch.randn(1, 3, 16, 32, 32))  # layer3 sees T = 2
    model(torch.randn(1, 3, 4, 32, 32))  # layer3 sees T = 1
    rates = gate_open_rates(model)
    assert rates["layer3.0.srtg"] == 1.0 and rates["layer3.1.srtg"] == 1.0
    assert gate_single_frame_samples(model)["layer3.0.srtg"] == 1


def test_t1_blocks_are_marked():
    model = build_model(ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="final")), 4, width_mult=0.25)
    model(torch.randn(2, 3, 4, 32, 32))  # T: 4, 2, 1, 1 over the stages
    rates = gate_open_rates(model)
    assert rates["layer3.0.srtg"] is None and rates["layer4.1.srtg"] is None
    assert rates["layer1.0.srtg"] is not None


def _rnn_grad_and_opens(tolerance, x):
    spec = ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="mid", gate="cyclic", tolerance=tolerance))
    torch.manual_seed(0)
    model = build_model(spec, 4, width_mult=0.25)
    model(x).square().sum().backward()
    rates = gate_open_rates(model)
    blocks = {n: m for n, m in model.named_modules() if isinstance(m, SRTG)}
    return {n: (rates[n], sum(p.grad.abs().sum().item() for p in m.rnn.parameters())) for n, m in blocks.items()}


def test_rnn_gets_gradient_exactly_when_a_gate_opened():
    x = torch.randn(2, 3, 16, 32, 32, generator=torch.Generator().manual_seed(0))
    forced_open = _rnn_grad_and_opens(T, x)
    assert all(rate == 1.0 and grad > 0 for rate, grad in forced_open.values())
    shuffled = _rnn_grad_and_opens(0, x[:, :, torch.randperm(16)])
    assert any(rate == 0.0 for rate, _ in shuffled.values())
    for rate, grad in shuffled.values():
        assert (grad > 0) == (rate > 0)


def test_align_loss_is_differentiable_and_lowers():
    module = srtg(gate="cyclic", align_loss=1.0, channels=32)
    module.train()
    x = clip_from_walk(channels=32, batch=4)
    optimiser = torch.optim.Adam(module.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        optimiser.zero_grad()
        module(x)
        loss = auxiliary_loss(module)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[0] > 0
    assert losses[-1] < 0.5 * losses[0]


def test_cycle_back_loss_is_zero_ish_for_identical_sequences():
    walk = random_walk(64)
    assert cycle_back_loss(walk, walk, tau=0.05) < cycle_back_loss(walk, walk.flip(1), tau=0.05)


def test_cyclic_model_traces_and_matches_eager():
    spec = ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="final", tolerance=2))
    torch.manual_seed(0)
    model = build_model(spec, 4, width_mult=0.25).eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        traced = torch.jit.trace(model, (x,), check_trace=False)
        reset_gate_counters(model)
        eager = model(x)
        assert torch.allclose(traced(x), eager, atol=1e-5)
        other = torch.randn(2, 3, 8, 32, 32)
        assert torch.allclose(traced(other), model(other), atol=1e-5)


# --- the one-pass fusion against the previous fuse-then-where forward (issue 16) ------------------


@pytest.mark.parametrize("fusion", ["mul", "residual"])
@pytest.mark.parametrize("gate", ["cyclic", "inactive"])
@pytest.mark.parametrize("spatial", [(3, 3), (5, 7)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_one_pass_fusion_matches_fuse_then_where(fusion, gate, spatial, layout):
    from tests.space.reference_ops import srtg_forward_where

    module = srtg(gate=gate, fusion=fusion, tolerance=T, align_loss=0.1).double()  # float64: rounding is not news
    opens, closed = clip_from_walk(), static_clip()  # sample 0 opens (tolerance T), sample 1 ties: closed
    x = torch.cat([opens, closed])[..., :1, :1].expand(2, 16, T, *spatial).contiguous()
    x = (x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).double()
    x = x.contiguous(memory_format=layout)  # the row-view path (contiguous) and the broadcast one
    results = []
    for forward in (srtg_forward_where, SRTG.forward):
        module.zero_grad(set_to_none=True)
        reset_gate_counters(module)
        inputs = x.clone().requires_grad_()  # clone keeps the memory format
        y = forward(module, inputs)
        upstream = torch.randn(y.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        ((y * upstream).sum() + module.last_align_loss).backward()
        grads = [inputs.grad] + [p.grad for p in module.parameters()]
        results.append((y.detach(), grads, gate_open_rates(module)))
    (ref_y, ref_grads, ref_rates), (y, grads, rates) = results
    assert rates == ref_rates and (gate == "inactive" or rates == {"": 0.5})
    assert torch.equal(y, ref_y)  # the same multiplications; a closed sample is x * 1
    for got, expected in zip(grads, ref_grads):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
