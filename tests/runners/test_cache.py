"""``prepare_dataset`` / ``open_cache``: real PyAV videos in every layout -> uint8 memory-mapped cache + manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from runners.cache import CacheError, open_cache, prepare_dataset, read_manifest
from runners.datasets import DatasetError, carve_validation, index_dataset
from runners.synthetic import SyntheticConfig
from runners.video import decode_clip
from tests.runners import data_layouts


@pytest.mark.parametrize("layout_name", sorted(data_layouts.BUILDERS))
def test_prepare_every_layout_skips_and_lists_the_corrupt_and_the_empty_file(tmp_path: Path, layout_name: str) -> None:
    layout = data_layouts.BUILDERS[layout_name](tmp_path)
    out = tmp_path / "cache"
    seen = []
    manifest = prepare_dataset(
        layout.name, root=layout.root, out=out, frames=4, size=16, max_skipped=0.4, val_fraction=0.25,
        progress=lambda done, total, path: seen.append((done, total)),
    )  # fmt: skip
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"] == layout.name and manifest["classes"] == list(layout.classes)
    assert manifest["clip_shape"] == [4, 16, 16, 3]
    # exactly the corrupt and the empty video are skipped, with a reason each
    assert manifest["skipped_count"] == layout.bad_entries
    skipped = {Path(s["path"]).name: s["reason"] for s in manifest["skipped"]}
    assert set(skipped) == set(layout.bad)
    assert sorted(r.split(":")[0] for r in skipped.values()) == ["empty file", "unreadable"]
    listed = len(layout.train) + len(layout.test)
    assert manifest["source"]["listed"] == listed
    assert sum(info["count"] for info in manifest["splits"].values()) == listed - layout.bad_entries
    assert seen[-1] == (listed, listed)

    sets = open_cache(out)
    assert set(sets) == {"train", "val", "test"}
    for name, clips in sets.items():
        assert isinstance(clips.videos, np.memmap) and clips.videos.dtype == np.uint8
        assert clips.videos.shape[1:] == (4, 16, 16, 3) and clips.classes == layout.classes
        assert manifest["splits"][name]["count"] == len(clips)
        counts = np.bincount(clips.labels, minlength=len(layout.classes)).tolist()
        assert list(manifest["splits"][name]["class_counts"].values()) == counts
    assert len(sets["val"]) >= 1


def test_cached_clips_are_the_decoded_videos_with_their_labels(tmp_path: Path) -> None:
    layout = data_layouts.ucf101(tmp_path)
    out = tmp_path / "cache"
    prepare_dataset("ucf101", root=layout.root, out=out, frames=4, size=16, max_skipped=0.25, val_fraction=0.25)
    index = index_dataset("ucf101", layout.root)
    train, val = carve_validation(index.train, fraction=0.25, seed=0)
    readable_val = [e for e in val if e.path.name not in layout.bad]
    sets = open_cache(out)
    assert sets["val"].labels.tolist() == [e.label for e in readable_val]
    for i, entry in enumerate(readable_val):
        assert np.array_equal(sets["val"].videos[i], decode_clip(entry.path, frames=4, size=16))
    readable_test = [e for e in index.test if e.path.name not in layout.bad]
    assert sets["test"].labels.tolist() == [e.label for e in readable_test]


def test_too_many_unreadable_files_is_an_error_and_writes_no_cache(tmp_path: Path) -> None:
    layout = data_layouts.hmdb51(tmp_path)  # 2 bad of 12 listed: 17% > 5%
    out = tmp_path / "cache"
    with pytest.raises(DatasetError, match="unreadable"):
        prepare_dataset("hmdb51", root=layout.root, out=out, frames=4, size=16)
    assert not (out / "manifest.json").exists() and not (out / ".partial").exists()
    with pytest.raises(CacheError, match="not a prepared dataset"):
        open_cache(out)


def test_existing_cache_is_not_overwritten_without_asking(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    config = SyntheticConfig(num_classes=4)
    prepare_dataset("synthetic", out=out, frames=8, size=24, synthetic=config, synthetic_clips=16)
    with pytest.raises(CacheError, match="already holds"):
        prepare_dataset("synthetic", out=out, frames=8, size=24, synthetic=config, synthetic_clips=16)
    prepare_dataset("synthetic", out=out, frames=8, size=24, synthetic=config, synthetic_clips=20, overwrite=True)
    assert read_manifest(out)["splits"]["train"]["count"] == 20


def test_synthetic_cache_is_deterministic_and_memory_mapped(tmp_path: Path) -> None:
    config = SyntheticConfig(num_classes=6)
    for name in ("a", "b"):
        prepare_dataset("synthetic", out=tmp_path / name, frames=8, size=24, synthetic=config, synthetic_clips=24, seed=3)
    a, b = open_cache(tmp_path / "a"), open_cache(tmp_path / "b")
    for split in ("train", "val", "test"):
        assert np.asarray(a[split].videos).tobytes() == np.asarray(b[split].videos).tobytes()
        assert a[split].videos.shape[1:] == (8, 24, 24, 3)
    assert len(a["train"]) == 24 and len(a["val"]) == 6 and len(a["test"]) == 6
    assert read_manifest(tmp_path / "a")["classes"] == list(config.classes)
