"""Dataset layouts read from real folders (videos written with PyAV): labels, splits, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from runners.datasets import DatasetError, carve_validation, index_dataset, stratified_split
from tests.runners import data_layouts


def _names(entries) -> dict[str, int]:
    out = {}
    for e in entries:
        name = e.path.name if e.start is None else f"{e.path.name}@{e.start:g}-{e.end:g}"
        out[name] = e.label
    return out


@pytest.mark.parametrize("layout_name", sorted(data_layouts.BUILDERS))
def test_each_layout_lists_the_right_videos_labels_and_splits(tmp_path: Path, layout_name: str) -> None:
    layout = data_layouts.BUILDERS[layout_name](tmp_path)
    index = index_dataset(layout.name, layout.root, split=layout.split)
    assert index.classes == layout.classes
    lookup = {c: i for i, c in enumerate(layout.classes)}
    train, test = _names(index.train), _names(index.test)
    if layout.test:  # official splits
        assert train == {name: lookup[c] for name, c in layout.train.items()}
        assert test == {name: lookup[c] for name, c in layout.test.items()}
    else:  # carved test split: every video in exactly one split, labels right, each class in both
        assert set(train) | set(test) == set(layout.train) and not set(train) & set(test)
        assert all(lookup[layout.train[n]] == label for n, label in {**train, **test}.items())
        assert set(train.values()) == set(test.values()) == set(range(len(layout.classes)))
    for entry in (*index.train, *index.test):  # the listed paths are the files the builder wrote
        assert entry.path.exists(), entry.path


def test_hacs_reads_positive_clip_windows_only(tmp_path: Path) -> None:
    layout = data_layouts.hacs(tmp_path)
    index = index_dataset("hacs", layout.root)
    assert {(e.start, e.end) for e in index.train} == {(0.0, 1.0), (1.5, 2.5)}  # the negative 2.0-3.0 is gone
    assert len(index.train) == 8 and len(index.test) == 4  # `testing` subset ignored


def test_folder_split_is_seeded_by_split_number(tmp_path: Path) -> None:
    layout = data_layouts.folder(tmp_path)
    a = index_dataset("folder", layout.root, split=1)
    b = index_dataset("folder", layout.root, split=1)
    c = index_dataset("folder", layout.root, split=2)
    assert a.test == b.test
    assert a.test != c.test


def test_folder_with_train_and_test_subfolders(tmp_path: Path) -> None:
    for split, count in (("train", 3), ("test", 1)):
        for c in ("a", "b"):
            for j in range(count):
                data_layouts.tiny_video(tmp_path / "d" / split / c / f"{c}{j}.mp4", seed=j)
    index = index_dataset("folder", tmp_path / "d")
    assert index.classes == ("a", "b") and len(index.train) == 6 and len(index.test) == 2


def test_single_csv_file_is_split_stratified(tmp_path: Path) -> None:
    root = tmp_path / "single"
    rows = ["path,label\n"]
    for k in range(10):
        data_layouts.tiny_video(root / f"v{k}.mp4", seed=k)
        rows.append(f"v{k}.mp4,{k % 2}\n")
    (root / "all.csv").write_text("".join(rows))
    index = index_dataset("csv", root / "all.csv")
    assert index.classes == ("0", "1") and len(index.test) == 2 and len(index.train) == 8
    assert sorted(e.label for e in index.test) == [0, 1]


@pytest.mark.parametrize("layout_name", sorted(data_layouts.BUILDERS))
def test_validation_is_stratified_seeded_and_never_overlaps_test(tmp_path: Path, layout_name: str) -> None:
    layout = data_layouts.BUILDERS[layout_name](tmp_path)
    index = index_dataset(layout.name, layout.root)
    train, val = carve_validation(index.train, fraction=0.3, seed=5)
    again_train, again_val = carve_validation(index.train, fraction=0.3, seed=5)
    assert val == again_val and train == again_train
    keys = lambda entries: {e.key for e in entries}  # noqa: E731
    assert keys(val) and not keys(val) & keys(index.test)
    assert not keys(val) & keys(train)
    assert keys(val) | keys(train) == keys(index.train)
    # stratified: every class with at least two training videos gives at least one to validation
    per_class = {label: sum(e.label == label for e in index.train) for label in {e.label for e in index.train}}
    assert {e.label for e in val} == {label for label, n in per_class.items() if n >= 2}


def test_a_video_listed_in_both_splits_is_kept_out_of_training(tmp_path: Path) -> None:
    layout = data_layouts.csv_list(tmp_path)
    (layout.root / "train.csv").write_text((layout.root / "train.csv").read_text() + "videos/clip_8.mp4,cat\n")
    index = index_dataset("csv", layout.root)
    assert "clip_8.mp4" not in {e.path.name for e in index.train}
    assert "clip_8.mp4" in {e.path.name for e in index.test}


def test_stratified_split_fraction() -> None:
    from runners.datasets import VideoEntry

    entries = [VideoEntry(Path(f"{c}{k}.mp4"), c) for c in range(3) for k in range(10)]
    kept, taken = stratified_split(entries, 0.2, seed=0)
    assert len(taken) == 6 and sorted(e.label for e in taken) == [0, 0, 1, 1, 2, 2]
    assert len(kept) == 24


@pytest.mark.parametrize(
    ("layout_name", "breakage", "message"),
    [
        ("ucf101", lambda root: (root / "ucfTrainTestlist" / "testlist01.txt").unlink(), "missing split file"),
        ("ucf101", lambda root: (root / "ucfTrainTestlist" / "classInd.txt").unlink(), "missing split file"),
        ("hmdb51", lambda root: [p.unlink() for p in (root / "testTrainMulti_7030_splits").glob("*split1.txt")],
         "missing split file"),
        ("kinetics", lambda root: (root / "validate.csv").unlink(), "missing split file"),
        ("hacs", lambda root: (root / "HACS_clips_v1.1.1.csv").unlink(), "missing split file"),
        ("mit", lambda root: (root / "validationSet.csv").unlink(), "missing split file"),
        ("csv", lambda root: (root / "test.csv").unlink(), "missing split file"),
        ("folder", lambda root: [p.unlink() for p in (root / "run").iterdir()], "has no video files"),
    ],
)
def test_broken_layouts_are_user_errors(tmp_path: Path, layout_name: str, breakage, message: str) -> None:
    layout = data_layouts.BUILDERS[layout_name](tmp_path)
    breakage(layout.root)
    with pytest.raises(DatasetError, match=message):
        index_dataset(layout.name, layout.root)


def test_missing_root_and_bad_split_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        index_dataset("ucf101", tmp_path / "nowhere")
    layout = data_layouts.ucf101(tmp_path)
    with pytest.raises(DatasetError, match="--split 4 is not allowed"):
        index_dataset("ucf101", layout.root, split=4)
    with pytest.raises(DatasetError, match="unknown dataset"):
        index_dataset("ucf102", layout.root)
