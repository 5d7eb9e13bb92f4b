"""Builders of small real dataset layouts (videos written with PyAV) shared by the data tests.

Every builder writes one corrupt and one empty video among the listed files and returns a :class:`Layout`
with what a correct reader must find. Videos are tiny (6-30 frames of 24 x 32) so a layout decodes in well
under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runners.video import write_video


@dataclass(frozen=True)
class Layout:
    name: str
    root: Path  # what --root points at
    classes: tuple[str, ...]
    train: dict[str, str]  # file name -> class, every listed training video (readable or not)
    test: dict[str, str]  # file name -> class, every listed test video
    bad: tuple[str, ...]  # file names of the corrupt and the empty video
    split: int = 1
    bad_entries: int = 2  # listed entries that point at them (HACS lists two clips per video)


def tiny_video(path: Path, seed: int, frames: int = 6, fps: int = 10) -> None:
    """A real (decodable) video: a bright square moving over a seeded random background."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 120, size=(24, 32, 3), dtype=np.uint8)
    clip = np.repeat(background[None], frames, axis=0)
    for t in range(frames):
        x = (3 * t) % 24
        clip[t, 8:16, x : x + 8] = 230
    write_video(path, clip, fps=fps)


def corrupt_video(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    path.write_bytes(b"\x00\x00\x00\x20ftypisom" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())


def empty_video(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def _write(path: Path, name: str, seed: int, bad: dict[str, str], frames: int = 6) -> None:
    kind = bad.get(name)
    if kind == "corrupt":
        corrupt_video(path)
    elif kind == "empty":
        empty_video(path)
    else:
        tiny_video(path, seed, frames=frames)


def ucf101(tmp: Path) -> Layout:
    root = tmp / "ucf"
    classes = ("ApplyEyeMakeup", "Basketball", "HandstandPushups")
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    bad = {"v_Basketball_g03_c01.avi": "corrupt", "v_HandStandPushups_g01_c01.avi": "empty"}
    train, test, train_lines, test_lines = {}, {}, [], []
    for i, c in enumerate(classes):
        file_class = "HandStandPushups" if c == "HandstandPushups" else c  # the real dataset's case quirk
        for g in range(1, 5):
            name = f"v_{file_class}_g{g:02d}_c01.avi"
            _write(root / "UCF-101" / c / name, name, seed=10 * i + g, bad=bad)
            if g == 1:
                test[name] = c
                test_lines.append(f"{c}/{name}\n")
            else:
                train[name] = c
                train_lines.append(f"{c}/{name} {i + 1}\n")
    (lists / "trainlist01.txt").write_text("".join(train_lines))
    (lists / "testlist01.txt").write_text("".join(test_lines))
    return Layout("ucf101", root, classes, train, test, tuple(bad))


def hmdb51(tmp: Path) -> Layout:
    root = tmp / "hmdb"
    classes = ("brush_hair", "cartwheel", "chew")
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    bad = {"cartwheel_2.avi": "empty", "chew_4.avi": "corrupt"}
    train, test = {}, {}
    for i, c in enumerate(classes):
        rows = []
        for j in range(1, 6):
            name = f"{c}_{j}.avi"
            _write(root / c / name, name, seed=20 * i + j, bad=bad)
            tag = {1: "2", 5: "0"}.get(j, "1")  # 1 test, 3 train, 1 unused per class
            rows.append(f"{name} {tag} \n")
            if tag == "1":
                train[name] = c
            elif tag == "2":
                test[name] = c
        (splits / f"{c}_test_split1.txt").write_text("".join(rows))
        (splits / f"{c}_test_split2.txt").write_text("".join(rows))
    return Layout("hmdb51", root, classes, train, test, tuple(bad))


def kinetics(tmp: Path) -> Layout:
    root = tmp / "kinetics"
    classes = ("abseiling", "air drumming", "archery")
    bad = {"yt1abseil_000010_000020.mp4": "corrupt", "yt0archer_000002_000012.mp4": "empty"}
    train, test = {}, {}
    rows = {"train": ["label,youtube_id,time_start,time_end,split,is_cc\n"],
            "validate": ["label,youtube_id,time_start,time_end,split,is_cc\n"]}
    for i, c in enumerate(classes):
        folder = c.replace(" ", "_")  # downloaders differ: both spellings must be found
        short = folder.split("_")[0][:6]
        for j in range(4):
            split = "validate" if j == 0 else "train"
            start = 10 if i == 0 else 3 * j + i
            yid = f"yt{j}{short}"
            name = f"{yid}_{start:06d}_{start + 10:06d}.mp4"
            _write(root / split / folder / name, name, seed=30 * i + j, bad=bad)
            label = f'"{c}"' if " " in c else c
            rows[split].append(f"{label},{yid},{start},{start + 10},{split},0\n")
            (test if split == "validate" else train)[name] = c
    (root / "train.csv").write_text("".join(rows["train"]))
    (root / "validate.csv").write_text("".join(rows["validate"]))
    return Layout("kinetics", root, classes, train, test, tuple(bad))


def hacs(tmp: Path) -> Layout:
    """Whole videos (3 s at 10 fps), each holding two 1-second clips; negatives and `testing` are ignored."""
    root = tmp / "hacs"
    classes = ("Archery", "Bathing dog")
    bad = {"v_batB.mp4": "corrupt", "v_arcC.mp4": "empty"}
    rows = ["classname,youtube_id,subset,start,end,label\n"]
    train, test = {}, {}
    for i, c in enumerate(classes):
        for j, subset in enumerate(("training", "training", "validation", "testing")):
            yid = f"{c[:3].lower()}{'ABCD'[j]}"
            name = f"v_{yid}.mp4"
            _write(root / c / name, name, seed=40 * i + j, bad=bad, frames=30)
            rows.append(f"{c},{yid},{subset},0.0,1.0,1\n")
            rows.append(f"{c},{yid},{subset},1.5,2.5,1\n")
            rows.append(f"{c},{yid},{subset},2.0,3.0,-1\n")  # negative clip
            if subset == "training":
                train[f"{name}@0-1"] = c
                train[f"{name}@1.5-2.5"] = c
            elif subset == "validation":
                test[f"{name}@0-1"] = c
                test[f"{name}@1.5-2.5"] = c
    root.mkdir(parents=True, exist_ok=True)
    (root / "HACS_clips_v1.1.1.csv").write_text("".join(rows))
    return Layout("hacs", root, classes, train, test, tuple(bad), bad_entries=4)


def mit(tmp: Path) -> Layout:
    root = tmp / "moments"
    classes = ("applauding", "barking", "cooking")
    bad = {"yt-barking-2.mp4": "corrupt", "yt-cooking-0.mp4": "empty"}
    train, test, train_rows, test_rows = {}, {}, [], []
    for i, c in enumerate(classes):
        for j in range(4):
            subdir, rows, target = ("validation", test_rows, test) if j == 0 else ("training", train_rows, train)
            name = f"{'yt' if j % 2 == 0 else 'flickr'}-{c}-{j}.mp4"
            _write(root / subdir / c / name, name, seed=50 * i + j, bad=bad)
            rows.append(f"{c}/{name},{c},3,0\n")
            target[name] = c
    (root / "trainingSet.csv").write_text("".join(train_rows))
    (root / "validationSet.csv").write_text("".join(test_rows))
    return Layout("mit", root, classes, train, test, tuple(bad))


def folder(tmp: Path) -> Layout:
    """Five videos per class and no train/test folders: the reader carves a seeded 20% test split itself."""
    root = tmp / "folder"
    classes = ("jump", "run", "walk")
    bad = {"run_3.mp4": "corrupt", "walk_0.mp4": "empty"}
    every = {}
    for i, c in enumerate(classes):
        for j in range(5):
            name = f"{c}_{j}.mp4"
            _write(root / c / name, name, seed=60 * i + j, bad=bad)
            every[name] = c
    return Layout("folder", root, classes, every, {}, tuple(bad))


def csv_list(tmp: Path) -> Layout:
    """A folder with train.csv / test.csv of ``path,label`` rows (paths relative to the CSV)."""
    root = tmp / "csvdata"
    classes = ("cat", "dog")
    bad = {"clip_1.mp4": "empty", "clip_6.mp4": "corrupt"}
    train, test, train_rows, test_rows = {}, {}, ["path,label\n"], ["path,label\n"]
    for k in range(10):
        c = classes[k % 2]
        name = f"clip_{k}.mp4"
        _write(root / "videos" / name, name, seed=70 + k, bad=bad)
        rows, target = (test_rows, test) if k >= 8 else (train_rows, train)
        rows.append(f"videos/{name},{c}\n")
        target[name] = c
    (root / "train.csv").write_text("".join(train_rows))
    (root / "test.csv").write_text("".join(test_rows))
    return Layout("csv", root, classes, train, test, tuple(bad))


BUILDERS = {"ucf101": ucf101, "hmdb51": hmdb51, "kinetics": kinetics, "hacs": hacs, "mit": mit,
            "folder": folder, "csv": csv_list}
