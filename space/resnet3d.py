"""r3d and r(2+1)d ResNets (docs/search-space.md) with optional SRTG blocks (docs/srtg.md).

The structure follows torchvision's ``VideoResNet`` closely enough that, at depth 18 without SRTG,
the state dict has the same keys, order and shapes as torchvision's ``r3d_18`` / ``r2plus1d_18``, so
their weights load. Conv builders (:class:`Conv3DSimple`, :class:`Conv2Plus1D`) are the plug-in point;
one generic network class (:class:`VideoResNet3D`) and a tiny factory (:func:`build_resnet3d`).
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from space.spec import ResNet3DSpec, SRTGSpec
from space.srtg import SRTG
from space.width import scale_channels

__all__ = ["Conv3DSimple", "Conv2Plus1D", "SimpleBlock", "Bottleneck", "VideoResNet3D", "build_resnet3d"]

STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
STAGE_PLANES = (64, 128, 256, 512)


def midplanes_for(inplanes: int, planes: int) -> int:
    """(2+1)D intermediate width matching a full 3x3x3 conv's parameters (torchvision's formula)."""
    return (inplanes * planes * 3 * 3 * 3) // (inplanes * 3 * 3 + 3 * planes)


class Conv3DSimple(nn.Conv3d):
    """A full 3x3x3 convolution (r3d)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1) -> None:
        super().__init__(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class Conv2Plus1D(nn.Sequential):
    """(1,3,3) spatial conv -> BN -> ReLU -> (3,1,1) temporal conv (r(2+1)d)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(in_planes, midplanes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            nn.Conv3d(midplanes, out_planes, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
        )


ConvBuilder = Callable[..., nn.Module]


def _bn_relu(conv: nn.Module, channels: int, relu: bool = True) -> nn.Sequential:
    layers = [conv, nn.BatchNorm3d(channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _SRTGHost(nn.Module):
    """Shared placement logic: ``self.srtg`` (or None) applied at ``self.placement``."""

    placement: str
    srtg: SRTG | None

    def _at(self, where: str, x: Tensor) -> Tensor:
        return self.srtg(x) if self.placement == where and self.srtg is not None else x

    def _attach_srtg(self, srtg: SRTGSpec | None, channels_at: dict[str, int], name: str) -> None:
        self.placement = srtg.placement if srtg is not None else "none"
        self.srtg = None
        if srtg is not None and srtg.enabled:
            self.srtg = SRTG(channels_at[srtg.placement], spec=srtg, name=name)


class SimpleBlock(_SRTGHost):
    """Two convs (depth 18 / 34); torchvision's ``BasicBlock``. SRTG at start, mid, res or final."""

    def __init__(
        self,
        *,
        inplanes: int,
        planes: int,
        conv_builder: ConvBuilder,
        stride: int = 1,
        downsample: nn.Module | None = None,
        srtg: SRTGSpec | None = None,
        name: str = "block",
    ) -> None:
        super().__init__()
        midplanes = midplanes_for(inplanes, planes)
        self.conv1 = _bn_relu(conv_builder(inplanes, planes, midplanes, stride), planes)
        self.conv2 = _bn_relu(conv_builder(planes, planes, midplanes), planes, relu=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self._attach_srtg(srtg, {"start": inplanes, "mid": planes, "res": planes, "final": planes}, name)

    def forward(self, x: Tensor) -> Tensor:
        x = self._at("start", x)
        residual = x if self.downsample is None else self.downsample(x)
        residual = self._at("res", residual)
        out = self._at("mid", self.conv1(x))
        out = self.conv2(out)
        out = self.relu(out + residual)
        return self._at("final", out)


class Bottleneck(_SRTGHost):
    """1x1x1 -> 3x3x3 (or (2+1)d) -> 1x1x1 (depth 50 / 101 / 152). SRTG at any of the six placements."""

    def __init__(
        self,
        *,
        inplanes: int,
        planes: int,
        conv_builder: ConvBuilder,
        expansion: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        srtg: SRTGSpec | None = None,
        name: str = "block",
    ) -> None:
        super().__init__()
        out_planes = planes * expansion
        midplanes = midplanes_for(inplanes, planes)
        self.conv1 = _bn_relu(nn.Conv3d(inplanes, planes, kernel_size=1, bias=False), planes)
        self.conv2 = _bn_relu(conv_builder(planes, planes, midplanes, stride), planes)
        self.conv3 = _bn_relu(nn.Conv3d(planes, out_planes, kernel_size=1, bias=False), out_planes, relu=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        channels_at = {"start": inplanes, "top": planes, "mid": planes, "end": out_planes}
        self._attach_srtg(srtg, {**channels_at, "res": out_planes, "final": out_planes}, name)

    def forward(self, x: Tensor) -> Tensor:
        x = self._at("start", x)
        residual = x if self.downsample is None else self.downsample(x)
        residual = self._at("res", residual)
        out = self._at("top", self.conv1(x))
        out = self._at("mid", self.conv2(out))
        out = self._at("end", self.conv3(out))
        out = self.relu(out + residual)
        return self._at("final", out)


class R3DStem(nn.Sequential):
    """Conv(3,7,7) stride (1,2,2) -> BN -> ReLU; no max-pool."""

    def __init__(self, out_planes: int) -> None:
        super().__init__(
            nn.Conv3d(3, out_planes, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(out_planes),
            nn.ReLU(inplace=True),
        )


class R2Plus1DStem(nn.Sequential):
    """(1,7,7) -> 45 -> BN -> ReLU -> (3,1,1) -> 64 -> BN -> ReLU (widths scale with the proxy)."""

    def __init__(self, out_planes: int, mid_planes: int) -> None:
        super().__init__(
            nn.Conv3d(3, mid_planes, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(mid_planes),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid_planes, out_planes, (3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(out_planes),
            nn.ReLU(inplace=True),
        )


class VideoResNet3D(nn.Module):
    """Stem, four stages, global average pool, linear head."""

    def __init__(
        self,
        *,
        stem: nn.Module,
        stages: list[nn.Sequential],
        head_in: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(head_in, num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _init_weights(model: nn.Module) -> None:
    """torchvision's initialisation: Kaiming (fan-out) convs, unit BN, small linear layers.

    Nothing to set on the meta device (a buildability check, docs/search-space.md): its tensors hold no values,
    and this was half the build.
    """
    if next(model.parameters()).is_meta:
        return
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)


def _make_stage(
    *,
    stage: int,
    inplanes: int,
    planes: int,
    num_blocks: int,
    stride: int,
    spec: ResNet3DSpec,
    conv_builder: ConvBuilder,
    expansion: int,
) -> tuple[nn.Sequential, int]:
    out_planes = planes * expansion
    srtg = spec.srtg if stage in spec.srtg.stages else None
    blocks = []
    for index in range(num_blocks):
        block_stride = stride if index == 0 else 1
        downsample = None
        if block_stride != 1 or inplanes != out_planes:
            downsample = nn.Sequential(
                nn.Conv3d(inplanes, out_planes, kernel_size=1, stride=block_stride, bias=False),
                nn.BatchNorm3d(out_planes),
            )
        common = dict(inplanes=inplanes, planes=planes, conv_builder=conv_builder, stride=block_stride)
        name = f"layer{stage}.{index}.srtg"
        if spec.is_simple:
            block = SimpleBlock(**common, downsample=downsample, srtg=srtg, name=name)
        else:
            block = Bottleneck(**common, expansion=expansion, downsample=downsample, srtg=srtg, name=name)
        blocks.append(block)
        inplanes = out_planes
    return nn.Sequential(*blocks), inplanes


def build_resnet3d(spec: ResNet3DSpec, *, num_classes: int, width_mult: float = 1.0) -> VideoResNet3D:
    """Build the ResNet3D described by ``spec`` (channels scaled by ``width_mult`` for proxies)."""
    conv_builder: ConvBuilder = Conv3DSimple if spec.conv == "r3d" else Conv2Plus1D
    expansion = 1 if spec.is_simple else spec.bottleneck_expansion
    stem_planes = scale_channels(64, width_mult)
    if spec.conv == "r3d":
        stem: nn.Module = R3DStem(stem_planes)
    else:
        stem = R2Plus1DStem(stem_planes, scale_channels(45, width_mult))
    stages = []
    inplanes = stem_planes
    for stage, (planes, num_blocks) in enumerate(zip(STAGE_PLANES, STAGE_BLOCKS[spec.depth]), start=1):
        layer, inplanes = _make_stage(
            stage=stage,
            inplanes=inplanes,
            planes=scale_channels(planes, width_mult),
            num_blocks=num_blocks,
            stride=1 if stage == 1 else 2,
            spec=spec,
            conv_builder=conv_builder,
            expansion=expansion,
        )
        stages.append(layer)
    return VideoResNet3D(stem=stem, stages=stages, head_in=inplanes, num_classes=num_classes)
