"""``synthetic``: the embedded temporal-action dataset (``docs/data.md``), generated procedurally, no download.

Every class is a motion pattern of one *target* object, and classes come in **time-reversed pairs**
(``move_right``/``move_left``, ``grow``/``shrink``, ``appear``/``vanish``, ...). A clip of the second class of
a pair is, by construction, the exact time-reversal of a clip of the first class: every time-varying
quantity of a clip is a function of an integer *progress* ``k(t) = clip(t - onset, 0, duration)`` (or
``duration - k(t)`` for the reversed class), of per-frame noise indices, and of distractors built the same
way. Reversing time maps ``onset -> frames - 1 - onset - duration``, flips every direction bit and reverses
the noise indices (:func:`mirror_params`), and :func:`render` of the mirrored parameters gives the reversed
clip byte for byte. Because the parameter distribution is invariant under that mirror, the *set* of frames
of a clip carries no information about which class of a pair it belongs to: a model that sees frames as an
unordered set is at chance on the pairs, and only temporal modelling beats 50%.

Onset, duration (so speed) and path vary per clip (the papers' motivation: the same action performed over
different durations). Static clutter, smaller moving distractors and per-frame noise keep small proxies
from saturating. Generation is vectorised numpy over a batch of clips (no Python loop over clips or
frames) and deterministic by seed: the same arguments give the same bytes on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from runners.clips import ClipSet
from space.errors import UserInputError

__all__ = [
    "CLASS_NAMES",
    "SyntheticConfig",
    "SyntheticParams",
    "generate_synthetic",
    "synthetic_splits",
    "sample_params",
    "mirror_params",
    "render",
    "reversed_pairs",
    "pair_accuracy",
    "shuffle_frames",
]

# One motion family per reversed pair: class 2*i plays family i forward, class 2*i + 1 plays it backward.
FAMILIES = ("slide_x", "slide_y", "scale", "reveal", "orbit", "converge")
CLASS_NAMES = (
    "move_right", "move_left",
    "move_down", "move_up",
    "grow", "shrink",
    "appear", "vanish",
    "orbit_cw", "orbit_ccw",
    "merge", "split",
)  # fmt: skip

_NOISE_BANK_FRAMES = 64
_DITHER_BANK_MAPS = 16
_CHUNK = 128  # clips rendered at once: large enough to amortise numpy overhead, small enough to stay in cache


class SyntheticDataError(UserInputError):
    """Bad synthetic-dataset arguments (class count, frames, size, clip count)."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic dataset; the defaults are what the demo and the search use.

    ``clutter``: static rectangles in the background; ``distractors``: smaller objects moving across the clip
    with their own onset and duration; ``noise``: amplitude (0-255 scale) of per-frame uniform noise;
    ``min_duration``: shortest action as a fraction of the clip (shorter = faster, harder to see).
    """

    num_classes: int = 12
    frames: int = 16
    size: int = 64
    clutter: int = 4
    distractors: int = 3
    noise: int = 40
    min_duration: float = 0.3

    def __post_init__(self) -> None:
        if not 2 <= self.num_classes <= len(CLASS_NAMES):
            raise SyntheticDataError(
                f"synthetic num_classes={self.num_classes} is not allowed; allowed: 2 to {len(CLASS_NAMES)}"
            )
        if self.frames < 4:
            raise SyntheticDataError(f"synthetic frames={self.frames} is not allowed; allowed: >= 4")
        if self.size < 16:
            raise SyntheticDataError(f"synthetic size={self.size} is not allowed; allowed: >= 16 pixels")
        if not 0 <= self.noise <= 96:
            raise SyntheticDataError(f"synthetic noise={self.noise} is not allowed; allowed: 0 to 96")
        if self.clutter < 0 or self.distractors < 0:
            raise SyntheticDataError("synthetic clutter and distractors must be >= 0")
        if not 0 < self.min_duration <= 1:
            raise SyntheticDataError(f"synthetic min_duration={self.min_duration} is not allowed; allowed: (0, 1]")

    @property
    def classes(self) -> tuple[str, ...]:
        return CLASS_NAMES[: self.num_classes]


@dataclass(frozen=True)
class SyntheticParams:
    """Everything that decides the pixels of ``n`` clips (struct of arrays; ``n`` first everywhere).

    Positions and sizes are integer pixels. Target geometry: ``start`` -> ``end`` (n x 2, x/y) for slides,
    the centre and radius/angles for an orbit, ``size0`` -> ``size1`` for scale, a separation for converge.
    """

    labels: np.ndarray  # n: class index
    onset: np.ndarray  # n: first frame of the action
    duration: np.ndarray  # n: frames the action takes (>= 1)
    start: np.ndarray  # n x 2
    end: np.ndarray  # n x 2
    size0: np.ndarray  # n
    size1: np.ndarray  # n
    angle0: np.ndarray  # n (radians)
    sweep: np.ndarray  # n (radians)
    radius: np.ndarray  # n
    color: np.ndarray  # n x 3 uint8
    dither: np.ndarray  # n: index into the dither bank (reveal family)
    background: np.ndarray  # n x 3 uint8
    clutter_boxes: np.ndarray  # n x K x 4 (x0, y0, x1, y1)
    clutter_colors: np.ndarray  # n x K x 3 uint8
    distractor_start: np.ndarray  # n x D x 2
    distractor_end: np.ndarray  # n x D x 2
    distractor_size: np.ndarray  # n x D
    distractor_onset: np.ndarray  # n x D
    distractor_duration: np.ndarray  # n x D
    distractor_reverse: np.ndarray  # n x D bool
    distractor_color: np.ndarray  # n x D x 3 uint8
    noise_index: np.ndarray  # n x T: which noise-bank frame each frame adds

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, index: np.ndarray | slice) -> "SyntheticParams":
        return SyntheticParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


# --------------------------------------------------------------------------------------------------
# Sampling and mirroring parameters
# --------------------------------------------------------------------------------------------------


def _palette(
    rng: np.random.Generator, shape: tuple[int, ...], config: SyntheticConfig, low: float, high: float
) -> np.ndarray:
    """Random colours with brightness in [low, high) of the range left free by the additive noise.

    The scene is dark and the moving objects bright (the target brightest on average), so what moves stands
    out the way a foreground does; the colours still vary per clip, so colour never names a class.
    """
    top = 256 - config.noise  # head-room: colour + noise never wraps around in uint8
    return rng.integers(int(low * top), int(high * top), size=(*shape, 3), dtype=np.uint8)


def sample_params(rng: np.random.Generator, labels: np.ndarray, config: SyntheticConfig) -> SyntheticParams:
    """Draw clip parameters for the given labels. The distribution is invariant under :func:`mirror_params`."""
    n, t, s = len(labels), config.frames, config.size
    min_d = max(1, int(round(config.min_duration * (t - 1))))
    duration = rng.integers(min_d, t, size=n)  # in [min_d, T - 1]
    onset = (rng.random(n) * (t - duration)).astype(np.int64)  # in [0, T - 1 - duration]: mirror-symmetric

    size0 = rng.integers(int(0.18 * s), int(0.26 * s) + 1, size=n)
    size1 = size0 + rng.integers(int(0.10 * s), int(0.18 * s) + 1, size=n)
    # Slides: travel 40-90% of the free width along the main axis, a little drift on the other.
    travel = rng.uniform(0.4, 0.9, size=n) * (s - size0)
    lo = rng.uniform(0, 1, size=n) * (s - size0 - travel)
    cross = rng.uniform(0, 1, size=n) * (s - size0)
    drift = rng.uniform(-0.08, 0.08, size=n) * s
    start = np.stack([lo, cross], axis=1)
    end = np.stack([lo + travel, np.clip(cross + drift, 0, s - size0)], axis=1)
    family = labels // 2
    vertical = family == FAMILIES.index("slide_y")
    start[vertical] = start[vertical][:, ::-1]
    end[vertical] = end[vertical][:, ::-1]

    radius = rng.uniform(0.15, 0.25, size=n) * s
    angle0 = rng.uniform(0, 2 * np.pi, size=n)
    sweep = rng.uniform(0.75, 1.5, size=n) * np.pi

    k = config.clutter
    corners = rng.integers(0, s, size=(n, k, 2))
    extents = rng.integers(int(0.06 * s), int(0.2 * s) + 1, size=(n, k, 2))
    clutter_boxes = np.concatenate([corners, np.minimum(corners + extents, s)], axis=2)

    d = config.distractors
    d_low = max(2, int(0.06 * s))  # at the smallest size (16 px) the range would be empty: at least one value
    d_size = rng.integers(d_low, max(d_low, int(0.12 * s)) + 1, size=(n, d))
    d_duration = rng.integers(min_d, t, size=(n, d))
    d_onset = (rng.random((n, d)) * (t - d_duration)).astype(np.int64)

    return SyntheticParams(
        labels=labels.astype(np.int64),
        onset=onset,
        duration=duration,
        start=start.round().astype(np.int64),
        end=end.round().astype(np.int64),
        size0=size0,
        size1=size1,
        angle0=angle0,
        sweep=sweep,
        radius=radius,
        color=_palette(rng, (n,), config, 0.6, 1.0),
        dither=rng.integers(0, _DITHER_BANK_MAPS, size=n),
        background=_palette(rng, (n,), config, 0.0, 0.35),
        clutter_boxes=clutter_boxes,
        clutter_colors=_palette(rng, (n, k), config, 0.0, 0.55),
        distractor_start=rng.integers(0, s, size=(n, d, 2)) - d_size[..., None] // 2,
        distractor_end=rng.integers(0, s, size=(n, d, 2)) - d_size[..., None] // 2,
        distractor_size=d_size,
        distractor_onset=d_onset,
        distractor_duration=d_duration,
        distractor_reverse=rng.random((n, d)) < 0.5,
        distractor_color=_palette(rng, (n, d), config, 0.4, 1.0),
        noise_index=rng.integers(0, _NOISE_BANK_FRAMES, size=(n, t)),
    )


def partner(label: np.ndarray | int) -> np.ndarray | int:
    """The time-reversed class of each label (0 <-> 1, 2 <-> 3, ...)."""
    return label ^ 1


def mirror_params(params: SyntheticParams, frames: int) -> SyntheticParams:
    """The parameters whose clip is the exact time-reversal of ``params``' clip (an involution)."""
    return replace(
        params,
        labels=partner(params.labels),
        onset=frames - 1 - params.onset - params.duration,
        distractor_onset=frames - 1 - params.distractor_onset - params.distractor_duration,
        distractor_reverse=~params.distractor_reverse,
        noise_index=params.noise_index[:, ::-1].copy(),
    )


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Banks:
    """Seeded per-dataset constants: noise frames (T-independent) and dither threshold maps."""

    noise: np.ndarray  # B x S x S x 3 uint8 in [0, noise]
    dither: np.ndarray  # M x S x S uint8 thresholds


