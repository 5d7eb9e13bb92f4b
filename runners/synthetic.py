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

Where the parts live: :mod:`runners.syntheticparams` (the classes and the clip parameters: sampling,
mirroring), :mod:`runners.syntheticrender` (parameters to pixels), :mod:`runners.temporalprobes` (the
pair accuracy and frame-shuffling probes); this module builds the datasets, and its names are the public ones.
"""

from __future__ import annotations

import numpy as np

from runners.clips import ClipSet
from runners.syntheticparams import (
    CLASS_NAMES,
    FAMILIES,
    SyntheticConfig,
    SyntheticDataError,
    SyntheticParams,
    mirror_params,
    partner,
    sample_params,
)
from runners.syntheticrender import render
from runners.temporalprobes import pair_accuracy, reversed_pairs, shuffle_frames

__all__ = [
    "CLASS_NAMES",
    "FAMILIES",
    "SyntheticConfig",
    "SyntheticDataError",
    "SyntheticParams",
    "balanced_labels",
    "generate_synthetic",
    "synthetic_splits",
    "sample_params",
    "mirror_params",
    "partner",
    "render",
    "reversed_pairs",
    "pair_accuracy",
    "shuffle_frames",
]


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
