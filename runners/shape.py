"""The input shape every cost figure is measured at: ``TxHxW`` text to a tuple, and the ``1x3xTxHxW`` label.

Kept apart from :mod:`runners.costs` (which imports torch) so the CLI can parse and default a shape without
loading torch (docs/architecture.md, "Startup"); :mod:`runners.costs` re-exports both functions.
"""

from __future__ import annotations

import re

from space.errors import UserInputError

__all__ = ["MAX_FRAMES", "MAX_SIDE", "Shape", "parse_shape", "shape_label"]

Shape = tuple[int, int, int]

MAX_FRAMES, MAX_SIDE = 512, 1024  # far above any clip we train or deploy; 4096^3 overflowed torch's int64 sizes


def parse_shape(text: str) -> Shape:
    """``"16x112x112"`` -> ``(16, 112, 112)`` (T x H x W); anything else is a :class:`UserInputError`."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(g) for g in match.groups()) < 1:
        raise UserInputError(f"shape {text!r} is not allowed; allowed: TxHxW with positive integers, e.g. 16x112x112")
    t, h, w = (int(g) for g in match.groups())
    if t > MAX_FRAMES or max(h, w) > MAX_SIDE:
        raise UserInputError(f"shape {text!r} is not allowed; allowed: T <= {MAX_FRAMES} frames, H and W <= {MAX_SIDE} pixels")
    return (t, h, w)


def shape_label(shape: Shape, batch: int = 1) -> str:
    """The input label every figure carries: ``1x3x16x112x112``."""
    return "x".join(str(v) for v in (batch, 3, *shape))
