"""The synthetic dataset's classes and the parameters that decide a clip's pixels (:mod:`runners.synthetic`).

:func:`sample_params` draws every clip's parameters from a distribution that :func:`mirror_params` (time
reversal: the same clip played backwards, labelled with the partner class) leaves unchanged; that invariance
is what makes frame order the only cue between the two classes of a pair (``docs/data.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from space.errors import UserInputError

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

# Sizes of the seeded banks a clip's noise frames and dither maps are drawn from (:mod:`runners.syntheticrender`).
NOISE_BANK_FRAMES = 64
DITHER_BANK_MAPS = 16


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
    start, end = _slide_path(rng, labels, size0, s)

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
        dither=rng.integers(0, DITHER_BANK_MAPS, size=n),
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
        noise_index=rng.integers(0, NOISE_BANK_FRAMES, size=(n, t)),
    )


def _slide_path(rng: np.random.Generator, labels: np.ndarray, size0: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end corners (n x 2, float) of a slide: travel 40-90% of the free width along the main axis
    (x, or y for the slide_y family), a little drift on the other. Draws in the order :func:`sample_params`
    always has, so a seed keeps giving the same clips."""
    n = len(labels)
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
    return start, end


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
