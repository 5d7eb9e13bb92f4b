"""Looking at a dataset: class counts per split and a PNG grid of a few clips per class (``nas data inspect``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runners.cache import open_cache, read_manifest
from runners.clips import ClipSet
from runners.datasets import REAL_DATASETS, DatasetError, carve_validation, index_dataset
from runners.synthetic import SyntheticConfig, generate_synthetic
from runners.video import VideoDecodeError, decode_clip

__all__ = ["DatasetSummary", "summarize_cache", "summarize_dataset", "write_clip_grid"]


@dataclass(frozen=True)
class DatasetSummary:
    """Class counts per split and a few example clips (``examples``: up to ``per_class`` clips of each class)."""

    name: str
    classes: tuple[str, ...]
    counts: dict[str, dict[str, int]]  # split -> class -> clips
    examples: ClipSet
    skipped: int = 0


def _examples(clips: ClipSet, per_class: int) -> ClipSet:
    labels = np.asarray(clips.labels)
    picks = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(clips.num_classes)])
    picks = np.sort(picks.astype(np.int64))
    return ClipSet(np.asarray(clips.videos[picks]), labels[picks], clips.classes)


def _class_counts(labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, int]:
    return {c: int(n) for c, n in zip(classes, np.bincount(np.asarray(labels), minlength=len(classes)))}


def summarize_cache(folder: str | Path, *, per_class: int = 3) -> DatasetSummary:
    """Summary of a prepared cache (reads the manifest and a few clips through the memory map)."""
    manifest = read_manifest(folder)
    sets = open_cache(folder)
    counts = {split: _class_counts(s.labels, s.classes) for split, s in sets.items()}
    return DatasetSummary(
        manifest["dataset"], tuple(manifest["classes"]), counts, _examples(sets["train"], per_class),
        skipped=int(manifest["skipped_count"]),
    )  # fmt: skip


def summarize_dataset(
    name: str, *, root: str | Path | None = None, split: int = 1, frames: int = 8, size: int = 64,
    per_class: int = 3, val_fraction: float = 0.1, seed: int = 0, synthetic: SyntheticConfig | None = None,
) -> DatasetSummary:  # fmt: skip
    """Summary of a dataset read in place: counts from its split files, ``per_class`` clips decoded per class."""
    if name == "synthetic":
        config = SyntheticConfig(**{**(synthetic or SyntheticConfig()).__dict__, "frames": frames, "size": size})
        clips = generate_synthetic(per_class * config.num_classes, config, seed=seed)
        return DatasetSummary(name, clips.classes, {"generated": _class_counts(clips.labels, clips.classes)}, clips)
    if name not in REAL_DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; allowed: synthetic, {', '.join(REAL_DATASETS)}")
    if root is None:
        raise DatasetError(f"--root is required for dataset {name!r}")
    index = index_dataset(name, root, split=split)
    train, val = carve_validation(index.train, fraction=val_fraction, seed=seed)
    counts = {}
    for split_name, entries in (("train", train), ("val", val), ("test", index.test)):
        counts[split_name] = _class_counts(np.array([e.label for e in entries], dtype=np.int64), index.classes)
    videos, labels, skipped = [], [], 0
    for label in range(len(index.classes)):
        members = [e for e in train if e.label == label]
        taken = 0
        for entry in members:
            if taken == per_class:
                break
            try:
                videos.append(decode_clip(entry.path, frames=frames, size=size, start=entry.start, end=entry.end))
            except VideoDecodeError:
                skipped += 1
                continue
            labels.append(label)
            taken += 1
    shape = (0, frames, size, size, 3)
    examples = ClipSet(np.stack(videos) if videos else np.zeros(shape, np.uint8), np.array(labels, np.int64), index.classes)
    return DatasetSummary(name, index.classes, counts, examples, skipped=skipped)


def write_clip_grid(clips: ClipSet, path: str | Path, *, frames_shown: int = 4, max_classes: int = 24) -> Path:
    """PNG with one row per class: its example clips side by side, each as ``frames_shown`` frames in time order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(clips.labels)
    classes = [c for c in range(clips.num_classes) if (labels == c).any()][:max_classes]
    per_class = max((int((labels == c).sum()) for c in classes), default=1)
    t, h, w = clips.clip_shape
    shown = np.linspace(0, t - 1, min(frames_shown, t)).round().astype(int)
    gap = 2
    strip_w = len(shown) * w + gap * 3
    canvas = np.full((max(len(classes), 1) * (h + gap), max(per_class, 1) * strip_w, 3), 255, np.uint8)
    for row, c in enumerate(classes):
        for col, i in enumerate(np.flatnonzero(labels == c)):
            strip = np.concatenate([clips.videos[i, f] for f in shown], axis=1)
            y, x = row * (h + gap), col * strip_w
            canvas[y : y + h, x : x + strip.shape[1]] = strip
    height = max(2.0, 0.5 + len(classes) * 0.45 * max(h / 32, 1))
    width = max(4.0, canvas.shape[1] / canvas.shape[0] * height)
    fig, ax = plt.subplots(figsize=(min(width, 30), min(height, 40)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks([row * (h + gap) + h / 2 for row in range(len(classes))])
    ax.set_yticklabels([clips.classes[c] for c in classes], fontsize=8)
    ax.set_xticks([])
    ax.set_title(f"{per_class} clip(s) per class, {len(shown)} of {t} frames each (T x H x W = {t} x {h} x {w})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
