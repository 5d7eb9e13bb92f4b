"""MTNet (SPEC 2.3, 2.4; issue 3): stream shapes and splits, parameter counts, MACs, proxies, training.

Full-width models run on the meta device (shapes and FLOPs without memory or compute); proxies run for real.
The analytic parameter counts below are written from SPEC 2.3 independently of ``space.mtnet``.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from space import CATALOG, MTNetSpec, SpecError, build_model, validate_buildable
from space.mtnet import MTBlock, MTConv, MTHead, MTNet, MTStem, SqueezeRecursion

MTNET_NAMES = [name for name, spec in CATALOG.items() if isinstance(spec, MTNetSpec)]
SHAPES = [(1, 3, 16, 112, 112), (1, 3, 16, 224, 224), (1, 3, 8, 180, 180), (1, 3, 9, 97, 75)]
TABLE3_PARAMS_M = {  # MTNet paper, Table 3 (400 classes, r = 0.875)
    "mtnet-32": 21.64,
    "mtnet-48": 39.78,
    "mtnet-64": 43.02,
    "mtnet-132": 85.30,
    "mtnet-200": 124.25,
    "mtnet-64-g8": 13.07,
    "mtnet-132-g8": 24.68,
}
BLOCKS = {32: (2, 2, 2, 2), 48: (2, 2, 5, 3), 64: (3, 4, 6, 3), 132: (3, 4, 23, 3), 200: (3, 8, 36, 3)}




def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_meta(spec: MTNetSpec, width_mult: float = 1.0, num_classes: int = 400) -> MTNet:
    with torch.device("meta"):
        return build_model(spec, num_classes=num_classes, width_mult=width_mult)


# --------------------------------------------------------------------------------------------
# Independent analytic model of SPEC 2.3
# --------------------------------------------------------------------------------------------


def spec_groups(r: float, g: int) -> tuple[int, int]:
    if r == 1.0:
        return g, 0
    g_s = max(math.floor(g * r), 1)
    return g_s, max(g - g_s, 1)


def spec_split(c: int, r: float, g: int) -> tuple[int, int]:
    g_s, g_l = spec_groups(r, g)
    if r == 1.0:
        return c - c % g_s, 0
    short = math.floor(r * c)
    short -= short % g_s
    long = c - short
    return short, long - long % g_l


def analytic_mtconv(cin, cout, kernel_volume, groups=(1, 1), lateral=True) -> int:
    (s_in, l_in), (s_out, l_out) = cin, cout
    params = s_in * s_out * kernel_volume // groups[0] + 2 * s_out
    if l_out:
        params += l_in * l_out * kernel_volume // groups[1] + 2 * l_out
        if lateral:  # ungrouped 1x1x1 from the short input, plus its own batch norm
            params += s_in * l_out + 2 * l_out
    return params


def analytic_rnn(c: int, kind: str) -> int:
    """Two layers, input = hidden = c; PyTorch keeps two bias vectors per gate."""
    gates = {"gru": 3, "lstm": 4, "none": 0}[kind]
    return 0 if c == 0 else 2 * gates * (2 * c * c + 2 * c)


def analytic_block(cin, width, cout, r, g, downsample, kind) -> int:
    split_in, split_width, split_out = (spec_split(c, r, g) for c in (cin, width, cout))
    grouped = spec_groups(r, g) if r < 1 else (g, 1)
    params = analytic_mtconv(split_in, split_width, 1)
    params += analytic_mtconv(split_width, split_in, 1)
    params += analytic_mtconv(split_in, split_width, 27, grouped)
    params += analytic_mtconv(split_width, split_out, 1 if downsample else 9, grouped)
    params += analytic_rnn(split_out[0], kind) + analytic_rnn(split_out[1], kind)
    if downsample:
        params += analytic_mtconv(split_in, split_out, 1, lateral=False)
    return params


def analytic_stem(c: int, r: float, g: int) -> int:
    total = sum(spec_split(c, r, g))
    return 3 * total * 3 * 7 * 7 + 2 * total


def analytic_head(c: int, r: float, g: int, classes: int) -> int:
    return sum(spec_split(c, r, g)) * classes + classes


def analytic_mtnet(depth, r, g, kind, classes) -> int:
    params, cin = analytic_stem(64, r, g), 64
    for stage, (blocks, planes) in enumerate(zip(BLOCKS[depth], (64, 128, 256, 512))):
        for block in range(blocks):
            params += analytic_block(cin, planes // g, planes, r, g, stage > 0 and block == 0, kind)
            cin = planes
    return params + analytic_head(512, r, g, classes)


# --------------------------------------------------------------------------------------------
# Channel split and invalid combinations
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "r,g,channels,expected",
    [
        (0.875, 1, 64, (56, 8)),
        (0.875, 8, 64, (56, 8)),
        (0.875, 8, 8, (7, 1)),
        (0.625, 8, 64, (40, 24)),  # g_s = 5, g_l = 3
        (0.5, 16, 64, (32, 32)),
        (0.75, 4, 10, (6, 4)),  # floor(7.5) = 7 -> 6 (multiple of g_s = 3)
        (0.625, 8, 13, (5, 6)),  # 8 -> 5, 8 -> 6 (multiple of g_l = 3): rounded down, 2 channels lost
        (1.0, 8, 64, (64, 0)),
    ],
)
def test_channel_split_follows_spec(r, g, channels, expected):
    from space.mtnet import StreamLayout

    assert spec_split(channels, r, g) == expected
    split = StreamLayout(ratio=r, substreams=g).split(channels, "test layer")
    assert (split.short, split.long) == expected


@pytest.mark.parametrize("depth", [32, 200])
@pytest.mark.parametrize("ratio", [0.5, 0.875, 1.0])
def test_too_many_substreams_raise_spec_error_naming_the_layer(depth, ratio):
    """g = 16: stage 1's block width is 64 / 16 = 4 channels, fewer than its 16 groups."""
    spec = MTNetSpec(depth=depth, ratio=ratio, substreams=16)
    with pytest.raises(SpecError, match=r"stages\.0\.0\.conv1 / conv3 output \(width\).*4 channels.*substreams=16"):
        validate_buildable(spec)


