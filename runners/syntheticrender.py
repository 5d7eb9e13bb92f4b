"""Rendering synthetic clips: the pixels of the clips a :class:`~runners.syntheticparams.SyntheticParams` describes.

Vectorised numpy over chunks of clips (no Python loop over clips or frames): a still background with clutter,
per-frame noise from a seeded bank, distractors, then the class-defining target of each motion family. Every
time-varying quantity is an exact integer function of the progress ``k(t)``, so the mirrored parameters
render the time-reversed clip byte for byte (:mod:`runners.synthetic`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runners.syntheticparams import (
    DITHER_BANK_MAPS,
    NOISE_BANK_FRAMES,
    FAMILIES,
    SyntheticConfig,
    SyntheticParams,
)

_CHUNK = 128  # clips rendered at once: large enough to amortise numpy overhead, small enough to stay in cache


@dataclass(frozen=True)
class _Banks:
    """Seeded per-dataset constants: noise frames (T-independent) and dither threshold maps."""

    noise: np.ndarray  # B x S x S x 3 uint8 in [0, noise]
    dither: np.ndarray  # M x S x S uint8 thresholds


def _banks(seed: int, config: SyntheticConfig) -> _Banks:
    rng = np.random.default_rng([seed, 0xB4A7])
    s = config.size
    noise = rng.integers(0, config.noise + 1, size=(NOISE_BANK_FRAMES, s, s, 3), dtype=np.uint8)
    dither = rng.integers(0, 256, size=(DITHER_BANK_MAPS, s, s), dtype=np.uint8)
    return _Banks(noise=noise, dither=dither)


def _progress(onset: np.ndarray, duration: np.ndarray, reverse: np.ndarray, frames: int) -> np.ndarray:
    """Integer progress k(t) in [0, duration] (... x T); reversed elements count down instead of up."""
    t = np.arange(frames)
    k = np.clip(t - onset[..., None], 0, duration[..., None])
    return np.where(reverse[..., None], duration[..., None] - k, k)


def _lerp(a: np.ndarray, b: np.ndarray, k: np.ndarray, d: np.ndarray) -> np.ndarray:
    """a + (b - a) * k / d in exact integer arithmetic (a, b, d: ...; k: ... x T)."""
    return a[..., None] + ((b - a)[..., None] * k) // d[..., None]


@dataclass(frozen=True)
class _Canvas:
    """A chunk of clips being drawn: ``pixels`` n x T x S x S x 3 plus what painting needs to add noise."""

    pixels: np.ndarray
    noise_index: np.ndarray | None  # n x T (None: paint without noise)
    banks: _Banks

    def paint_boxes(
        self,
        clips: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        width: np.ndarray,
        height: np.ndarray,
        color: np.ndarray,
        reveal: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Paint one box per (clip, frame) of ``clips`` (box corners x, y: len(clips) x T; sizes broadcastable).

        Boxes are small, so only the pixels they cover are touched: the covered pixels' flat indices are
        computed for all clips and frames at once and written in one scatter (with the frame's noise added).
        ``reveal`` = (dither maps m x S x S, progress k m x T, duration m): keep a pixel iff its dither
        threshold * duration < 256 * k (the appear/vanish family).
        """
        n, t, s = self.pixels.shape[:3]
        width = np.broadcast_to(width, x.shape)
        height = np.broadcast_to(height, x.shape)
        extent = int(max(width.max(initial=0), height.max(initial=0)))
        if extent <= 0 or len(clips) == 0:
            return
        offsets = np.arange(extent)
        ys = y[..., None] + offsets  # m x T x e
        xs = x[..., None] + offsets
        ok_y = (offsets < height[..., None]) & (ys >= 0) & (ys < s)
        ok_x = (offsets < width[..., None]) & (xs >= 0) & (xs < s)
        keep = ok_y[..., :, None] & ok_x[..., None, :]  # m x T x e x e
        rows = (ys * s)[..., :, None]
        cols = xs[..., None, :]
        if reveal is not None:
            maps, k, duration = reveal
            member_map = (np.arange(len(clips)) * (s * s))[:, None, None, None]
            where = (member_map + rows.clip(0, s * s - s) + cols.clip(0, s - 1))
            thresholds = maps.reshape(-1)[np.where(keep, where, 0)].astype(np.int32)
            keep &= thresholds * duration[:, None, None, None] < 256 * k[..., None, None]
        frame = (clips[:, None] * t + np.arange(t))[..., None, None] * (s * s)  # m x T x 1 x 1
        target = (frame + rows + cols)[keep]
        member = np.broadcast_to(np.arange(len(clips))[:, None, None, None], keep.shape)[keep]
        value = color[member]
        if self.noise_index is not None:
            noise_frame = self.noise_index[clips][..., None, None] * (s * s)
            value += self.banks.noise.reshape(-1, 3)[(noise_frame + rows + cols)[keep]]
        self.pixels.reshape(-1, 3)[target] = value


