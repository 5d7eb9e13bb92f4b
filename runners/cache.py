"""The prepared clip cache: decode a dataset once, train from memory-mapped uint8 arrays ever after (``docs/data.md``).

``prepare_dataset(...)`` writes into ``out``::

    manifest.json            what is inside (see below)
    train_videos.npy         uint8 N x T x S x S x 3, memory-mappable (np.load(..., mmap_mode="r"))
    train_labels.npy         int64 N
    val_videos.npy / val_labels.npy / test_videos.npy / test_labels.npy

The manifest records the dataset, source root, split, clip shape, classes, per-split counts and class counts,
the validation fraction and seed, and every skipped file with its reason. More than ``max_skipped`` (default 5%)
of the listed files unreadable is an error: the cache is not written. Work happens in ``out/.partial`` and is
moved into place only when complete, so an interrupted run never leaves a cache that looks valid.

``open_cache(dir)`` returns ``{"train": ClipSet, "val": ClipSet, "test": ClipSet}`` backed by memory maps, so
many trials (or Ray workers on one machine) share the page cache instead of copies.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from runners.clips import ClipSet
from runners.datasets import DATASET_NAMES, DatasetError, VideoEntry, carve_validation, index_dataset
from runners.synthetic import SyntheticConfig, synthetic_splits
from runners.video import VideoDecodeError, decode_clip
from space.errors import UserInputError

__all__ = ["prepare_dataset", "open_cache", "read_manifest", "CacheError", "SPLITS", "MANIFEST_NAME"]

SPLITS = ("train", "val", "test")
MANIFEST_NAME = "manifest.json"
FORMAT = "videonas-clip-cache"
VERSION = 1

Progress = Callable[[int, int, str], None]

_log = logging.getLogger(__name__)


def _log_skip(path: str, reason: str) -> None:
    _log.warning("skipped unreadable video %s (%s)", path, reason)


class CacheError(UserInputError):
    """A cache folder that is missing, incomplete, or would be overwritten."""


@dataclass(frozen=True)
class _Skipped:
    path: str
    split: str
    reason: str


def prepare_dataset(
    name: str,
    *,
    out: str | Path,
    frames: int,
    size: int,
    root: str | Path | None = None,
    split: int = 1,
    val_fraction: float = 0.1,
    seed: int = 0,
    max_skipped: float = 0.05,
    synthetic: SyntheticConfig | None = None,
    synthetic_clips: int = 3000,
    overwrite: bool = False,
    progress: Progress | None = None,
    warn: Callable[[str, str], None] | None = None,
) -> dict:
    """Decode dataset ``name`` into a clip cache in ``out``; returns the manifest (also written as JSON).

    ``synthetic`` needs no root: ``synthetic_clips`` training clips plus a quarter as many validation and
    test clips are generated (with ``frames`` and ``size`` overriding the config's). ``progress(done, total,
    current_path)`` is called after each video; ``warn(path, reason)`` for each skipped one (default: a
    ``logging`` warning).
    """
    if name not in DATASET_NAMES:
        raise DatasetError(f"unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)}")
    if frames < 1 or size < 8:
        raise UserInputError(f"--frames {frames} --size {size} is not allowed; allowed: frames >= 1, size >= 8")
    if not 0 <= max_skipped < 1:
        raise UserInputError(f"max_skipped={max_skipped} is not allowed; allowed: 0 <= fraction < 1")
    out = Path(out)
    if (out / MANIFEST_NAME).exists() and not overwrite:
        raise CacheError(f"{str(out)!r} already holds a prepared dataset; choose another --out or pass --overwrite")
    partial = out / ".partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        if name == "synthetic":
            manifest = _prepare_synthetic(partial, frames, size, seed, synthetic, synthetic_clips, progress)
        else:
            if root is None:
                raise DatasetError(f"--root is required for dataset {name!r}")
            manifest = _prepare_real(
                name, Path(root), partial, frames, size, split, val_fraction, seed, max_skipped, progress,
                warn or _log_skip,
            )
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _write_json(partial / MANIFEST_NAME, manifest)
    for item in partial.iterdir():
        target = out / item.name
        if target.exists():
            target.unlink()
        item.replace(target)
    partial.rmdir()
    return manifest


def _prepare_real(
    name: str, root: Path, folder: Path, frames: int, size: int, split: int, val_fraction: float, seed: int,
    max_skipped: float, progress: Progress | None, warn: Callable[[str, str], None],
) -> dict:  # fmt: skip
    index = index_dataset(name, root, split=split)
    train, val = carve_validation(index.train, fraction=val_fraction, seed=seed)
    parts = {"train": train, "val": val, "test": list(index.test)}
    total = sum(len(v) for v in parts.values())
    budget = int(max_skipped * total)  # skipping more than this many files is an error
    skipped: list[_Skipped] = []
    done = 0
    for split_name, entries in parts.items():

        def on_skip(entry: VideoEntry, reason: str, split_name: str = split_name) -> None:
            skipped.append(_Skipped(str(entry.path), split_name, reason))
            warn(str(entry.path), reason)
            if len(skipped) > budget:
                raise DatasetError(
                    f"{name}: {len(skipped)} of {total} videos are unreadable (more than {max_skipped:.0%}); "
                    f"last: {entry.path} ({reason}); check --root or raise --max-skipped"
                )

        def on_done(entry: VideoEntry) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total, str(entry.path))

        _decode_split(folder, split_name, entries, frames, size, on_skip, on_done)
    return _manifest(
        dataset=name, classes=index.classes, folder=folder, frames=frames, size=size,
        source={"root": str(root.resolve()), "split": split, "listed": total},
        val_fraction=val_fraction, seed=seed, skipped=skipped, max_skipped=max_skipped,
    )  # fmt: skip


def _decode_split(
    folder: Path, split_name: str, entries: list[VideoEntry], frames: int, size: int,
    on_skip: Callable[[VideoEntry, str], None], on_done: Callable[[VideoEntry], None],
) -> int:  # fmt: skip
    """Decode ``entries`` into ``<split>_videos.npy`` (skipped files dropped); returns the number kept."""
    scratch = folder / f"{split_name}_videos.scratch.npy"
    videos = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8, shape=(len(entries), frames, size, size, 3))
    labels = []
    kept = 0
    for entry in entries:
        try:
            videos[kept] = decode_clip(entry.path, frames=frames, size=size, start=entry.start, end=entry.end)
        except VideoDecodeError as exc:
            on_skip(entry, str(exc))
        else:
            labels.append(entry.label)
            kept += 1
        on_done(entry)
    final = np.lib.format.open_memmap(
        folder / f"{split_name}_videos.npy", mode="w+", dtype=np.uint8, shape=(kept, frames, size, size, 3)
    )
    for lo in range(0, kept, 256):
        final[lo : lo + 256] = videos[lo : min(lo + 256, kept)]
    final.flush()
    del videos, final
    scratch.unlink()
    np.save(folder / f"{split_name}_labels.npy", np.asarray(labels, dtype=np.int64))
    return kept


def _prepare_synthetic(
    folder: Path, frames: int, size: int, seed: int, config: SyntheticConfig | None, clips: int,
    progress: Progress | None,
) -> dict:  # fmt: skip
    base = config or SyntheticConfig()
    config = SyntheticConfig(**{**base.__dict__, "frames": frames, "size": size})
    sets = synthetic_splits(train=clips, val=max(clips // 4, 1), test=max(clips // 4, 1), config=config, seed=seed)
    total = sum(len(s) for s in sets.values())
    done = 0
    for split_name, clip_set in sets.items():
        np.save(folder / f"{split_name}_videos.npy", clip_set.videos)
        np.save(folder / f"{split_name}_labels.npy", clip_set.labels)
        done += len(clip_set)
        if progress is not None:
            progress(done, total, split_name)
    return _manifest(
        dataset="synthetic", classes=config.classes, folder=folder, frames=frames, size=size,
        source={"synthetic": config.__dict__, "train_clips": clips}, val_fraction=None, seed=seed,
        skipped=[], max_skipped=0.0,
    )  # fmt: skip


def _manifest(
    *, dataset: str, classes: tuple[str, ...], folder: Path, frames: int, size: int, source: dict,
    val_fraction: float | None, seed: int, skipped: list[_Skipped], max_skipped: float,
) -> dict:  # fmt: skip
    splits = {}
    for split_name in SPLITS:
        labels = np.load(folder / f"{split_name}_labels.npy")
        counts = np.bincount(labels, minlength=len(classes))
        splits[split_name] = {
            "count": int(len(labels)),
            "videos": f"{split_name}_videos.npy",
            "labels": f"{split_name}_labels.npy",
            "class_counts": {c: int(n) for c, n in zip(classes, counts)},
        }
    return {
        "format": FORMAT,
        "version": VERSION,
        "dataset": dataset,
        "classes": list(classes),
        "clip_shape": [frames, size, size, 3],
        "shape_note": "uint8 N x T x H x W x 3 (RGB)",
        "splits": splits,
        "skipped_count": len(skipped),
        "skipped": [s.__dict__ for s in skipped],
        "max_skipped": max_skipped,
        "val_fraction": val_fraction,
        "seed": seed,
        "source": source,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a prepared cache; a folder without one is a :class:`CacheError`."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise CacheError(f"{str(folder)!r} is not a prepared dataset (no {MANIFEST_NAME}); run `nas data prepare`")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise CacheError(f"{str(path)!r} is not a videonas clip cache manifest")
    return manifest


def open_cache(folder: str | Path) -> dict[str, ClipSet]:
    """``{"train", "val", "test"} -> ClipSet`` over read-only memory maps of a prepared cache."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    classes = tuple(manifest["classes"])
    sets = {}
    for split_name, info in manifest["splits"].items():
        videos = np.load(folder / info["videos"], mmap_mode="r")
        labels = np.load(folder / info["labels"])
        if len(videos) != info["count"] or len(labels) != info["count"]:
            raise CacheError(f"{str(folder)!r}: {split_name} arrays do not match the manifest (re-run prepare)")
        sets[split_name] = ClipSet(videos, labels, classes)
    return sets
