"""MTNet: multi-temporal 3D CNNs (docs/mtnet.md; Stergiou & Poppe, "Multi-Temporal Convolutions").

Every layer works on two streams: a *short* stream with a fraction ``ratio`` of the channels at full
resolution and a *long* stream with the rest at ceil(T/2) x ceil(H/2) x ceil(W/2). Reading order:

- :class:`StreamLayout` - how a channel count splits into the two streams (ratio r, sub-streams g) and
  which layer is to blame when it cannot.
- :class:`MTConv` - one conv per stream plus the short-to-long lateral connection (paper eq. 2).
- :class:`SqueezeRecursion` - the per-stream GRU/LSTM cell that re-weights every frame.
- :class:`MTBlock` - four MTConvs, an SR cell per stream and a residual connection.
- :class:`MTStem`, :class:`MTHead`, :class:`MTNet` and :func:`build_mtnet`.

Streams travel between modules as a tuple ``(short, long)``; ``long`` is ``None`` when r = 1 (a single
vanilla 3D stream). Which branch runs is fixed at construction, never decided from data, so the model
traces with ``torch.jit.trace``. Shapes match by construction (ceil-mode pooling and strided convs with
"same" padding both give ceil(n / s)); nothing is ever interpolated.

Speed (docs/throughput.md): a proxy MTNet is hundreds of small operations, so the stem turns its input
channels-last (N x T x H x W x C in memory) and every layer keeps it so: oneDNN's 3D convolutions run
channels-last inside (a contiguous tensor is reordered at every call, which cost more than the convolution
at proxy width), pointwise convolutions become one matrix product over the channels, and the pools add
whole slices. The parameters and what the model computes are unchanged (frozen reference:
tests/space/test_mtnet_reference.py); the weights stay contiguous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from space.softpool import MeanPool3d, SoftPool3d
from space.spec import MTNetSpec, SpecError
from space.width import scale_channels

__all__ = [
    "STAGE_BLOCKS",
    "STAGE_PLANES",
    "StreamLayout",
    "StreamSplit",
    "MTConv",
    "SqueezeRecursion",
    "MTBlock",
    "MTStem",
    "MTHead",
    "MTNet",
    "build_mtnet",
]

Streams = tuple[Tensor, Optional[Tensor]]
Triple = tuple[int, int, int]

STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    32: (2, 2, 2, 2),
    48: (2, 2, 5, 3),
    64: (3, 4, 6, 3),
    132: (3, 4, 23, 3),
    200: (3, 8, 36, 3),
}
STAGE_PLANES = (64, 128, 256, 512)
STEM_CHANNELS = 64


# --------------------------------------------------------------------------------------------
# Channel split
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamSplit:
    """Channels of one tensor in each stream; ``long == 0`` for a single-stream (r = 1) network.

    ``nominal`` is the channel count before the split (short + long can be lower after rounding to groups).
    """

    nominal: int
    short: int
    long: int

    @property
    def total(self) -> int:
        return self.short + self.long


@dataclass(frozen=True)
class StreamLayout:
    """The channel split rule of docs/mtnet.md, shared by every tensor of one network.

    g_s = max(floor(g*r), 1) groups in the short stream, g_l = max(g - g_s, 1) in the long one;
    Cs = floor(r*C) and Cl = C - Cs, each rounded down to a multiple of its group count. Every tensor of
    the network uses the same rule (also those only ungrouped convs touch), so the channels a layer
    writes are the channels the next layer reads.
    """

    ratio: float
    substreams: int

    @property
    def two_streams(self) -> bool:
        return self.ratio < 1.0

    @property
    def groups(self) -> tuple[int, int]:
        """(g_s, g_l); g_l is 0 without a long stream."""
        if not self.two_streams:
            return self.substreams, 0
        short = max(math.floor(self.substreams * self.ratio), 1)
        return short, max(self.substreams - short, 1)

    @property
    def channel_unit(self) -> int:
        """The fewest channels a tensor can have: one channel per group in each stream."""
        return sum(self.groups)

    def split(self, channels: int, layer: str) -> StreamSplit:
        """Split ``channels``; raises :class:`SpecError` naming ``layer`` if a stream gets fewer channels than groups."""
        g_short, g_long = self.groups
        if not self.two_streams:
            split = StreamSplit(nominal=channels, short=channels // g_short * g_short, long=0)
        else:
            short = math.floor(self.ratio * channels + 1e-9) // g_short * g_short
            split = StreamSplit(nominal=channels, short=short, long=(channels - short) // g_long * g_long)
        if split.short < max(g_short, 1) or (self.two_streams and split.long < g_long):
            raise SpecError(
                f"MTNet layer {layer}: {channels} channels split at ratio={self.ratio} into "
                f"{split.short} short + {split.long} long channels, fewer than its {g_short} short + "
                f"{g_long} long groups (substreams={self.substreams}); allowed: at least one channel per "
                "group in each stream (use fewer substreams, another ratio or a larger width_mult)"
            )
        return split


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


def _triple(value: int | tuple[int, ...]) -> Triple:
    return (value,) * 3 if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


def _conv(in_channels: int, out_channels: int, kernel: Triple, stride: Triple, groups: int) -> nn.Conv3d:
    padding = tuple(k // 2 for k in kernel)  # "same" padding: output = ceil(input / stride)
    return nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=padding, groups=groups, bias=False)


def _convolve(conv: nn.Conv3d, x: Tensor) -> Tensor:
    """``conv(x)``; an ungrouped 1x1x1 conv on a channels-last tensor as one matrix product over its channels.

    MTNet's activations are channels-last (:class:`MTStem`), so N x T x H x W x C is a free view of ``x`` and a
    pointwise conv is ``F.linear`` on its rows: same weights (viewed Cout x Cin), same MACs, and none of oneDNN's
    per-call cost, which dominates the many tiny pointwise convs of a proxy (docs/throughput.md). A strided
    pointwise conv ("same" padding is 0 for k = 1) reads every ``stride``-th position.
    """
    if conv.kernel_size != (1, 1, 1) or conv.groups != 1:
        return conv(x)
    if conv.stride != (1, 1, 1):
        st, sh, sw = conv.stride
        x = x[:, :, ::st, ::sh, ::sw]
    rows = F.linear(x.permute(0, 2, 3, 4, 1), conv.weight.flatten(1), conv.bias)
    return rows.permute(0, 4, 1, 2, 3)


class MTConv(nn.Module):
    """A multi-temporal conv (paper eq. 2, docs/mtnet.md)::

        a_s' = act(bn(conv_s(a_s)))
        a_l' = act(bn(conv_l(a_l)) + bn(lateral(down(a_s))))

    ``down`` pools the short *input* by 2 x stride in every axis (ceil mode), which lands exactly on the
    long stream's output size; ``lateral`` is an ungrouped 1x1x1 conv Cs_in -> Cl_out, as in the
    authors' code. ``pool`` picks SoftPool (downsample blocks, paper) or mean pooling (repeat blocks).
    ``activation=False`` leaves the ReLU to the block (last conv and shortcut).
    """

    def __init__(
        self,
        in_split: StreamSplit,
        out_split: StreamSplit,
        *,
        kernel_size: int | Triple,
        stride: int | Triple = 1,
        groups: tuple[int, int] = (1, 1),
        lateral: bool = True,
        pool: str = "mean",
        activation: bool = True,
    ) -> None:
        super().__init__()
        kernel, steps = _triple(kernel_size), _triple(stride)
        self.in_split, self.out_split = in_split, out_split
        self.conv_short = _conv(in_split.short, out_split.short, kernel, steps, groups[0])
        self.bn_short = nn.BatchNorm3d(out_split.short)
        self.conv_long: nn.Conv3d | None = None
        self.bn_long: nn.BatchNorm3d | None = None
        self.down: nn.Module | None = None
        self.lateral: nn.Conv3d | None = None
        self.bn_lateral: nn.BatchNorm3d | None = None
        if out_split.long:
            self.conv_long = _conv(in_split.long, out_split.long, kernel, steps, groups[1])
            self.bn_long = nn.BatchNorm3d(out_split.long)
        if out_split.long and lateral:
            pool_class = {"soft": SoftPool3d, "mean": MeanPool3d}[pool]
            self.down = pool_class(tuple(2 * s for s in steps), ceil_mode=True)
            self.lateral = _conv(in_split.short, out_split.long, (1, 1, 1), (1, 1, 1), 1)
            self.bn_lateral = nn.BatchNorm3d(out_split.long)
        self.act = nn.ReLU() if activation else nn.Identity()

    def forward(self, streams: Streams) -> Streams:
        short, long = streams
        out_short = self.act(self.bn_short(_convolve(self.conv_short, short)))
        if self.conv_long is None or self.bn_long is None or long is None:
            return out_short, None
        out_long = self.bn_long(_convolve(self.conv_long, long))
        if self.lateral is not None and self.down is not None and self.bn_lateral is not None:
            out_long = out_long + self.bn_lateral(_convolve(self.lateral, self.down(short)))
        return out_short, self.act(out_long)


class SqueezeRecursion(nn.Module):
    """Squeeze and recursion cell (docs/mtnet.md): mean over H, W -> 2-layer GRU/LSTM over time -> ``x * h``.

    Hidden size = the stream's channels, so ``h`` re-weights every channel of every frame by what the
    clip-level recurrence says about it; there is no gate (unlike SRTG).
    """

    def __init__(self, channels: int, kind: str) -> None:
        super().__init__()
        rnn_class = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
        self.rnn = rnn_class(input_size=channels, hidden_size=channels, num_layers=2)

    def forward(self, x: Tensor) -> Tensor:
        sequence = x.mean(dim=(3, 4)).permute(2, 0, 1)  # N x C x T -> T x N x C
        hidden, _ = self.rnn(sequence)
        if x.is_contiguous():
            return x * hidden.permute(1, 2, 0)[..., None, None]
        # channels-last: N x T x H x W x C times N x T x 1 x 1 x C, so the product stays channels-last (a broadcast
        # multiply in N x C x T x H x W order came out contiguous and slowed every later layer)
        return (x.permute(0, 2, 3, 4, 1) * hidden.transpose(0, 1)[:, :, None, None, :]).permute(0, 4, 1, 2, 3)


def _sr_cell(channels: int, kind: str) -> nn.Module:
    return nn.Identity() if kind == "none" or channels == 0 else SqueezeRecursion(channels, kind)


class MTBlock(nn.Module):
    """Repeat or downsample MTBlock, the structure of the authors' released code (docs/mtnet.md)::

        conv1 1x1x1 in -> width        (ungrouped)
        conv2 1x1x1 width -> in        (ungrouped)
        conv3 3x3x3 in -> width        (stride, grouped)
        conv4 1x3x3 width -> out       (repeat) or 1x1x1 (downsample), grouped, no ReLU
        SR cell per stream, + shortcut (identity, or a strided 1x1x1 MTConv in downsample blocks), ReLU
    """

    def __init__(
        self,
        *,
        name: str,
        layout: StreamLayout,
        in_channels: int,
        width: int,
        out_channels: int,
        downsample: bool,
        recurrent: str,
    ) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        pool = "soft" if downsample else "mean"
        grouped = layout.groups if layout.two_streams else (layout.substreams, 1)
        in_split = layout.split(in_channels, f"{name} input")
        width_split = layout.split(width, f"{name}.conv1 / conv3 output (width)")
        out_split = layout.split(out_channels, f"{name}.conv4 output")
        self.conv1 = MTConv(in_split, width_split, kernel_size=1, pool=pool)
        self.conv2 = MTConv(width_split, in_split, kernel_size=1, pool=pool)
        self.conv3 = MTConv(in_split, width_split, kernel_size=3, stride=stride, groups=grouped, pool=pool)
        last_kernel = (1, 1, 1) if downsample else (1, 3, 3)
        self.conv4 = MTConv(width_split, out_split, kernel_size=last_kernel, groups=grouped, pool=pool, activation=False)
        self.sr_short = _sr_cell(out_split.short, recurrent)
        self.sr_long = _sr_cell(out_split.long, recurrent)
        self.shortcut: MTConv | None = None
        if downsample or in_split != out_split:
            self.shortcut = MTConv(in_split, out_split, kernel_size=1, stride=stride, lateral=False, activation=False)
        self.relu = nn.ReLU()

    def forward(self, streams: Streams) -> Streams:
        identity_short, identity_long = streams if self.shortcut is None else self.shortcut(streams)
        short, long = self.conv4(self.conv3(self.conv2(self.conv1(streams))))
        short = self.relu(self.sr_short(short) + identity_short)
        if long is None or identity_long is None:
            return short, None
        return short, self.relu(self.sr_long(long) + identity_long)


class MTStem(nn.Module):
    """Conv (3,7,7) stride (1,2,2) -> BN -> ReLU -> SoftPool (1,2,2); split; long stream SoftPooled by 2."""

    def __init__(self, split: StreamSplit) -> None:
        super().__init__()
        self.split_sizes = (split.short, split.long)
        self.conv = nn.Conv3d(3, split.total, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False)
        self.bn = nn.BatchNorm3d(split.total)
        self.relu = nn.ReLU()
        self.pool = SoftPool3d((1, 2, 2), ceil_mode=True)
        self.long_pool = SoftPool3d(2, ceil_mode=True) if split.long else None

    def forward(self, x: Tensor) -> Streams:
        x = x.contiguous(memory_format=torch.channels_last_3d)  # the layout every later layer keeps (module doc)
        x = self.pool(self.relu(self.bn(self.conv(x))))
        if self.long_pool is None:
            return x, None
        # a channel slice of a channels-last tensor is strided: make each stream dense once, here
        short, long = (part.contiguous(memory_format=torch.channels_last_3d)
                       for part in torch.split(x, self.split_sizes, dim=1))
        return short, self.long_pool(long)


class MTHead(nn.Module):
    """Per-stream global average pool, concatenation, linear classifier."""

    def __init__(self, split: StreamSplit, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(split.total, num_classes)

    def forward(self, streams: Streams) -> Tensor:
        short, long = streams
        pooled = [short.mean(dim=(2, 3, 4))]
        if long is not None:
            pooled.append(long.mean(dim=(2, 3, 4)))
        return self.fc(torch.cat(pooled, dim=1))


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


class MTNet(nn.Module):
    """Stem, four stages of MTBlocks (the first block of stages 2-4 downsamples by 2 in T, H, W), head.

    ``width_mult`` scales every channel count (stem, block width and output) with
    :func:`space.width.scale_channels` in units of one channel per group per stream, so a proxy keeps
    the depth, the stream split, the group counts and the SR cells of the full model.
    """

    def __init__(
        self,
        *,
        depth: int,
        ratio: float,
        substreams: int,
        recurrent: str,
        num_classes: int,
        width_mult: float = 1.0,
    ) -> None:
        super().__init__()
        self.layout = StreamLayout(ratio=ratio, substreams=substreams)

        def scaled(channels: int) -> int:
            return scale_channels(channels, width_mult, self.layout.channel_unit)

        in_channels = scaled(STEM_CHANNELS)
        self.stem = MTStem(self.layout.split(in_channels, "stem output"))
        stages = []
        for index, (blocks, planes) in enumerate(zip(STAGE_BLOCKS[depth], STAGE_PLANES)):
            out_channels, width = scaled(planes), scaled(planes // substreams)
            stage = []
            for block in range(blocks):
                stage.append(
                    MTBlock(
                        name=f"stages.{index}.{block}",
                        layout=self.layout,
                        in_channels=in_channels,
                        width=width,
                        out_channels=out_channels,
                        downsample=index > 0 and block == 0,
                        recurrent=recurrent,
                    )
                )
                in_channels = out_channels
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.head = MTHead(self.layout.split(in_channels, "head input"), num_classes)
        self._initialise_weights()

    def _initialise_weights(self) -> None:
        """Kaiming (fan-out) convs, unit BN, small linear layers. Nothing to set on the meta device (a
        buildability check, docs/search-space.md): its tensors hold no values, and this was half the build."""
        if next(self.parameters()).is_meta:
            return
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))


def build_mtnet(spec: MTNetSpec, *, num_classes: int, width_mult: float) -> MTNet:
    """Build ``spec``; raises :class:`SpecError` naming the layer if a stream ends up with fewer channels than groups."""
    return MTNet(
        depth=spec.depth,
        ratio=spec.ratio,
        substreams=spec.substreams,
        recurrent=spec.recurrent,
        num_classes=num_classes,
        width_mult=width_mult,
    )