def _banks(seed: int, config: SyntheticConfig) -> _Banks:
    rng = np.random.default_rng([seed, 0xB4A7])
    s = config.size
    noise = rng.integers(0, config.noise + 1, size=(_NOISE_BANK_FRAMES, s, s, 3), dtype=np.uint8)
    dither = rng.integers(0, 256, size=(_DITHER_BANK_MAPS, s, s), dtype=np.uint8)
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


# --------------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------------


def balanced_labels(rng: np.random.Generator, num_clips: int, num_classes: int) -> np.ndarray:
    """Labels with every class equally often (to within one), in random order."""
    return rng.permutation(np.arange(num_clips) % num_classes)


def generate_synthetic(num_clips: int, config: SyntheticConfig = SyntheticConfig(), *, seed: int = 0) -> ClipSet:
    """``num_clips`` class-balanced clips; the same (num_clips, config, seed) gives the same bytes."""
    if num_clips < 1:
        raise SyntheticDataError(f"synthetic num_clips={num_clips} is not allowed; allowed: >= 1")
    rng = np.random.default_rng([seed, 0x5E7])
    labels = balanced_labels(rng, num_clips, config.num_classes)
    params = sample_params(rng, labels, config)
    return ClipSet(render(params, config, seed), params.labels, config.classes)