def test_split_error_names_layer_and_allowed_values():
    from space.mtnet import StreamLayout

    with pytest.raises(SpecError, match=r"MTNet layer head input: 9 channels .* into 0 short \+ 8 long channels.* 14 short \+ 2 long groups"):
        StreamLayout(ratio=0.875, substreams=16).split(9, "head input")


def test_substreams_up_to_8_build_at_every_paper_ratio_at_full_and_proxy_width():
    for g in (1, 2, 4, 8):
        for r in (0.5, 0.625, 0.75, 0.875, 1.0):
            validate_buildable(MTNetSpec(depth=32, ratio=r, substreams=g), width_mult=1.0)
    for r in (0.5, 0.625, 0.75, 0.875, 1.0):  # the tightest proxy: 8 sub-streams at stage 1's width 8
        validate_buildable(MTNetSpec(depth=32, ratio=r, substreams=8), width_mult=0.25)


# --------------------------------------------------------------------------------------------
# Parameter counts
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_parameter_counts_within_4_percent_of_table3(capsys):
    rows = []
    for name, paper in TABLE3_PARAMS_M.items():
        ours = count(build_meta(CATALOG[name])) / 1e6
        rows.append((name, ours, paper))
    with capsys.disabled():
        print("\nMTNet parameters at 400 classes: ours vs paper Table 3")
        for name, ours, paper in rows:
            print(f"  {name:14s} ours {ours:7.2f}M  paper {paper:7.2f}M  ({(ours / paper - 1) * 100:+.2f}%)")
    for name, ours, paper in rows:
        assert abs(ours / paper - 1) <= 0.04, f"{name}: {ours:.2f}M vs {paper}M"


