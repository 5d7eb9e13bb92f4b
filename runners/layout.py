"""The memory layout a model trains in: channels-last-3d where it was measured to be faster.

oneDNN (the CPU convolution backend) runs 3D convolutions in a channels-last layout internally; with the
default (contiguous) layout every convolution reorders its input, output and gradients. Keeping weights and
activations channels-last removes those reorders. ``nas bench throughput`` measured, single thread, proxy
32 x 3 x 8 x 32 x 32 at width 0.25, forward + backward + SGD: r(2+1)d-18 about 20% faster, r3d-18 about 8%,
srtg-r3d-18 about 10%, and MTNet-32 unchanged (its many small grouped and 1x1x1 convolutions, pools and
recurrent cells gain nothing), so only the ResNet families switch, and only on CPU (unmeasured on CUDA).

Converting the model is enough: a convolution with channels-last weights returns channels-last outputs,
so the activations follow. The results are the same within float rounding (tests/runners/test_layout.py).
"""

from __future__ import annotations

import torch
from torch import nn

from space import ArchSpec, ResNet3DSpec

__all__ = ["training_memory_format", "to_training_layout"]


def training_memory_format(spec: ArchSpec, device: torch.device) -> torch.memory_format:
    """channels_last_3d for a ResNet3D (with or without SRTG) on CPU; contiguous otherwise."""
    if device.type == "cpu" and isinstance(spec, ResNet3DSpec):
        return torch.channels_last_3d
    return torch.contiguous_format


def to_training_layout(model: nn.Module, spec: ArchSpec, device: torch.device) -> nn.Module:
    """``model`` on ``device`` in the layout it trains fastest in."""
    return model.to(device=device, memory_format=training_memory_format(spec, device))