def _paint_target(canvas: _Canvas, clips: np.ndarray, p: SyntheticParams) -> None:
    """Paint the class-defining object(s) of ``clips``, which all belong to one family (``p`` = their params)."""
    frames, s = canvas.pixels.shape[1], canvas.pixels.shape[2]
    family = FAMILIES[int(p.labels[0]) // 2]
    k = _progress(p.onset, p.duration, (p.labels % 2).astype(bool), frames)  # m x T
    d = p.duration
    if family in ("slide_x", "slide_y"):
        x = _lerp(p.start[:, 0], p.end[:, 0], k, d)
        y = _lerp(p.start[:, 1], p.end[:, 1], k, d)
        size = p.size0[:, None]
        canvas.paint_boxes(clips, x, y, size, size, p.color)
    elif family == "scale":
        size = _lerp(p.size0, p.size1, k, d)
        half = p.size1[:, None] // 2
        cx = np.minimum(p.start[:, :1] + half, s - 1 - half)
        cy = np.minimum(p.start[:, 1:] + half, s - 1 - half)
        canvas.paint_boxes(clips, cx - size // 2, cy - size // 2, size, size, p.color)
    elif family == "reveal":
        size = p.size1[:, None]
        x = np.broadcast_to(p.start[:, :1], k.shape)
        y = np.broadcast_to(p.start[:, 1:], k.shape)
        maps = canvas.banks.dither[p.dither]
        canvas.paint_boxes(clips, x, y, size, size, p.color, reveal=(maps, k, d))
    elif family == "orbit":
        angle = p.angle0[:, None] + p.sweep[:, None] * k / d[:, None]
        size = p.size0[:, None]
        cx = s / 2 + (p.start[:, :1] - s / 2) * 0.25
        cy = s / 2 + (p.start[:, 1:] - s / 2) * 0.25
        x = np.rint(cx + p.radius[:, None] * np.cos(angle) - size / 2).astype(np.int64)
        y = np.rint(cy + p.radius[:, None] * np.sin(angle) - size / 2).astype(np.int64)
        canvas.paint_boxes(clips, x, y, size, size, p.color)
    elif family == "converge":
        # Two objects approach each other along x ("merge"); the reversed class moves them apart ("split").
        size = p.size0[:, None]
        far = (s // 2 - 1 - p.size0).clip(min=1)
        gap = _lerp(far, np.zeros_like(far), k, d) + 1  # half-distance between the inner edges
        y = np.broadcast_to(np.clip(p.start[:, 1:], 0, s - size), k.shape)
        canvas.paint_boxes(clips, s // 2 - gap - size, y, size, size, p.color)
        canvas.paint_boxes(clips, s // 2 + gap, y, size, size, p.color)
    else:  # pragma: no cover - FAMILIES and this function are edited together
        raise AssertionError(family)


def render(
    params: SyntheticParams, config: SyntheticConfig, seed: int, *, out: np.ndarray | None = None
) -> np.ndarray:
    """Pixels of the clips ``params`` describes: uint8 n x T x S x S x 3. ``seed`` picks the noise/dither banks.

    ``out``: an existing uint8 array of that shape to fill (e.g. a memory map), instead of a new one.
    """
    banks = _banks(seed, config)
    n, t, s = len(params), config.frames, config.size
    shape = (n, t, s, s, 3)
    if out is not None and (out.shape != shape or out.dtype != np.uint8):
        raise ValueError(f"out must be uint8 {shape}, got {out.dtype} {out.shape}")
    videos = np.empty(shape, dtype=np.uint8) if out is None else out
    for lo in range(0, n, _CHUNK):
        chunk = params.take(slice(lo, lo + _CHUNK))
        _render_chunk(videos[lo : lo + len(chunk)], chunk, banks)
    return videos


def _render_chunk(out: np.ndarray, p: SyntheticParams, banks: _Banks) -> None:
    n, t, s = out.shape[:3]
    # Static background: a flat colour plus clutter rectangles, drawn once per clip (no noise yet).
    still = np.empty((n, 1, s, s, 3), dtype=np.uint8)
    still[:] = p.background[:, None, None, None, :]
    flat = _Canvas(still, None, banks)
    for j in range(p.clutter_boxes.shape[1]):
        x0, y0, x1, y1 = (p.clutter_boxes[:, j, i, None] for i in range(4))
        flat.paint_boxes(np.arange(n), x0, y0, x1 - x0, y1 - y0, p.clutter_colors[:, j])
    # Every frame: the still background plus that frame's noise (one pass over the output).
    still_rows = still.reshape(n, -1)
    noise_rows = banks.noise.reshape(len(banks.noise), -1)
    out_rows = out.reshape(n, t, -1)
    for i in range(t):
        np.add(still_rows, np.take(noise_rows, p.noise_index[:, i], axis=0), out=out_rows[:, i])

    canvas = _Canvas(out, p.noise_index, banks)
    everyone = np.arange(n)
    for j in range(p.distractor_size.shape[1]):
        k = _progress(p.distractor_onset[:, j], p.distractor_duration[:, j], p.distractor_reverse[:, j], t)
        dur = p.distractor_duration[:, j]
        x = _lerp(p.distractor_start[:, j, 0], p.distractor_end[:, j, 0], k, dur)
        y = _lerp(p.distractor_start[:, j, 1], p.distractor_end[:, j, 1], k, dur)
        size = p.distractor_size[:, j, None]
        canvas.paint_boxes(everyone, x, y, size, size, p.distractor_color[:, j])

    family = p.labels // 2
    for f in np.unique(family):
        members = np.flatnonzero(family == f)
        _paint_target(canvas, members, p.take(members))
