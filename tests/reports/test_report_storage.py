"""``nas report`` on a full disk, a read-only folder and an ``--out`` that is a file (docs/reports.md).

The real command in a subprocess writes into a real small tmpfs (tests/space/tmpfs.py): a report cut short is
one ``error:`` line, exit 2, and the earlier report in the same place stays byte-identical.
"""

from __future__ import annotations

import pytest

from tests.nas.cli_helpers import assert_one_line_error, run_nas
from tests.reports.fake_run import write_run
from tests.space.tmpfs import listing, remount_read_only, tmpfs

pytestmark = pytest.mark.slow  # each report is a subprocess writing a ~5 MB page


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "mixed"
    write_run(run, retrain={0: 0.70, 3: 0.66, 5: 0.50})
    return run


def test_a_full_disk_or_a_read_only_folder_keeps_the_earlier_report(run_dir, tmp_path):
    reference = tmp_path / "reference"
    assert run_nas("report", str(run_dir), "--out", str(reference)).returncode == 0
    size = sum(p.stat().st_size for p in reference.iterdir())
    with tmpfs(tmp_path / "disk", f"{int(1.5 * size) // 1024}k") as disk:  # room for one report, not two
        first = run_nas("report", str(run_dir), "--out", str(disk / "report"))
        assert first.returncode == 0, first.stderr
        earlier = listing(disk)
        assert_one_line_error(run_nas("report", str(run_dir), "--out", str(disk / "report")),
                              str(disk / "report"), "No space left on device")
        assert listing(disk) == earlier  # byte-identical, no hidden half-built sibling left
        remount_read_only(disk)
        assert_one_line_error(run_nas("report", str(run_dir), "--out", str(disk / "other")), "Read-only file system")
        assert_one_line_error(run_nas("report", str(run_dir), "--out", str(disk / "report")), "Read-only file system")
        assert listing(disk) == earlier


def test_a_disk_too_small_for_any_report_leaves_nothing(run_dir, tmp_path):
    with tmpfs(tmp_path / "disk", "256k") as disk:
        assert_one_line_error(run_nas("report", str(run_dir), "--out", str(disk / "report")), "No space left on device")
        assert listing(disk) == {}


def test_out_that_is_a_file_or_a_folder_of_other_files_is_refused_untouched(run_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert_one_line_error(run_nas("report", str(run_dir), "--out", str(tmp_path / "notes.txt")), "is a file, not a folder")
    (tmp_path / "desk").mkdir()
    (tmp_path / "desk" / "thesis.tex").write_text("mine too")
    assert_one_line_error(run_nas("report", str(run_dir), "--out", str(tmp_path / "desk")), "thesis.tex")
    assert listing(tmp_path) == {"notes.txt": b"mine", "desk/": b"", "desk/thesis.tex": b"mine too"}
