"""Real video datasets: find the videos and labels of each split in a local folder (``docs/data.md``).

:func:`index_dataset` reads one of the layouts below and returns a :class:`DatasetIndex` (class names, train
and test entries); nothing is decoded here. :func:`carve_validation` takes the seeded, stratified validation
split out of the training entries, so a search selects on data it never tests on. Missing or malformed
layouts raise :class:`DatasetError` (a user error: one ``error:`` line in the CLI). Files listed but absent
or unreadable are not errors here: :mod:`runners.cache` skips, counts and lists them, and fails above a
threshold.

Layouts (``root`` is what ``--root`` points at; ``N`` is ``--split``):

- ``ucf101``: ``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt`` in ``root/ucfTrainTestlist/`` or
  ``root/``; videos ``<Class>/<file>.avi`` under ``root/UCF-101/`` or ``root/``. N in 1-3.
- ``hmdb51``: ``<class>_test_split{N}.txt`` (rows ``<file> <tag>``, 1 = train, 2 = test, 0 = unused) in
  ``root/testTrainMulti_7030_splits/``, ``root/splits/`` or ``root/``; videos ``<class>/<file>`` under ``root``
  or ``root/videos``. N in 1-3.
- ``kinetics`` (400/600/700): CSVs ``label,youtube_id,time_start,time_end,split[,is_cc]`` named ``train.csv``
  and ``validate.csv`` (or ``val.csv``) in ``root/annotations/`` or ``root/``; clips
  ``<split>/<label>/{youtube_id}_{start:06d}_{end:06d}.mp4`` (label with spaces or underscores). The public
  test set has no labels, so train.csv is the training data and the validation set is our test split.
- ``hacs``: the clips CSV ``classname,youtube_id,subset,start,end,label`` (``HACS_clips_v1.1*.csv`` or any CSV
  with that header in ``root``); positive rows only (label 1); ``training`` -> train, ``validation`` -> test;
  videos as the official downloader saves them, ``root/<classname>/v_<youtube_id>.mp4``, each row decoded
  from ``start`` to ``end`` seconds.
- ``mit`` (Moments in Time): ``trainingSet.csv`` / ``validationSet.csv`` with rows ``class/file,class,...`` in
  ``root`` (or ``root/annotations``); videos ``root/training/<class>/<file>`` and ``root/validation/...``;
  class order from ``moments_categories.txt`` when present; validation is our test split.
- ``folder``: ``root/<class>/<video>``; if ``root/train/`` and ``root/test/`` both exist they are the splits,
  otherwise a seeded stratified 20% of each class is the test split (seed = N).
- ``csv``: a ``path,label`` file (header optional, paths relative to the file, label = class name), or a
  folder with ``train.csv`` and ``test.csv``; a single file is split like ``folder``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from runners.video import VIDEO_EXTENSIONS
from space.errors import UserInputError

__all__ = [
    "REAL_DATASETS",
    "DATASET_NAMES",
    "DatasetError",
    "VideoEntry",
    "DatasetIndex",
    "index_dataset",
    "carve_validation",
    "stratified_split",
]

REAL_DATASETS = ("ucf101", "hmdb51", "kinetics", "hacs", "mit", "folder", "csv")
DATASET_NAMES = ("synthetic", *REAL_DATASETS)
TEST_FRACTION = 0.2  # of each class, for layouts without official splits


class DatasetError(UserInputError):
    """A dataset layout that cannot be read: says which file or folder and what was expected."""


@dataclass(frozen=True)
class VideoEntry:
    """One labelled video (or the ``start``-``end`` seconds of one, for clip datasets)."""

    path: Path
    label: int
    start: float | None = None
    end: float | None = None

    @property
    def key(self) -> str:
        """Identity of the clip: path plus window (HACS has several clips per video)."""
        window = "" if self.start is None else f"@{self.start:g}-{self.end:g}"
        return f"{self.path}{window}"


@dataclass(frozen=True)
class DatasetIndex:
    name: str
    root: Path
    classes: tuple[str, ...]
    train: tuple[VideoEntry, ...]
    test: tuple[VideoEntry, ...]
    split: int = 1


def index_dataset(name: str, root: str | Path, *, split: int = 1) -> DatasetIndex:
    """Read the layout ``name`` under ``root`` (see the module docstring) without decoding anything."""
    if name not in REAL_DATASETS:
        allowed = ", ".join(DATASET_NAMES)
        raise DatasetError(f"unknown dataset {name!r}; allowed: {allowed}")
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset root {str(root)!r} does not exist (--root must point at the {name} folder)")
    if name != "csv" and not root.is_dir():
        raise DatasetError(f"dataset root {str(root)!r} is not a folder")
    if split < 1:
        raise DatasetError(f"--split {split} is not allowed; allowed: an integer >= 1")
    reader = {
        "ucf101": _ucf101, "hmdb51": _hmdb51, "kinetics": _kinetics, "hacs": _hacs,
        "mit": _mit, "folder": _folder, "csv": _csv,
    }[name]  # fmt: skip
    classes, train, test = reader(root, split)
    if not classes:
        raise DatasetError(f"{name}: no classes found under {str(root)!r}")
    test_keys = {e.key for e in test}
    train = [e for e in train if e.key not in test_keys]  # never let a test clip train (or validate)
    if not train:
        raise DatasetError(f"{name}: no training videos listed under {str(root)!r}")
    if not test:
        raise DatasetError(f"{name}: no test videos listed under {str(root)!r}")
    return DatasetIndex(name, root, tuple(classes), tuple(train), tuple(test), split)


# ----------------------------------------------------------------------------------------------------
# Splits
# ----------------------------------------------------------------------------------------------------


def stratified_split(
    entries: Iterable[VideoEntry], fraction: float, seed: int
) -> tuple[list[VideoEntry], list[VideoEntry]]:
    """(kept, taken): a seeded ``fraction`` of each class is taken (at least one when a class has >= 2)."""
    entries = sorted(entries, key=lambda e: (e.label, e.key))
    rng = np.random.default_rng(seed)
    kept: list[VideoEntry] = []
    taken: list[VideoEntry] = []
    labels = np.array([e.label for e in entries])
    for label in np.unique(labels):
        members = [entries[i] for i in np.flatnonzero(labels == label)]
        order = rng.permutation(len(members))
        count = int(round(fraction * len(members)))
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        else:
            count = 0
        taken += [members[i] for i in sorted(order[:count])]
        kept += [members[i] for i in sorted(order[count:])]
    return kept, taken


def carve_validation(
    train: Iterable[VideoEntry], *, fraction: float = 0.1, seed: int = 0
) -> tuple[list[VideoEntry], list[VideoEntry]]:
    """(train, val): the seeded, stratified validation split taken from the training entries only."""
    if not 0 < fraction < 1:
        raise DatasetError(f"validation fraction {fraction} is not allowed; allowed: 0 < fraction < 1")
    return stratified_split(train, fraction, seed)


# ----------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------


def _first_dir_with(candidates: list[Path], filename: str) -> Path | None:
    for folder in candidates:
        if (folder / filename).is_file():
            return folder
    return None


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"missing split file {str(path)!r} ({what})")
    return path


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        return [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]


def _check_split(name: str, split: int, allowed: tuple[int, ...]) -> None:
    if split not in allowed:
        raise DatasetError(f"{name}: --split {split} is not allowed; allowed: {', '.join(map(str, allowed))}")


def _class_lookup(classes: list[str]) -> dict[str, int]:
    """Class name -> index, case-insensitive (UCF-101's HandstandPushups folder vs HandStandPushups files)."""
    return {c.lower(): i for i, c in enumerate(classes)}


# ----------------------------------------------------------------------------------------------------
# Layouts
# ----------------------------------------------------------------------------------------------------

Layout = tuple[list[str], list[VideoEntry], list[VideoEntry]]


def _ucf101(root: Path, split: int) -> Layout:
    _check_split("ucf101", split, (1, 2, 3))
    lists = _first_dir_with([root / "ucfTrainTestlist", root], "classInd.txt")
    if lists is None:
        raise DatasetError(f"missing split file 'classInd.txt' under {str(root / 'ucfTrainTestlist')!r} or {str(root)!r}")
    videos = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    classes = [line.split()[1] for line in _lines(lists / "classInd.txt")]
    lookup = _class_lookup(classes)

    def entries(filename: str) -> list[VideoEntry]:
        out = []
        for line in _lines(_require_file(lists / filename, f"UCF-101 split {split}")):
            relative = line.split()[0]
            class_name = relative.split("/")[0]
            if class_name.lower() not in lookup:
                raise DatasetError(f"{filename}: class {class_name!r} is not in classInd.txt")
            out.append(VideoEntry(videos / relative, lookup[class_name.lower()]))
        return out

    return classes, entries(f"trainlist0{split}.txt"), entries(f"testlist0{split}.txt")


def _hmdb51(root: Path, split: int) -> Layout:
    _check_split("hmdb51", split, (1, 2, 3))
    pattern = re.compile(rf"^(.+)_test_split{split}\.txt$")
    for folder in (root / "testTrainMulti_7030_splits", root / "splits", root):
        files = sorted(p for p in folder.glob(f"*_test_split{split}.txt")) if folder.is_dir() else []
        if files:
            break
    else:
        raise DatasetError(
            f"missing split file '<class>_test_split{split}.txt' under {str(root / 'testTrainMulti_7030_splits')!r} "
            f"or {str(root)!r}"
        )
    videos = root / "videos" if (root / "videos").is_dir() else root
    classes = [pattern.match(p.name).group(1) for p in files]  # type: ignore[union-attr]
    train, test = [], []
    for label, path in enumerate(files):
        for line in _lines(path):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(f"{path.name}: row {line!r} is not '<file> <tag>' with tag 0, 1 or 2")
            entry = VideoEntry(videos / classes[label] / parts[0], label)
            if parts[1] == "1":
                train.append(entry)
            elif parts[1] == "2":
                test.append(entry)
    return classes, train, test


def _csv_with_header(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    rows = _read_csv(path)
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(f"{path.name}: header {','.join(header)!r} lacks {', '.join(missing)}; expected {','.join(required)}")
    return [dict(zip(header, (cell.strip() for cell in row))) for row in rows[1:]]


def _kinetics(root: Path, split: int) -> Layout:
    _check_split("kinetics", split, (1,))
    folders = [root / "annotations", root]
    train_dir = _first_dir_with(folders, "train.csv")
    if train_dir is None:
        raise DatasetError(f"missing split file 'train.csv' under {str(root / 'annotations')!r} or {str(root)!r}")
    test_dir = _first_dir_with(folders, "validate.csv") or _first_dir_with(folders, "val.csv")
    if test_dir is None:
        raise DatasetError(f"missing split file 'validate.csv' (or val.csv) under {str(root)!r}")
    test_csv = test_dir / "validate.csv" if (test_dir / "validate.csv").is_file() else test_dir / "val.csv"
    required = ("label", "youtube_id", "time_start", "time_end", "split")
    train_rows = _csv_with_header(train_dir / "train.csv", required)
    test_rows = _csv_with_header(test_csv, required)
    classes = sorted({r["label"] for r in train_rows})
    lookup = {c: i for i, c in enumerate(classes)}

    def clip_path(row: dict[str, str]) -> Path:
        name = f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}.mp4"
        split_names = {"validate": ("validate", "val"), "val": ("val", "validate")}.get(row["split"], (row["split"],))
        candidates = [root / s / label / name for s in split_names for label in (row["label"], row["label"].replace(" ", "_"))]
        return next((p for p in candidates if p.is_file()), candidates[0])

    train = [VideoEntry(clip_path(r), lookup[r["label"]]) for r in train_rows]
    test = [VideoEntry(clip_path(r), lookup[r["label"]]) for r in test_rows if r["label"] in lookup]
    return classes, train, test


def _hacs(root: Path, split: int) -> Layout:
    _check_split("hacs", split, (1,))
    required = ("classname", "youtube_id", "subset", "start", "end", "label")
    candidates = sorted(root.glob("HACS_clips*.csv")) + sorted(root.glob("*.csv"))
    table = None
    for path in candidates:
        rows = _read_csv(path)
        if rows and all(c in [h.strip() for h in rows[0]] for c in required):
            table = _csv_with_header(path, required)
            break
    if table is None:
        raise DatasetError(f"missing split file: no HACS clips CSV ({','.join(required)}) in {str(root)!r}")
    positive = [r for r in table if r["label"].strip() in ("1", "1.0")]
    classes = sorted({r["classname"] for r in positive if r["subset"] == "training"})
    lookup = {c: i for i, c in enumerate(classes)}

    def entry(row: dict[str, str]) -> VideoEntry:
        name = f"v_{row['youtube_id']}.mp4"
        options = [root / row["classname"] / name, root / row["subset"] / row["classname"] / name]
        path = next((p for p in options if p.is_file()), options[0])
        return VideoEntry(path, lookup[row["classname"]], float(row["start"]), float(row["end"]))

    train = [entry(r) for r in positive if r["subset"] == "training"]
    test = [entry(r) for r in positive if r["subset"] == "validation" and r["classname"] in lookup]
    return classes, train, test


def _mit(root: Path, split: int) -> Layout:
    _check_split("mit", split, (1,))
    folder = _first_dir_with([root, root / "annotations"], "trainingSet.csv")
    if folder is None:
        raise DatasetError(f"missing split file 'trainingSet.csv' in {str(root)!r}")
    _require_file(folder / "validationSet.csv", "Moments in Time validation list")
    train_rows = _read_csv(folder / "trainingSet.csv")
    test_rows = _read_csv(folder / "validationSet.csv")
    categories = folder / "moments_categories.txt"
    if categories.is_file():
        classes = [line.split(",")[0] for line in _lines(categories)]
    else:
        classes = sorted({row[1].strip() for row in train_rows if len(row) >= 2})
    lookup = {c: i for i, c in enumerate(classes)}

    def entries(rows: list[list[str]], subdir: str, listing: str) -> list[VideoEntry]:
        out = []
        for row in rows:
            if len(row) < 2:
                raise DatasetError(f"{listing}: row {','.join(row)!r} is not 'class/file,class,...'")
            if row[1].strip() in lookup:
                out.append(VideoEntry(root / subdir / row[0].strip(), lookup[row[1].strip()]))
        return out

    return (
        classes,
        entries(train_rows, "training", "trainingSet.csv"),
        entries(test_rows, "validation", "validationSet.csv"),
    )


def _class_folders(root: Path) -> dict[str, list[Path]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"no class folders in {str(root)!r}; expected {str(root)}/<class>/<video>")
    out = {}
    for folder in folders:
        videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not videos:
            raise DatasetError(
                f"class folder {str(folder)!r} has no video files; allowed extensions: {', '.join(VIDEO_EXTENSIONS)}"
            )
        out[folder.name] = videos
    return out


def _folder(root: Path, split: int) -> Layout:
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_folders, test_folders = _class_folders(root / "train"), _class_folders(root / "test")
        classes = sorted(train_folders)
        unknown = sorted(set(test_folders) - set(classes))
        if unknown:
            raise DatasetError(f"test classes {unknown} have no training folder under {str(root / 'train')!r}")
        lookup = {c: i for i, c in enumerate(classes)}
        train = [VideoEntry(p, lookup[c]) for c, paths in train_folders.items() for p in paths]
        test = [VideoEntry(p, lookup[c]) for c, paths in test_folders.items() for p in paths]
        return classes, train, test
    folders = _class_folders(root)
    classes = sorted(folders)
    entries = [VideoEntry(p, i) for i, c in enumerate(classes) for p in folders[c]]
    train, test = stratified_split(entries, TEST_FRACTION, seed=split)
    return classes, train, test


def _csv_pairs(path: Path) -> list[tuple[Path, str]]:
    rows = _read_csv(path)
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    pairs = []
    for row in rows:
        if len(row) < 2:
            raise DatasetError(f"{path.name}: row {','.join(row)!r} is not 'path,label'")
        video = Path(row[0].strip())
        pairs.append((video if video.is_absolute() else path.parent / video, row[1].strip()))
    return pairs


def _sorted_labels(names: set[str]) -> list[str]:
    """Numeric labels in numeric order, names alphabetically."""
    return sorted(names, key=lambda n: (0, int(n), "") if n.isdigit() else (1, 0, n))


def _csv(root: Path, split: int) -> Layout:
    if root.is_file():
        pairs = _csv_pairs(root)
        classes = _sorted_labels({label for _, label in pairs})
        lookup = {c: i for i, c in enumerate(classes)}
        entries = [VideoEntry(p, lookup[label]) for p, label in pairs]
        train, test = stratified_split(entries, TEST_FRACTION, seed=split)
        return classes, train, test
    train_pairs = _csv_pairs(_require_file(root / "train.csv", "csv layout: train.csv"))
    test_pairs = _csv_pairs(_require_file(root / "test.csv", "csv layout: test.csv"))
    classes = _sorted_labels({label for _, label in train_pairs})
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = sorted({label for _, label in test_pairs} - set(classes))
    if unknown:
        raise DatasetError(f"test.csv labels {unknown} never occur in train.csv")
    return (
        classes,
        [VideoEntry(p, lookup[label]) for p, label in train_pairs],
        [VideoEntry(p, lookup[label]) for p, label in test_pairs],
    )
