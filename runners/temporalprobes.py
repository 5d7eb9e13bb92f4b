"""Temporal-reasoning probes on the synthetic classes: does a model use frame order?

:func:`pair_accuracy` scores a model on the time-reversed class pairs (:func:`reversed_pairs`), where a model
blind to frame order is at chance; :func:`shuffle_frames` destroys frame order while keeping every frame, so
the drop in accuracy it causes measures how much a model relies on order (``docs/data.md``).
"""

from __future__ import annotations

import numpy as np

from runners.clips import ClipSet
from runners.syntheticparams import CLASS_NAMES


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
