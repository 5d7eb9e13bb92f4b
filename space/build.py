"""``build_model``: the one entry point from a spec to an ``nn.Module``."""

from __future__ import annotations

from torch import nn

from space.spec import ArchSpec, MTNetSpec, ResNet3DSpec, SpecError


def build_model(spec: ArchSpec, num_classes: int = 400, width_mult: float = 1.0) -> nn.Module:
    """Build ``spec`` with ``num_classes`` outputs; ``width_mult`` < 1 gives a proxy of the same topology."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise SpecError(f"num_classes={num_classes!r} is not allowed; allowed: an integer >= 1")
    if not 0 < width_mult <= 1:
        raise SpecError(f"width_mult={width_mult!r} is not allowed; allowed: 0 < width_mult <= 1")
    if isinstance(spec, ResNet3DSpec):
        from space.resnet3d import build_resnet3d

        return build_resnet3d(spec, num_classes=num_classes, width_mult=width_mult)
    if isinstance(spec, MTNetSpec):
        from space.mtnet import build_mtnet

        return build_mtnet(spec, num_classes=num_classes, width_mult=width_mult)
    raise SpecError(f"cannot build {type(spec).__name__}; allowed: ResNet3DSpec, MTNetSpec")


def validate_buildable(spec: ArchSpec, width_mult: float = 1.0) -> None:
    """Raise :class:`SpecError` if ``spec`` cannot be built at ``width_mult`` (meta device: no memory used)."""
    import torch

    with torch.device("meta"):
        build_model(spec, num_classes=2, width_mult=width_mult)
