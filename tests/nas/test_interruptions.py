"""Interrupted searches lose nothing (issue 17): real ``nas search`` drivers on the session's Ray head, a real
SQLite study, real signals.

* Ctrl-C: exit 130, the exact ``--resume`` command, ``nas runs`` says interrupted; the run then moved and
  renamed resumes and ``--trials N`` extends it; a deleted or stale ``trials.parquet`` is rebuilt.
* The interruption loop: one search interrupted at seeded random points (SIGINT and SIGKILL of the driver,
  SIGKILL of the Ray worker running a trial, SIGKILL while the report is written) and resumed each time.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

from nas.config import load_run_config
from nas.trialsfile import trials_frame
from nas.runmodel import RunDir
from nas.study import interrupted_trials
from tests.nas.cli_helpers import REPO, run_nas
from tests.nas.search_helpers import load_study, tiny_config

pytestmark = pytest.mark.slow  # real searches on Ray

LOOP_SEED = 1717  # the random interruption points
COUNTED = ("COMPLETE", "PRUNED", "FAIL")


def _search_args(config, address: str) -> list[str]:
    flags = config.flags()
    args = ["--space", config.space, "--runs-dir", config.runs_dir, "--name", config.name,
            "--objectives", ",".join(flags["objectives"]), "--deploy-shape", "x".join(map(str, flags["deploy_shape"])),
            "--address", address, "--quiet"]
    for flag in ("trials", "sampler", "scheduler", "num_clips", "proxy_epochs", "proxy_width", "proxy_frames",
                 "proxy_size", "proxy_batch_size", "retries"):
        args += ["--" + flag.replace("_", "-"), str(flags[flag])]
    return args


def _driver(args: list[str]) -> subprocess.Popen:
    driver = subprocess.Popen([sys.executable, "-m", "nas", "search", *args], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    driver.started_at = time.time()
    return driver


def _running_since(run_dir: Path, since: float) -> bool:
    """A trial RUNNING in a table this driver wrote (a killed driver's table still shows its trials RUNNING)."""
    path = run_dir / "trials.parquet"
    return path.exists() and path.stat().st_mtime >= since and (_table(run_dir)["status"] == "RUNNING").any()


def _table(run_dir: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(run_dir / "trials.parquet")
    except (OSError, ValueError):  # not written yet
        return pd.DataFrame(columns=["trial_id", "status", "baseline"])


def _wait_for(condition, driver: subprocess.Popen, timeout: float = 240) -> bool:
    """Poll ``condition`` until it holds (True) or the driver exits (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if driver.poll() is not None:
            return False
        if condition():
            return True
        time.sleep(0.2)
    raise AssertionError("the driver neither got there nor exited")


def _counted(study) -> list:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("counted")]


def _assert_parquet_equals_the_study(run_dir: Path) -> None:
    config = load_run_config(run_dir)
    study = load_study(run_dir, config.study)
    expected = trials_frame(config.problem, config.proxy.epochs, study, None)
    table = pd.read_parquet(run_dir / "trials.parquet")
    pd.testing.assert_frame_equal(table, pd.read_parquet(_roundtrip(expected, run_dir)), check_like=False)


def _roundtrip(frame: pd.DataFrame, run_dir: Path) -> Path:
    path = run_dir.parent / f".expected-{run_dir.name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def _assert_one_status_per_trial(run_dir: Path, study) -> None:
    """One status everywhere (docs/reliability.md): the trial's own ``status`` attribute in the study (read
    through Optuna's public API, what optuna-dashboard shows), ``nas trials --json``, and the table the report
    and the progress line read."""
    listed = {row["trial_id"]: row["status"] for row in json.loads(run_nas("trials", str(run_dir), "--json").stdout)}
    table = pd.read_parquet(run_dir / "trials.parquet").query("baseline.isna()").set_index("trial_id")["status"]
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.WAITING:
            continue
        assert trial.user_attrs.get("status") == listed[trial.number] == table[trial.number], (
            trial.number, trial.state, trial.user_attrs.get("status"), listed[trial.number], table[trial.number])
    interrupted = [n for n, status in table.items() if status == "INTERRUPTED"]
    assert all(study.trials[n].state == TrialState.FAIL for n in interrupted)  # Optuna's nearest state
    report = run_dir.parent / f"{run_dir.name}-report"
    assert run_nas("report", str(run_dir), "--out", str(report)).returncode == 0
    html = (report / "index.html").read_text()
    shown = html.split("trials-interrupted", 1)[1].split("</table>", 1)[0] if interrupted else ""
    assert sorted(int(n) for n in re.findall(r"<tr[^>]*>\s*<td[^>]*>(\d+)</td>", shown)) == sorted(interrupted)
    shutil.rmtree(report)


# ---- Ctrl-C, then move, rename, extend, rebuild --------------------------------------------------


def test_ctrl_c_exits_130_and_the_moved_run_resumes_and_extends_with_trials_n(ray_address, tmp_path):
    config = tiny_config(tmp_path, name="first", trials=3, proxy_epochs=3)
    run_dir = Path(config.runs_dir) / "first"
    driver = _driver([*_search_args(config, ray_address), "--no-report"])

    def one_done_one_running() -> bool:
        table = _table(run_dir)
        return (table["status"] == "COMPLETE").any() and (table["status"] == "RUNNING").any()

    assert _wait_for(one_done_one_running, driver), driver.communicate()[1]
    finished = _table(run_dir).query("status == 'COMPLETE'")[["trial_id", "spec_key", "accuracy"]]
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err
    assert f"resume with: nas search --resume {run_dir}" in err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert "Tuner.restore" not in err and "Tuner.restore" in (run_dir / "search.log").read_text()  # ours, not Tune's
    runs = json.loads(run_nas("runs", config.runs_dir, "--json").stdout)
    assert [r["state"] for r in runs] == ["interrupted"]
    study = load_study(run_dir, "first")
    assert not study.get_trials(states=(TrialState.RUNNING,))  # settled at once, not left for the next attempt
    interrupted = interrupted_trials(study)
    assert interrupted and all("Ctrl-C" in message for message in interrupted.values())
    assert not any(study.trials[n].user_attrs.get("counted") for n in interrupted)
    table = _table(run_dir).set_index("trial_id")
    assert all(table.loc[n, "status"] == "INTERRUPTED" for n in interrupted)
    _assert_one_status_per_trial(run_dir, study)
    _assert_parquet_equals_the_study(run_dir)

    moved = tmp_path / "elsewhere" / "second"  # another folder, another name
    moved.parent.mkdir()
    run_dir.rename(moved)
    result = run_nas("search", "--resume", str(moved), "--trials", "5", "--address", ray_address, "--quiet",
                     "--no-report")
    assert result.returncode == 0, result.stderr
    study = load_study(moved, "first")  # the study kept its name
    assert len(_counted(study)) == 5
    assert yaml_trials(moved) == 5
    table = pd.read_parquet(moved / "trials.parquet").set_index("trial_id")
    for row in finished.itertuples():  # nothing finished before Ctrl-C was lost or re-run
        assert table.loc[row.trial_id, "spec_key"] == row.spec_key and table.loc[row.trial_id, "accuracy"] == row.accuracy
    assert table[table["status"].isin(COUNTED)]["spec_key"].is_unique
    runs = json.loads(run_nas("runs", str(moved.parent), "--json").stdout)
    assert [(r["name"], r["state"], r["trained"]) for r in runs] == [("second", "finished", 5)]

    # a deleted, then a stale trials.parquet: `nas report` rebuilds it from the study, never an empty report
    good = pd.read_parquet(moved / "trials.parquet")
    (moved / "trials.parquet").unlink()
    assert run_nas("report", str(moved)).returncode == 0
    pd.testing.assert_frame_equal(pd.read_parquet(moved / "trials.parquet"), good)
    assert f"{len(good)} trial(s) recorded" in (moved / "report" / "index.html").read_text()
    RunDir(moved).write_trials(good.iloc[:1])  # what a driver killed between the study and the table leaves
    assert run_nas("report", str(moved)).returncode == 0
    pd.testing.assert_frame_equal(pd.read_parquet(moved / "trials.parquet"), good)


def yaml_trials(run_dir: Path) -> int:
    return int(RunDir(run_dir).read_search()["config"]["trials"])


# ---- the interruption loop -----------------------------------------------------------------------

LOOP_SPACE = """\
name: loop
description: ten tiny depth-18 networks, for the interruption loop
families:
  resnet3d:
    conv: [r3d, r2plus1d]
    depth: 18
    srtg:
      placement: [none, final, mid]
      recurrent: [gru, lstm]
      gate: [inactive]
"""

# SIGINT and SIGKILL of the driver, SIGKILL of a trial's Ray worker, SIGKILL while the report is written
PLAN = ("sigint", "sigkill", "worker", "sigkill", "sigint", "report")


def _live_trial_pids(run_dir: Path, running: set[int]) -> dict[int, int]:
    """Ray worker pid of each ``running`` trial of the newest attempt that has reported an epoch (from Ray's
    result.json), kept only while that pid is still a Ray worker (never another process's)."""
    attempts = sorted(run_dir.glob("ray/attempt-*"), key=lambda p: int(p.name.split("-")[1]))
    if not attempts:
        return {}
    pids = {}
    for result in attempts[-1].glob("*/result.json"):  # one folder per trial, named after the trainable
        lines = result.read_text().strip().splitlines()
        if not lines:
            continue
        try:
            last = json.loads(lines[-1])
        except ValueError:  # being written
            continue
        number = _trial_number(last["config"])
        if number in running and _is_a_ray_worker(int(last["pid"])):
            pids[number] = int(last["pid"])
    return pids


def _trial_number(config: dict) -> int:
    """The study's trial number in a Tune result's config: the ``TrialRequest`` there is stored as its repr."""
    if "trial_number" in config:  # runs written before the executor seam
        return int(config["trial_number"])
    return int(re.search(r"\bnumber=(-?\d+)", str(config["request"])).group(1))


def _is_a_ray_worker(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::")
    except OSError:
        return False


def test_a_search_interrupted_again_and_again_loses_nothing(ray_address, tmp_path):
    (tmp_path / "loop.yaml").write_text(LOOP_SPACE)
    config = tiny_config(tmp_path, name="loop", space=str(tmp_path / "loop.yaml"), trials=10, retries=1, proxy_epochs=5)
    run_dir = Path(config.runs_dir) / "loop"
    rng = random.Random(LOOP_SEED)
    survived: list[str] = []
    finished: dict[int, tuple] = {}  # trial number -> what it was when a driver died
    worker_victims: list[int] = []
    fresh = True

    def start() -> subprocess.Popen:
        nonlocal fresh
        args = _search_args(config, ray_address) if fresh else ["--resume", str(run_dir), "--address", ray_address,
                                                                "--quiet"]
        fresh = False
        return _driver(args)

    def remember_finished() -> None:
        for trial in load_study(run_dir, "loop").get_trials(deepcopy=False):
            if trial.user_attrs.get("status") in ("COMPLETE", "PRUNED", "INFEASIBLE") or trial.user_attrs.get("counted"):
                finished.setdefault(trial.number, (trial.user_attrs.get("status"), trial.user_attrs.get("spec_key"),
                                                   trial.user_attrs.get("accuracy"), trial.values))

    driver = start()
    for kind in PLAN:
        if kind == "report":
            landed = _interrupt_the_report(run_dir, driver, rng)
        elif kind == "worker":
            landed = _kill_a_worker(run_dir, driver, rng, worker_victims)
        else:
            landed = _interrupt_the_driver(run_dir, driver, rng, kind)
        if landed:
            survived.append(kind)
        if driver.poll() is not None:  # interrupted (or finished): check, then resume
            remember_finished()
            driver = start()
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    print(f"interruptions survived: {len(survived)} ({', '.join(survived)}); seed {LOOP_SEED}")
    assert len(survived) >= 4, survived  # of 6: on a quiet machine a short search can end before the last ones

    study = load_study(run_dir, "loop")
    trials = study.get_trials(deepcopy=False)
    counted = _counted(study)
    assert len(counted) == config.trials  # exactly the requested trials, none counted twice
    assert len({t.user_attrs["spec_key"] for t in counted}) == len(counted)
    trained = [t for t in trials if t.user_attrs.get("status") in ("COMPLETE", "PRUNED")]
    assert len({t.user_attrs["spec_key"] for t in trained}) == len(trained)  # no finished trial re-run
    for number, before in finished.items():  # no finished trial lost or changed
        t = trials[number]
        assert (t.user_attrs.get("status"), t.user_attrs.get("spec_key"), t.user_attrs.get("accuracy"), t.values) == before
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    _assert_one_status_per_trial(run_dir, study)
    for number in worker_victims:  # a killed worker's trial FAILs with its message and is retried
        victim = trials[number]
        assert victim.user_attrs["status"] == "FAIL" and "process died" in victim.user_attrs["error"]
        if not victim.user_attrs["counted"]:
            assert any(t.user_attrs.get("retry_of") == number for t in trials)
    _assert_parquet_equals_the_study(run_dir)
    assert (run_dir / "report" / "index.html").is_file()


def _interrupt_the_driver(run_dir: Path, driver: subprocess.Popen, rng: random.Random, kind: str) -> bool:
    """Once this driver runs a trial, wait a random while, then SIGINT or SIGKILL it. Returns whether it landed."""
    if not _wait_for(lambda: _running_since(run_dir, driver.started_at), driver):
        return False
    time.sleep(rng.uniform(0.5, 5.0))
    if driver.poll() is not None:
        return False
    driver.send_signal(signal.SIGINT if kind == "sigint" else signal.SIGKILL)
    _, err = driver.communicate(timeout=120)
    if kind == "sigint":
        assert driver.returncode == 130, err
        assert "nas search --resume" in err
    else:
        assert driver.returncode == -signal.SIGKILL
    return True


def _kill_a_worker(run_dir: Path, driver: subprocess.Popen, rng: random.Random, victims: list[int]) -> bool:
    """SIGKILL the Ray worker of a trial that has trained an epoch and not finished; the driver must go on.

    The trial that died is read back from the table (a reused worker may have moved on to the next trial)."""
    if not _wait_for(lambda: bool(_live_trial_pids(run_dir, _running(run_dir))), driver):
        return False
    time.sleep(rng.uniform(0.0, 0.5))
    live = _live_trial_pids(run_dir, _running(run_dir))
    if not live or driver.poll() is not None:
        return False
    died_before = _died(run_dir)
    try:
        os.kill(live[min(live)], signal.SIGKILL)
    except ProcessLookupError:
        return False
    if not _wait_for(lambda: _died(run_dir) - died_before, driver, timeout=120):
        return False
    victims.extend(sorted(_died(run_dir) - died_before))
    assert driver.poll() is None  # the search goes on
    return True


def _running(run_dir: Path) -> set[int]:
    table = _table(run_dir)
    return {int(t) for t in table[table["status"] == "RUNNING"]["trial_id"]}


def _died(run_dir: Path) -> set[int]:
    """Trials the table shows FAIL because their process died."""
    table = _table(run_dir)
    if "error" not in table:
        return set()
    died = table["error"].map(lambda e: isinstance(e, str) and "process died" in e)
    return {int(t) for t in table[died]["trial_id"]}


def _interrupt_the_report(run_dir: Path, driver: subprocess.Popen, rng: random.Random) -> bool:
    """Once the search is done and the report is being written, SIGKILL the driver."""
    report = run_dir / "report"
    started = time.time()
    if not _wait_for(lambda: report.is_dir() and any(p.stat().st_mtime >= started for p in report.iterdir()),
                     driver, timeout=400):
        return False
    time.sleep(rng.uniform(0.0, 0.2))
    if driver.poll() is not None:
        return False
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=60)
    return True


# ---- a resumed search remembers its rungs ---------------------------------------------------------


def _rung_args(config, address: str) -> list[str]:
    return [*_search_args(config, address), "--grace-period", "1", "--reduction-factor", "2", "--max-concurrent", "1",
            "--no-report"]


def _decisions(run_dir: Path, name: str) -> list[tuple[str, str, int]]:
    """Per trained trial, in training order: architecture, COMPLETE or PRUNED, the epoch it reached."""
    return [(t.user_attrs["spec_key"], t.user_attrs["status"], t.user_attrs["fidelity"])
            for t in load_study(run_dir, name).get_trials(deepcopy=False)
            if t.user_attrs.get("status") in ("COMPLETE", "PRUNED")]


def test_a_search_interrupted_after_its_first_rung_decisions_resumes_with_the_same_decisions(ray_address, tmp_path):
    """MO-ASHA (rungs at epochs 1 and 2, eta 2), one trial at a time: Ctrl-C once three trials are done, resume, and
    every architecture continues or stops as in the same search run without interruption.

    A resumed random sampler restarts its stream, so the architectures the whole search trained after the
    interruption point are enqueued into the resumed study in its order (the trial the Ctrl-C cut short is
    re-enqueued by the search itself and trains first): the point is the rungs, not the sampler.
    """
    whole = tiny_config(tmp_path, name="whole", trials=6, scheduler="moasha", proxy_epochs=3)
    result = run_nas("search", *_rung_args(whole, ray_address))
    assert result.returncode == 0, result.stderr
    expected = _decisions(Path(whole.runs_dir) / "whole", "whole")
    assert len(expected) == 6 and any(status == "PRUNED" for _, status, _ in expected[3:]), expected

    config = whole.replace(name="resumed")
    run_dir = Path(config.runs_dir) / "resumed"
    driver = _driver(_rung_args(config, ray_address))
    three_done = lambda: (_table(run_dir)["status"].isin(("COMPLETE", "PRUNED")).sum() >= 3  # noqa: E731
                          and (_table(run_dir)["status"] == "RUNNING").any())
    assert _wait_for(three_done, driver), driver.communicate()[1]
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err

    study = load_study(run_dir, "resumed")
    done = [key for key, _, _ in _decisions(run_dir, "resumed")]
    assert done == [key for key, _, _ in expected[:len(done)]]  # same seed, same first trials
    waiting = {t.user_attrs.get("retry_of") for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    requeued = [study.trials[n].user_attrs["spec_key"] for n in waiting if n is not None]
    params = {key: t.params for t in load_study(Path(whole.runs_dir) / "whole", "whole").trials
              if (key := t.user_attrs.get("spec_key"))}
    for key, _, _ in expected[len(done) + len(requeued):]:
        study.enqueue_trial(params[key])

    result = run_nas("search", "--resume", str(run_dir), "--address", ray_address, "--quiet", "--no-report")
    assert result.returncode == 0, result.stderr
    assert _decisions(run_dir, "resumed") == expected
