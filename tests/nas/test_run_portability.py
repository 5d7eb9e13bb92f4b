"""A run directory made by another version, or copied to another place or machine (issue 17, storage faults).

One real tiny search (the session's Ray head), then copies of its directory, each damaged or moved in one way
and fed to the real CLI. Every refusal is one ``error:`` line with exit 2 and leaves every file of the copy as it
was; a copy whose space file stayed behind on the "old machine" still reads and resumes.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nas.runmodel import RUN_FORMAT
from nas.search import run_search
from tests.nas.cli_helpers import assert_one_line_error, run_nas
from tests.nas.search_helpers import load_study, tiny_config

pytestmark = pytest.mark.slow  # one real search, shared


@pytest.fixture(scope="module")
def finished_run(ray_address, tmp_path_factory):
    config = tiny_config(tmp_path_factory.mktemp("portable"), trials=2, max_concurrent=1)
    outcome = run_search(config, show_progress=False)
    return config, outcome.run_dir


def _copy(run_dir: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(run_dir, where / run_dir.name, ignore=shutil.ignore_patterns(".lock", "ray")))


def _fingerprint(folder: Path) -> dict[str, str]:
    """Every file's hash, but the driver's empty ``.lock`` (taken before the storage is opened)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_search_yaml_records_the_run_format_and_the_space(finished_run):
    config, run_dir = finished_run
    assert yaml.safe_load((run_dir / "search.yaml").read_text())["format"] == RUN_FORMAT
    assert (run_dir / "space.yaml").read_text() == Path(config.space).read_text()


def test_a_run_from_a_newer_version_is_one_error_line_everywhere_and_left_untouched(finished_run, ray_address, tmp_path):
    _, run_dir = finished_run
    copy = _copy(run_dir, tmp_path / "runs")
    search = yaml.safe_load((copy / "search.yaml").read_text())
    (copy / "search.yaml").write_text(yaml.safe_dump({**search, "format": RUN_FORMAT + 1}, sort_keys=False))
    before = _fingerprint(copy)
    for args in (["trials", str(copy)], ["report", str(copy)],
                 ["search", "--resume", str(copy), "--address", ray_address, "--quiet", "--no-report"]):
        assert_one_line_error(run_nas(*args), "written by a newer videonas", f"run format {RUN_FORMAT + 1}")
    listing = run_nas("runs", str(tmp_path / "runs"))
    assert listing.returncode == 0 and "unreadable" in listing.stdout and "newer videonas" in listing.stdout
    assert _fingerprint(copy) == before  # no earlier data lost, nothing rewritten


def test_a_study_db_from_another_optuna_is_one_error_line_and_left_untouched(finished_run, ray_address, tmp_path):
    _, run_dir = finished_run
    copy = _copy(run_dir, tmp_path / "runs")
    with sqlite3.connect(copy / "study.db") as db:  # what a newer Optuna's schema migration leaves behind
        db.execute("UPDATE alembic_version SET version_num = 'v99.0.0.a'")
        db.execute("UPDATE version_info SET schema_version = schema_version + 100")
    before = _fingerprint(copy)
    result = run_nas("search", "--resume", str(copy), "--address", ray_address, "--quiet", "--no-report")
    assert_one_line_error(result, "written by another Optuna version")
    assert _fingerprint(copy) == before
    assert run_nas("trials", str(copy)).returncode == 0  # the reading commands never needed the storage


def test_a_run_copied_to_another_machine_without_its_space_file_reads_and_resumes(finished_run, ray_address, tmp_path):
    config, run_dir = finished_run
    copy = _copy(run_dir, tmp_path / "elsewhere" / "runs")
    space_file = Path(config.space)
    hidden = space_file.rename(space_file.with_suffix(".away"))  # the space file stayed on the old machine
    try:
        trials = run_nas("trials", str(copy))
        assert trials.returncode == 0, trials.stderr
        result = run_nas("search", "--resume", str(copy), "--address", ray_address, "--quiet", "--no-report")
        assert result.returncode == 0, result.stderr
        assert "(2 trials trained)" in result.stdout
    finally:
        hidden.rename(space_file)
    study = load_study(copy)
    assert sum(1 for t in study.trials if t.user_attrs.get("counted")) == 2
    frame = pd.read_parquet(copy / "trials.parquet")
    original = pd.read_parquet(run_dir / "trials.parquet")
    pd.testing.assert_frame_equal(frame.drop(columns=["history"]), original.drop(columns=["history"]))