@pytest.mark.parametrize(
    "depth,ratio,substreams,recurrent,width_mult",
    [
        (32, 0.875, 1, "gru", 1.0),
        (48, 0.625, 8, "lstm", 1.0),
        (64, 1.0, 8, "gru", 1.0),
        (32, 0.5, 4, "none", 1.0),
        (32, 0.75, 2, "gru", 1.0),
    ],
)
def test_analytic_count_equals_module_count_per_block_type(depth, ratio, substreams, recurrent, width_mult):
    spec = MTNetSpec(depth=depth, ratio=ratio, substreams=substreams, recurrent=recurrent)
    model = build_meta(spec, width_mult, num_classes=101)
    g = substreams
    assert count(model.stem) == analytic_stem(64, ratio, g)
    assert count(model.head) == analytic_head(512, ratio, g, 101)
    cin = 64
    seen = set()
    for stage, planes in enumerate((64, 128, 256, 512)):
        for index, block in enumerate(model.stages[stage]):
            downsample = stage > 0 and index == 0
            expected = analytic_block(cin, planes // g, planes, ratio, g, downsample, recurrent)
            assert count(block) == expected, f"stages.{stage}.{index}"
            seen.add(downsample)
            cin = planes
    assert seen == {True, False}  # both block types checked
    assert count(model) == analytic_mtnet(depth, ratio, g, recurrent, 101)


def test_recurrent_cells_are_two_layer_rnns_of_stream_width():
    model = build_meta(MTNetSpec(depth=32, ratio=0.875, recurrent="lstm"))
    block = model.stages[3][1]
    assert isinstance(block.sr_short, SqueezeRecursion) and isinstance(block.sr_short.rnn, nn.LSTM)
    assert (block.sr_short.rnn.hidden_size, block.sr_short.rnn.num_layers) == (448, 2)
    assert block.sr_long.rnn.hidden_size == 64
    no_rnn = build_meta(MTNetSpec(depth=32, recurrent="none"))
    assert not any(isinstance(m, nn.RNNBase) for m in no_rnn.modules())


def test_ratio_one_is_a_single_vanilla_stream():
    model = build_meta(MTNetSpec(depth=64, ratio=1.0))
    convs = [m for m in model.modules() if isinstance(m, MTConv)]
    assert convs and all(m.conv_long is None and m.lateral is None for m in convs)
    assert all(m.out_split.long == 0 for m in convs)
    assert model.head.fc.in_features == 512
    assert not isinstance(model.stages[0][0].sr_long, SqueezeRecursion)


# --------------------------------------------------------------------------------------------
# Shapes: every catalog MTNet at every input shape (meta device)
# --------------------------------------------------------------------------------------------

_MACS: dict[tuple[str, tuple[int, ...]], float] = {}
MACS_SHAPE = (1, 3, 16, 224, 224)
MACS_WANTED = {(f"mtnet-{d}{g}", MACS_SHAPE) for d in (64, 132) for g in ("", "-g8")}


def _check_streams(where: str, streams, split) -> None:
    short, long = streams
    assert short.shape[1] == split.short, where
    if split.long == 0:
        assert long is None, where
        return
    assert long.shape[1] == split.long, where
    assert tuple(long.shape[2:]) == tuple(math.ceil(n / 2) for n in short.shape[2:]), (where, short.shape, long.shape)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", MTNET_NAMES)
@pytest.mark.slow
def test_catalog_mtnet_runs_and_long_stream_is_half_the_short(name, shape):
    spec = CATALOG[name]
    model = build_meta(spec)
    checked = []

    def hook(where: str):
        def check_conv(module: MTConv, inputs, output):
            _check_streams(f"{where} input", inputs[0], module.in_split)
            _check_streams(f"{where} output", output, module.out_split)
            checked.append(where)

        return check_conv

    expected_groups = spec_groups(spec.ratio, spec.substreams)
    for where, module in model.named_modules():
        if isinstance(module, MTConv):
            module.register_forward_hook(hook(where))
            # The channel split of SPEC 2.3, by the independent formula, on every layer.
            for split in (module.in_split, module.out_split):
                assert (split.short, split.long) == spec_split(split.nominal, spec.ratio, spec.substreams), where
            assert module.conv_short.groups in (1, expected_groups[0]), where
            if module.conv_long is not None:
                assert module.conv_long.groups in (1, expected_groups[1]), where
    counter = FlopCounterMode(display=False)  # only the MACs test's models pay for counting
    with torch.no_grad(), counter if (name, shape) in MACS_WANTED else contextlib.nullcontext():
        logits = model(torch.empty(shape, device="meta"))
    assert logits.shape == (1, 400)
    assert len(checked) == sum(isinstance(m, MTConv) for m in model.modules())
    if (name, shape) in MACS_WANTED:
        _MACS[(name, shape)] = counter.get_total_flops() / 2


@pytest.mark.parametrize("depth", [64, 132])
def test_eight_substreams_cut_macs_by_at_least_70_percent(depth, capsys):
    shape = MACS_SHAPE

    def macs(name: str) -> float:
        if (name, shape) not in _MACS:  # when run alone
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                build_meta(CATALOG[name])(torch.empty(shape, device="meta"))
            _MACS[(name, shape)] = counter.get_total_flops() / 2
        return _MACS[(name, shape)]

    dense, grouped = macs(f"mtnet-{depth}"), macs(f"mtnet-{depth}-g8")
    reduction = 1 - grouped / dense
    with capsys.disabled():
        print(
            f"\nMTNet-{depth} GMACs @ 1x3x16x224x224: g=1 {dense / 1e9:.2f}, g=8 {grouped / 1e9:.2f} "
            f"({reduction * 100:.1f}% fewer; paper 71.8% / 76.1% for -64 / -132)"
        )
    assert reduction >= 0.70


# --------------------------------------------------------------------------------------------
# Proxies and training
# --------------------------------------------------------------------------------------------


def _topology(model: MTNet) -> list[tuple]:
    rows = []
    for module in model.modules():
        if isinstance(module, MTConv):
            rows.append(
                (
                    "conv",
                    module.conv_short.kernel_size,
                    module.conv_short.stride,
                    module.conv_short.groups,
                    None if module.conv_long is None else module.conv_long.groups,
                    module.lateral is not None,
                    type(module.down).__name__,
                )
            )
        elif isinstance(module, (MTBlock, MTStem, MTHead, SqueezeRecursion)):
            rows.append((type(module).__name__,))
    return rows


@pytest.mark.parametrize("name", ["mtnet-32", "mtnet-132", "mtnet-64-g8", "mtnet-64-r0.625", "mtnet-64-r1.0"])
def test_quarter_width_proxy_keeps_topology(name):
    full, proxy = build_meta(CATALOG[name]), build_meta(CATALOG[name], width_mult=0.25)
    assert _topology(full) == _topology(proxy)
    share = count(proxy) / count(full)
    assert 0.04 <= share <= 0.12, share
    # Channels scale (stage 4 output: 512 -> 128) and the short share of every tensor stays ~r.
    assert proxy.head.fc.in_features == full.head.fc.in_features // 4
    for module in proxy.modules():
        if isinstance(module, MTConv) and module.out_split.long:
            share_short = module.out_split.short / module.out_split.total
            assert abs(share_short - CATALOG[name].ratio) <= 1 / 8 + 1e-9


@pytest.mark.parametrize("name", MTNET_NAMES)
def test_catalog_mtnet_trains_at_quarter_width(name):
    torch.manual_seed(0)
    model = build_model(CATALOG[name], num_classes=5, width_mult=0.25)
    clip = torch.randn(2, 3, 4, 32, 32)
    loss = nn.functional.cross_entropy(model(clip), torch.tensor([1, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
    rnn_grads = [p.grad.abs().sum() for m in model.modules() if isinstance(m, nn.RNNBase) for p in m.parameters()]
    assert sum(rnn_grads) > 0  # the SR cells are part of the graph


def test_lateral_connection_feeds_short_into_long():
    model = build_model(CATALOG["mtnet-32"], num_classes=5, width_mult=0.25).eval()
    conv = model.stages[1][1].conv3
    short, long = torch.randn(1, conv.in_split.short, 4, 6, 6), torch.randn(1, conv.in_split.long, 2, 3, 3)
    with torch.no_grad():
        base_short, base_long = conv((short, long))
        moved_short, moved_long = conv((short + 1, long))
    assert not torch.allclose(base_long, moved_long)  # eq. 2: the long output depends on the short input
    shortcut = model.stages[1][0].shortcut
    assert shortcut.lateral is None


@pytest.mark.slow
def test_traces_with_jit_and_matches_eager():
    for name in ("mtnet-32", "mtnet-64-r1.0"):
        model = build_model(CATALOG[name], num_classes=5, width_mult=0.25).eval()
        clip = torch.randn(1, 3, 5, 33, 31)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, clip)
        torch.testing.assert_close(traced(clip), model(clip))