def synthetic_splits(
    *, train: int, val: int, test: int = 0, config: SyntheticConfig = SyntheticConfig(), seed: int = 0
) -> dict[str, ClipSet]:
    """Independent train / val / test sets (distinct seeds derived from ``seed``; empty sets are left out)."""
    sizes = {"train": train, "val": val, "test": test}
    return {
        name: generate_synthetic(count, config, seed=seed * 3 + offset)
        for offset, (name, count) in enumerate(sizes.items())
        if count > 0
    }


# --------------------------------------------------------------------------------------------------
# Temporal-reasoning probes
# --------------------------------------------------------------------------------------------------


def reversed_pairs(classes: tuple[str, ...]) -> list[tuple[int, int]]:
    """Index pairs (forward, reversed) of the synthetic classes whose partner is present."""
    return [(i, i + 1) for i in range(0, len(classes) - 1, 2) if classes[i : i + 2] == CLASS_NAMES[i : i + 2]]


def pair_accuracy(logits: np.ndarray, labels: np.ndarray, pairs: list[tuple[int, int]]) -> tuple[float, int]:
    """Over clips of paired classes: how often the true class outscores its time-reversed partner.

    A model blind to frame order scores 50% in expectation; returns (accuracy, number of clips).
    """
    partner_of = {a: b for a, b in pairs} | {b: a for a, b in pairs}
    keep = np.array([int(y) in partner_of for y in labels])
    if not keep.any():
        raise ValueError("no clip belongs to a reversed pair")
    y = labels[keep].astype(np.int64)
    other = np.array([partner_of[int(v)] for v in y])
    scores = logits[keep]
    correct = scores[np.arange(len(y)), y] > scores[np.arange(len(y)), other]
    return float(correct.mean()), int(len(y))


def shuffle_frames(clips: ClipSet, *, seed: int) -> ClipSet:
    """The same clips with each clip's frames in a random order (destroys temporal order, keeps content)."""
    rng = np.random.default_rng(seed)
    n, t = clips.videos.shape[:2]
    order = np.argsort(rng.random((n, t)), axis=1)
    videos = np.take_along_axis(clips.videos, order[:, :, None, None, None], axis=1)
    return ClipSet(videos, clips.labels, clips.classes)
