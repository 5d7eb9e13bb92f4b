"""GMACs by fvcore and by the meta-device counter (SPEC 3): exact RNN MACs, agreement on the whole catalog."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from runners.costs import (
    CostMismatchError,
    _build,
    count_gmacs,
    count_gmacs_both,
    count_macs_fvcore,
    count_macs_meta,
    count_params,
    fvcore_analysis,
    model_costs,
    parse_shape,
)
from runners.latency import torch_threads
from space import CATALOG, MTNetSpec, ResNet3DSpec, SRTGSpec, build_model
from space.errors import UserInputError

SMALL = (8, 64, 64)


def _expected_rnn_macs(gates: int, input_size: int, hidden: int, layers: int, frames: int, batch: int) -> int:
    per_step = sum(gates * hidden * ((input_size if layer == 0 else hidden) + hidden) for layer in range(layers))
    return per_step * frames * batch


@pytest.mark.parametrize("cls, gates", [(nn.LSTM, 4), (nn.GRU, 3)])
@pytest.mark.parametrize(
    "input_size, hidden, layers, frames, batch, batch_first",
    [(16, 32, 2, 10, 3, True), (64, 64, 1, 1, 1, True), (7, 5, 3, 4, 2, False), (512, 128, 2, 16, 2, True)],
)
def test_rnn_macs_exact_in_both_counters(cls, gates, input_size, hidden, layers, frames, batch, batch_first):
    expected = _expected_rnn_macs(gates, input_size, hidden, layers, frames, batch)
    x = torch.randn(batch, frames, input_size) if batch_first else torch.randn(frames, batch, input_size)
    rnn = cls(input_size, hidden, num_layers=layers, batch_first=batch_first)
    assert count_macs_fvcore(rnn, x) == expected
    with torch.device("meta"):
        meta_rnn = cls(input_size, hidden, num_layers=layers, batch_first=batch_first)
    assert count_macs_meta(meta_rnn, x.to("meta")) == expected


def test_rnn_macs_bidirectional_counts_both_directions():
    rnn = nn.LSTM(8, 6, num_layers=2, batch_first=True, bidirectional=True)
    x = torch.randn(2, 5, 8)
    expected = 2 * (4 * 6 * (8 + 6) + 4 * 6 * (12 + 6)) * 5 * 2  # layer 2 sees both directions: I = 12
    assert count_macs_fvcore(rnn, x) == expected
    assert count_macs_meta(rnn.to("meta"), x.to("meta")) == expected


def test_uncounted_ops_are_zero_and_counted_ops_follow_the_convention():
    class Toy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv3d(3, 8, 3, padding=1, bias=True)
            self.bn = nn.BatchNorm3d(8)
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            y = torch.relu(self.bn(self.conv(x)))
            s = y.mean(dim=(3, 4)).transpose(1, 2)  # B x T x C
            attn = torch.softmax(torch.bmm(s, s.transpose(1, 2)), dim=-1)
            return self.fc(torch.bmm(attn, s).mean(1))

    x = torch.randn(2, 3, 4, 6, 6)
    conv = 2 * 8 * 4 * 6 * 6 * 3 * 27
    bmm = 2 * (4 * 8 * 4) * 2  # two B x 4 x 8 x 4 products
    linear = 2 * 8 * 5
    model = Toy()
    analysis = fvcore_analysis(model.eval(), x)
    analysis.total()
    assert analysis.unsupported_ops() == {}
    assert count_macs_fvcore(model, x) == conv + bmm + linear
    assert count_macs_meta(model.to("meta"), x.to("meta")) == conv + bmm + linear


def test_an_unclassified_op_is_an_error_not_a_silent_zero():
    class Cumsum(nn.Module):
        def forward(self, x):
            return x.cumsum(0)

    with pytest.raises(CostMismatchError, match="aten::cumsum"):
        count_macs_fvcore(Cumsum(), torch.randn(3))


@pytest.mark.parametrize("name", list(CATALOG))
@pytest.mark.slow
def test_catalog_counters_agree_and_nothing_unsupported(name):
    spec = CATALOG[name]
    model = _build(spec, 400, "cpu").eval()  # zero weights: the counts depend on shapes only
    x = torch.randn(1, 3, *SMALL)
    with torch.no_grad(), torch_threads(1):  # one thread: counting needs shapes, not speed-ups
        analysis = fvcore_analysis(model, x)
        fvcore_macs = analysis.total()
        assert analysis.unsupported_ops() == {}
    meta_macs = count_macs_meta(_build(spec, 400, "meta"), x.to("meta"))
    assert fvcore_macs > 0
    assert abs(fvcore_macs - meta_macs) <= 1e-3 * fvcore_macs, (fvcore_macs, meta_macs)


@pytest.mark.parametrize("name", ["r3d-18", "srtg-r3d-18-final", "mtnet-32"])
@pytest.mark.slow
def test_full_size_counters_agree(name):
    pair = count_gmacs_both(CATALOG[name], (16, 224, 224))
    assert pair.relative_difference <= 1e-3
    assert pair.meta > 10


@pytest.mark.parametrize(
    "spec",
    [
        ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="mid", recurrent="gru", reduction=4, fusion="residual")),
        ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="res", gate_norm="l2", gate="warmup", warmup=0.5)),
        ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="start", gate="inactive", gate_norm="none")),
        MTNetSpec(depth=32, recurrent="lstm", ratio=0.5, substreams=2),
        MTNetSpec(depth=32, recurrent="none"),
    ],
    ids=["gru-rho4-residual", "l2-warmup", "inactive-none", "mtnet-lstm-r0.5-g2", "mtnet-norecurrent"],
)
@pytest.mark.slow
def test_search_space_options_outside_the_catalog_agree(spec):
    pair = count_gmacs_both(spec, (4, 32, 32))
    assert pair.relative_difference <= 1e-3


def test_known_reference_value_and_srtg_rnn_share():
    # torchvision publishes r3d_18 at 40.70 "GFLOPS" (MACs) for 1x3x16x112x112.
    assert count_gmacs(CATALOG["r3d-18"], (16, 112, 112)) == pytest.approx(40.70, abs=0.01)
    srtg = CATALOG["srtg-r3d-18-final"]
    base = dataclasses.replace(srtg, srtg=dataclasses.replace(srtg.srtg, placement="none"))
    rnn_macs = 0
    for stage, (channels, frames) in enumerate(((64, 16), (128, 8), (256, 4), (512, 2))):
        rnn_macs += 2 * _expected_rnn_macs(4, channels, channels, 2, frames, 1)  # two blocks per stage
    gate_macs = count_gmacs(srtg, (16, 112, 112)) * 1e9 - count_gmacs(base, (16, 112, 112)) * 1e9
    assert gate_macs >= rnn_macs  # RNNs plus the gate's matrix products
    assert gate_macs - rnn_macs < 0.05 * rnn_macs


def test_params_total_and_recurrent():
    costs = model_costs(CATALOG["srtg-r3d-18-final"], shape=(4, 32, 32))
    model = build_model(CATALOG["srtg-r3d-18-final"])
    lstm_params = sum(p.numel() for m in model.modules() if isinstance(m, nn.LSTM) for p in m.parameters())
    assert costs.recurrent_params == lstm_params > 0
    assert costs.params == sum(p.numel() for p in model.parameters())
    assert count_params(build_model(CATALOG["r3d-18"]))[1] == 0


def test_shape_parsing_and_bad_input():
    assert parse_shape("16x112x112") == (16, 112, 112)
    for bad in ("16x112", "0x1x1", "axbxc", ""):
        with pytest.raises(UserInputError):
            parse_shape(bad)
    with pytest.raises(UserInputError):
        count_gmacs(CATALOG["r3d-18"], (16, 112, 112), method="guess")
