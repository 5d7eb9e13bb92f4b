"""What a user does between runs, without Ray (issue 17): mistakes that must not take a run's name, leftovers of
a killed start, flags that cannot change on resume, and ``nas runs`` over damaged neighbours.

The searches themselves (Ctrl-C, renamed runs, ``--resume --trials N``, rebuilding ``trials.parquet``) are in
``tests/nas/test_interruptions.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from nas.config import SearchConfig, load_run_config, resumed_config
from nas.runmodel import RunDir
from nas.runstart import check_before_creating, take_over_leftover
from tests.nas.cli_helpers import assert_one_line_error, run_nas
from tests.nas.search_helpers import write_tiny_space
from tests.reports.fake_run import write_run


def _cache_format() -> str:
    from runners.cache import FORMAT

    return FORMAT


LATE_MISTAKES = {
    "unknown latency profile": (["--objectives", "accuracy,latency", "--latency-profile", "nope"], "nope"),
    "unknown dataset": (["--data", "nope"], "--data"),
    "real dataset without a cache": (["--data", "ucf101"], "--cache"),
    "missing cache": (["--cache", "{tmp}/no cache here"], "does not exist"),
    "folder that is not a cache": (["--cache", "{tmp}"], "not a prepared dataset"),
    "cache of another dataset": (["--data", "hmdb51", "--cache", "{tmp}/ucf-cache"], "holds 'ucf101'"),
    "GPUs on a machine without any": (["--gpus-per-trial", "1"], "no GPU"),
}


@pytest.mark.parametrize("mistake", list(LATE_MISTAKES))
@pytest.mark.slow
def test_a_mistake_found_after_the_run_directory_used_to_exist_leaves_none(tmp_path, mistake):
    """Each of these used to fail after RUN/ was created (the name was then taken for good)."""
    if mistake.startswith("GPUs") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cache = tmp_path / "ucf-cache"
    cache.mkdir()
    (cache / "manifest.json").write_text(json.dumps({"format": _cache_format(), "dataset": "ucf101",
                                                     "splits": {"train": {}, "val": {}}}))
    args, needle = LATE_MISTAKES[mistake]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    runs = tmp_path / "runs"
    result = run_nas("search", "--space", str(write_tiny_space(tmp_path)), "--runs-dir", str(runs), "--name", "x",
                     "--quiet", *args)
    assert_one_line_error(result, needle)
    assert not (runs / "x").exists()


def test_a_folder_left_by_a_killed_start_is_taken_over_and_anything_else_is_kept(tmp_path):
    """A driver killed while starting leaves .lock, study.db and costs/ but no search.yaml: the next start
    with that name clears them (the folder is not a run yet); a folder with any other file is refused."""
    config = SearchConfig.from_flags(name="left", runs_dir=str(tmp_path / "runs"), space=str(write_tiny_space(tmp_path)),
                          objectives=("accuracy", "gmacs"))
    run = RunDir(tmp_path / "runs" / "left")
    (run.path / "costs").mkdir(parents=True)
    (run.path / "costs" / "latency.json").write_text("{}")
    run.lock_file.write_text("pid 1 on elsewhere")
    optuna.create_study(study_name="left", storage=run.storage_url())
    check_before_creating(config, run, resume=False)  # not "already exists"
    take_over_leftover(config, run)
    assert sorted(p.name for p in run.path.iterdir()) == [".lock"]
    optuna.create_study(study_name="left", storage=run.storage_url())  # the name is free again

    (run.path / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="already exists"):
        check_before_creating(config, run, resume=False)
    assert (run.path / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_nas_runs_lists_every_readable_run_and_marks_each_unreadable_one(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "good")
    write_run(runs / "binary", seed=1)
    (runs / "binary" / "search.yaml").write_bytes(b"\xff\xfe\x00binary")
    write_run(runs / "not-a-mapping", seed=2)
    (runs / "not-a-mapping" / "search.yaml").write_text("- a list\n")
    starting = runs / "starting"  # killed while starting: a study, no search.yaml
    starting.mkdir()
    optuna.create_study(study_name="starting", storage=f"sqlite:///{starting / 'study.db'}")
    (runs / "notes").mkdir()  # not a run at all: not listed
    result = run_nas("runs", str(runs), "--json")
    assert result.returncode == 0, result.stderr
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(records) == {"good", "binary", "not-a-mapping", "starting"}
    assert records["good"]["state"] == "idle" and records["good"]["trained"] > 0
    for name in ("binary", "not-a-mapping", "starting"):
        assert records[name]["state"] == "unreadable" and records[name]["error"], records[name]
    assert "nas search --name starting" in records["starting"]["error"]
    table = run_nas("runs", str(runs))
    assert table.returncode == 0 and "good" in table.stdout and "unreadable" in table.stdout


@pytest.fixture()
def finished_run(tmp_path) -> Path:
    run = tmp_path / "runs" / "done"
    write_run(run)
    content = yaml.safe_load((run / "search.yaml").read_text())
    content["config"] = SearchConfig.from_flags(name="done", runs_dir=str(run.parent), space=str(write_tiny_space(tmp_path)),
                                     objectives=("accuracy", "gmacs", "latency"), trials=4).to_dict()
    (run / "search.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    return run


@pytest.mark.parametrize("flags, refused", [
    (["--space", "mtnet"], "--space mtnet"),
    (["--objectives", "accuracy,params"], "--objectives accuracy,params"),
    (["--seed", "7"], "--seed 7"),
    (["--proxy-epochs", "9"], "--proxy-epochs 9"),
    (["--deploy-shape", "8x32x32"], "--deploy-shape 8x32x32"),
    (["--trials", "9", "--sampler", "nsga2"], "--sampler nsga2"),
])
@pytest.mark.slow
def test_a_flag_that_cannot_change_on_resume_is_refused(finished_run, flags, refused):
    before = (finished_run / "search.yaml").read_bytes()
    result = run_nas("search", "--resume", str(finished_run), *flags, "--quiet")
    assert_one_line_error(result, "cannot change", refused, "on resume")
    assert (finished_run / "search.yaml").read_bytes() == before


def test_resume_takes_the_changeable_flags_and_accepts_the_run_s_own_values(finished_run):
    stored = load_run_config(finished_run)
    resumed = resumed_config(stored, {"trials": 9, "time_budget_s": 60.0, "max_concurrent": 1,
                                      "objectives": ("accuracy", "gmacs", "latency"), "space": stored.space,
                                      "name": "done", "runs_dir": str(finished_run.parent / ".")})
    assert (resumed.trials, resumed.time_budget_s, resumed.execution.max_concurrent) == (9, 60.0, 1)
    assert resumed.replace(trials=4, time_budget_s=None, max_concurrent=None) == stored


def test_a_renamed_run_keeps_its_study_name(finished_run):
    """The study is named once, at creation; the folder's name is only where the run now lives."""
    moved = finished_run.parent.parent / "elsewhere" / "renamed"
    moved.parent.mkdir()
    finished_run.rename(moved)
    config = load_run_config(moved)
    assert (config.name, config.study) == ("renamed", "done")
    optuna.load_study(study_name=config.study, storage=RunDir(moved).storage_url())  # the stored study is found
