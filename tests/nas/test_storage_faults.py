"""Storage faults (issue 17): damaged or locked run files, and a full disk while writing.

``nas runs``, ``nas trials`` and ``nas report`` read a run's files (``search.yaml``, ``trials.parquet``), never
its Optuna storage, so a corrupt or locked ``study.db`` does not stop them; a corrupt ``trials.parquet`` is one
``error:`` line, and ``nas runs`` marks that run unreadable and still lists the others.

A full disk is a real ``EFBIG`` from the kernel: the writer runs in a child process whose file-size limit
(``RLIMIT_FSIZE``) is smaller than the file it writes, with ``SIGXFSZ`` ignored so the write fails with an
``OSError`` instead of killing the process. The earlier file must survive whole and no temp file may remain.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.nas.cli_helpers import REPO
from tests.nas.test_hostile_input import nas
from tests.reports.fake_run import write_run


@pytest.fixture()
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    write_run(root / "good")
    write_run(root / "damaged", seed=1)
    return root


def _one_error_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


@pytest.mark.parametrize("damage", ["garbage", "empty", "locked"])
@pytest.mark.slow
def test_a_corrupt_or_locked_study_db_does_not_stop_runs_trials_or_report(runs, tmp_path, damage):
    run = runs / "damaged"
    before = nas("trials", str(run), "--json")
    assert before[0] == 0, before[2]
    db = run / "study.db"
    holder = None
    if damage == "garbage":
        db.write_bytes(b"not a database " * 100)
    elif damage == "empty":
        db.write_bytes(b"")
    else:  # another process holds SQLite's exclusive lock
        holder = sqlite3.connect(db, timeout=0)
        holder.execute("BEGIN EXCLUSIVE")
    try:
        assert nas("trials", str(run), "--json") == before
        code, out, err = nas("runs", str(runs), "--json")
        assert code == 0, err
        assert {r["name"]: r["state"] for r in json.loads(out)} == {"damaged": "idle", "good": "idle"}
        code, _, err = nas("report", str(run), "--out", str(tmp_path / "report"))
        assert code == 0, err
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "directory"])
@pytest.mark.slow
def test_a_corrupt_trials_parquet_is_one_error_line_and_nas_runs_lists_the_others(runs, tmp_path, damage):
    parquet = runs / "damaged" / "trials.parquet"
    if damage == "garbage":
        parquet.write_bytes(b"PAR1 garbage")
    elif damage == "truncated":
        parquet.write_bytes(parquet.read_bytes()[:300])
    elif damage == "empty":
        parquet.write_bytes(b"")
    else:
        parquet.unlink()
        parquet.mkdir()
    for args in (("trials", str(parquet.parent)), ("trials", str(parquet.parent), "--json"),
                 ("report", str(parquet.parent), "--out", str(tmp_path / "report"))):
        assert "trials.parquet" in _one_error_line(*nas(*args)[::2])
    code, out, err = nas("runs", str(runs), "--json")
    assert code == 0, err
    records = {r["name"]: r for r in json.loads(out)}
    assert records["good"]["state"] == "idle" and records["good"]["trained"] > 0
    assert records["damaged"]["state"] == "unreadable" and "trials.parquet" in records["damaged"]["error"]
    code, out, err = nas("runs", str(runs))
    assert code == 0 and "unreadable" in out and "good" in out, err


# ---- a full disk ----------------------------------------------------------------------------------

_FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (__LIMIT__, __LIMIT__))
    try:
        __WRITE__
    except OSError as exc:
        print("OSError", exc.errno)
        sys.exit(0)
    print("written")
    """
)


def _write_on_a_full_disk(write: str, limit: int = 64 * 1024) -> str:
    code = _FULL_DISK.replace("__LIMIT__", str(limit)).replace("__WRITE__", write)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path):
    from runners.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.arange(100.0)})
    before = path.read_bytes()
    outcome = _write_on_a_full_disk(
        f"from runners.checkpoint import save_checkpoint; import torch; "
        f"save_checkpoint({str(path)!r}, {{'epoch': 2, 'w': torch.zeros(1_000_000)}})"
    )
    assert outcome == "OSError 27"  # EFBIG: the kernel refused the write
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temp file left behind


@pytest.mark.slow
def test_a_full_disk_while_writing_trials_parquet_keeps_the_previous_table(runs):
    from nas.runmodel import RunDir

    run = RunDir(runs / "good")
    before = run.trials_file.read_bytes()
    outcome = _write_on_a_full_disk(
        "import pandas as pd; from pathlib import Path; from nas.runmodel import RunDir; "
        f"run = RunDir(Path({str(run.path)!r})); frame = run.read_trials(); "
        "run.write_trials(pd.concat([frame] * 2000, ignore_index=True))",
    )
    assert outcome == "OSError 27"
    assert run.trials_file.read_bytes() == before
    assert len(pd.read_parquet(run.trials_file)) > 0
    assert not [p for p in run.path.iterdir() if p.name.startswith(".trials.parquet.tmp")]
