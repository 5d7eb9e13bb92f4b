"""``nas data prepare`` / ``nas data inspect`` and their one-line errors.

The first test goes through the real entry point in a subprocess; the others call the same ``main()`` in
process (the console script's start-up imports Ray and torch, which costs seconds per call).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from nas.cli import main
from tests.nas.cli_helpers import assert_one_line_error, run_nas
from tests.runners import data_layouts


@pytest.fixture
def nas(capsys):
    """Run ``nas ARGS`` in process; returns a CompletedProcess like :func:`run_nas`."""

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, captured.out, captured.err)

    return run


@pytest.mark.slow
def test_prepare_then_inspect_a_real_layout(tmp_path: Path, nas) -> None:
    layout = data_layouts.ucf101(tmp_path)
    out = tmp_path / "cache"
    result = run_nas("data", "prepare", "--data", "ucf101", "--root", str(layout.root), "--split", "1",
                     "--frames", "4", "--size", "16", "--out", str(out), "--max-skipped", "0.25")
    assert result.returncode == 0, result.stderr
    assert "2 skipped" in result.stdout and "4x16x16x3" in result.stdout
    assert result.stdout.count("warning: skipped") == 2 and "empty file" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped_count"] == 2 and manifest["classes"] == list(layout.classes)

    shown = nas("data", "inspect", str(out), "--per-class", "2")
    assert shown.returncode == 0, shown.stderr
    for c in layout.classes:
        assert c in shown.stdout
    png = out / "inspect.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_in_place_synthetic_and_folder(tmp_path: Path, nas) -> None:
    png = tmp_path / "syn.png"
    result = nas("data", "inspect", "--data", "synthetic", "--frames", "8", "--size", "32", "--png", str(png))
    assert result.returncode == 0, result.stderr
    assert "move_left" in result.stdout and png.stat().st_size > 1000
    layout = data_layouts.folder(tmp_path)
    png = tmp_path / "folder.png"
    result = nas("data", "inspect", "--data", "folder", "--root", str(layout.root), "--png", str(png))
    assert result.returncode == 0, result.stderr
    assert "walk" in result.stdout and png.is_file()


def test_missing_root_is_one_line_error(tmp_path: Path, nas) -> None:
    result = nas("data", "prepare", "--data", "hmdb51", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "does not exist")


def test_missing_split_file_is_one_line_error(tmp_path: Path, nas) -> None:
    layout = data_layouts.ucf101(tmp_path)
    (layout.root / "ucfTrainTestlist" / "trainlist01.txt").unlink()
    result = nas("data", "prepare", "--data", "ucf101", "--root", str(layout.root), "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "missing split file", "trainlist01.txt")


def test_empty_class_folder_is_one_line_error(tmp_path: Path, nas) -> None:
    layout = data_layouts.folder(tmp_path)
    (layout.root / "sit").mkdir()
    result = nas("data", "inspect", "--data", "folder", "--root", str(layout.root))
    assert_one_line_error(result, "has no video files", "sit")


def test_too_many_corrupt_files_is_one_line_error(tmp_path: Path, nas) -> None:
    layout = data_layouts.kinetics(tmp_path)  # 2 unreadable of 12 listed, default threshold 5%
    out = tmp_path / "o"
    result = nas("data", "prepare", "--data", "kinetics", "--root", str(layout.root), "--frames", "4",
                     "--size", "16", "--out", str(out))
    assert_one_line_error(result, "unreadable", "--max-skipped")
    assert not (out / "manifest.json").exists()


def test_inspect_needs_exactly_one_source(tmp_path: Path, nas) -> None:
    assert_one_line_error(nas("data", "inspect"), "either a cache folder or --data")
    assert_one_line_error(nas("data", "inspect", str(tmp_path)), "not a prepared dataset")


def test_prepare_synthetic_takes_the_option_names_search_and_retrain_use(tmp_path: Path, nas) -> None:
    from runners.cache import open_cache

    out = tmp_path / "syn"
    result = nas("data", "prepare", "--data", "synthetic", "--num-clips", "8", "--num-classes", "2",
                 "--frames", "8", "--size", "32", "--out", str(out))
    assert result.returncode == 0, result.stderr
    sets = open_cache(out)
    assert len(sets["train"]) == 8 and len(sets["train"].classes) == 2
