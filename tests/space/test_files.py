"""space.files: atomic_write and atomic_dir leave the old file or folder byte-identical when a write fails."""

from __future__ import annotations

import errno

import pytest

from space.files import atomic_dir, atomic_write
from tests.space.tmpfs import listing, tmpfs


def test_atomic_dir_replaces_an_earlier_folder_whole(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.png").write_bytes(b"old")
    with atomic_dir(tmp_path / "out") as staged:
        (staged / "index.html").write_text("new")
    assert listing(tmp_path) == {"out/": b"", "out/index.html": b"new"}  # nothing stale, no sibling left


def test_atomic_dir_keeps_the_earlier_folder_when_the_body_fails(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "index.html").write_text("old")
    before = listing(tmp_path)
    with pytest.raises(ValueError), atomic_dir(tmp_path / "out") as staged:
        (staged / "index.html").write_text("half")
        raise ValueError("cut short")
    assert listing(tmp_path) == before


def test_atomic_dir_refuses_a_file(tmp_path):
    (tmp_path / "out").write_text("mine")
    with pytest.raises(NotADirectoryError), atomic_dir(tmp_path / "out"):
        pass
    assert (tmp_path / "out").read_text() == "mine"


def test_a_full_disk_names_the_target_and_keeps_the_old_file(tmp_path):
    with tmpfs(tmp_path / "disk", "64k") as disk:
        atomic_write(disk / "table.parquet", b"old")
        with pytest.raises(OSError) as caught:
            atomic_write(disk / "table.parquet", b"x" * 200_000)
        assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(disk / "table.parquet")
        with pytest.raises(OSError) as caught, atomic_dir(disk / "report") as staged:
            (staged / "index.html").write_bytes(b"x" * 200_000)
        assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(disk / "report")  # not the hidden sibling
        assert listing(disk) == {"table.parquet": b"old"}
