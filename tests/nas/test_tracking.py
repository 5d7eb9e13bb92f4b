"""``nas search --mlflow URI`` (docs/tracking.md), against real stores: a folder (a SQLite store MLflow writes in
it) and a real ``mlflow server`` on loopback, killed mid-search.

What MLflow holds is compared with the run's own files: one parent run per search, one child run per trained
trial with the trial's Optuna parameters, per-epoch accuracy and loss equal to ``trials.parquet``'s history at
each epoch, costs, status and stop epoch; a resume that extends the run (and one that finds a child half-logged
and ``mlflow.yaml`` gone) ends with exactly one child per trial and no metric step twice. A server that dies
mid-search costs one warning line; bad ``--mlflow`` input is one error line and no run directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nas.runmodel import TRAINED_STATUSES
from nas.runs import pareto_front
from tests.nas.cli_helpers import nas
from tests.nas.search_helpers import write_tiny_space

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.timeout(600)

WARNING = "warning: MLflow tracking at "
# The cheapest search the other tests run (tests/nas/search_helpers.py:tiny_config), on the Ray-free executor.
TINY = ("--objectives", "accuracy,gmacs", "--sampler", "random", "--scheduler", "fifo", "--num-clips", "96",
        "--proxy-epochs", "2", "--proxy-width", "0.125", "--proxy-frames", "8", "--proxy-size", "32",
        "--proxy-batch-size", "16", "--deploy-shape", "8x32x32", "--executor", "local", "--max-concurrent", "1",
        "--quiet")



def search(tmp_path: Path, *flags: str) -> list[str]:
    return ["search", "--runs-dir", str(tmp_path / "runs"), "--space", str(write_tiny_space(tmp_path)), *TINY, *flags]


# ---- a real tracking server on loopback ---------------------------------------------------------------------


class Server:
    """``mlflow server`` on a free loopback port with a SQLite backend; started at once, waited for on use."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mlflow-server-"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = f"sqlite:///{self.folder / 'mlflow.db'}"
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        self.log = (self.folder / "server.log").open("w")
        self.process = subprocess.Popen(
            [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", self.db, "--artifacts-destination", str(self.folder / "artifacts")],
            cwd=self.folder, stdout=subprocess.DEVNULL, stderr=self.log,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no job runner: tracking only
            start_new_session=True)  # its own process group: the kill reaches its workers too

    def wait(self, timeout: float = 180) -> str:
        from nas.tracking import probe

        deadline = time.monotonic() + timeout
        while probe(self.url + "/health", 1.0) is not None:
            assert self.process.poll() is None, (self.folder / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the MLflow server did not answer in time"
            time.sleep(0.5)
        return self.url

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    """Requested by the folder-store test too, so the server's boot (~30 s on a loaded 2-core machine)
    overlaps that test's searches instead of adding to them."""
    started = Server()
    yield started
    started.kill()
    started.log.close()
    shutil.rmtree(started.folder, ignore_errors=True)


# ---- what MLflow holds, read back ------------------------------------------------------------------------


def runs_of(uri: str, run_dir: Path) -> tuple[object, list]:
    """The search's parent run (exactly one) and its child runs, read from the store at ``uri``."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    key = yaml.safe_load((run_dir / "mlflow.yaml").read_text())["run_key"]
    everything = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                    filter_string=f"tags.`videonas.run_key` = '{key}'", max_results=1000)
    parents = [r for r in everything if r.data.tags["videonas.role"] == "search"]
    assert len(parents) == 1, [r.info.run_id for r in parents]
    children = [r for r in everything if r.data.tags["videonas.role"] == "trial"]
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    return parents[0], children


def assert_children_match_the_table(uri: str, children: list, table: pd.DataFrame) -> None:
    """Each child is its trial: parameters, status, stop epoch, costs, and accuracy / loss at every epoch once."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    by_trial = {int(c.data.tags["videonas.trial"]): c for c in children}
    assert len(by_trial) == len(children), "a trial has two child runs"
    for row in table.to_dict("records"):
        child = by_trial[row["trial_id"]]
        assert child.data.params == {k: str(v) for k, v in json.loads(row["params_json"]).items()}
        assert child.data.tags["status"] == row["status"]
        assert child.data.tags["stopped_at_epoch"] == str(row["fidelity"])
        assert child.data.tags["videonas.synced"] == "1"
        assert child.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}[row["status"]]
        assert child.data.metrics["gmacs"] == pytest.approx(row["gmacs"], rel=1e-12)
        assert child.data.metrics["params"] == row["params"]
        for key in ("accuracy", "loss"):
            logged = sorted((m.step, m.value) for m in client.get_metric_history(child.info.run_id, key))
            expected = [(e["epoch"], e[key]) for e in json.loads(row["history"])]
            assert [step for step, _ in logged] == [epoch for epoch, _ in expected], (row["trial_id"], key)
            assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-12), (row["trial_id"], key)


def trained(run_dir: Path) -> pd.DataFrame:
    table = pd.read_parquet(run_dir / "trials.parquet")
    return table[table["status"].isin(TRAINED_STATUSES)]


# ---- the tests ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, server):
    """A folder store: ``--trials 2``, then ``--resume --trials 3`` (with its report) after one child lost its
    synced mark (as a driver killed mid-sync leaves it) and ``mlflow.yaml`` was deleted. Returns the run
    directory and the store's URI. (It takes ``server`` so the server boots meanwhile.)"""
    tmp_path = tmp_path_factory.mktemp("folder")
    store = tmp_path / "mlflow"
    code, _, err = nas(*search(tmp_path, "--trials", "2", "--mlflow", str(store), "--no-report"))
    assert code == 0 and err == "", err
    run_dir = tmp_path / "runs" / "tiny"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    parent, children = runs_of(uri, run_dir)
    assert len(children) == len(trained(run_dir)) == 2 and parent.info.status == "FINISHED"
    mlflow.MlflowClient(tracking_uri=uri).delete_tag(children[0].info.run_id, "videonas.synced")
    (run_dir / "mlflow.yaml").unlink()  # the parent is found again by its tags
    code, _, err = nas("search", "--resume", str(run_dir), "--trials", "3", "--quiet")
    assert code == 0 and err == "", err
    return run_dir, uri


@pytest.mark.slow
def test_a_search_and_its_resumed_extension_are_one_parent_and_one_child_per_trial(folder_run, tmp_path):
    run_dir, uri = folder_run
    table = trained(run_dir)
    parent, children = runs_of(uri, run_dir)
    assert len(children) == len(table) == 3
    assert_children_match_the_table(uri, children, table)
    assert parent.info.status == "FINISHED" and parent.data.tags["trials"] == "3"
    assert parent.data.params["sampler"] == "random" and parent.data.params["proxy_epochs"] == "2"
    assert parent.data.tags["objectives"] == "accuracy (maximize), gmacs (minimize)"
    assert yaml.safe_load((run_dir / "mlflow.yaml").read_text())["parent_run_id"] == parent.info.run_id
    client = mlflow.MlflowClient(tracking_uri=uri)
    steps = [m.step for m in client.get_metric_history(parent.info.run_id, "hypervolume")]
    assert sorted(steps) == [1, 2, 3]
    front = pd.read_csv(client.download_artifacts(parent.info.run_id, "pareto_front.csv", str(tmp_path)))
    assert sorted(front["trial_id"]) == sorted(pareto_front(pd.read_parquet(run_dir / "trials.parquet"),
                                                            ["accuracy", "gmacs"])["trial_id"])
    assert "report/index.html" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}


@pytest.mark.slow
def test_mlflows_file_store_holds_the_same_runs(folder_run, tmp_path, monkeypatch):
    """``file:/PATH`` (MLflow's file store, writable with ``MLFLOW_ALLOW_FILE_STORE=true``): the same run synced
    there from its table, as a resume with another ``--mlflow`` does, holds the same parent and children."""
    from nas.config import load_run_config
    from nas.runmodel import RunDir
    from nas.tracking import check_tracking_uri, normalise_uri, open_tracker

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run_dir = folder_run[0]
    uri = normalise_uri(f"file:{tmp_path / 'mlruns'}")
    check_tracking_uri(uri)
    tracker = open_tracker(load_run_config(run_dir).replace(mlflow=uri), RunDir(run_dir))
    tracker.update(pd.read_parquet(run_dir / "trials.parquet"))
    tracker.finish()
    parent, children = runs_of(uri, run_dir)
    assert len(children) == 3 and parent.info.status == "FINISHED"
    assert_children_match_the_table(uri, children, trained(run_dir))


@pytest.mark.slow
def test_a_tracking_server_killed_mid_search_costs_one_warning_line(tmp_path, server):
    """The server is SIGKILLed once the first trial is logged there: the search completes (exit 0), stderr
    holds exactly one MLflow line, and what reached the server before is right."""
    url = server.wait()
    argv = search(tmp_path, "--trials", "3", "--mlflow", url, "--no-report")
    search_process = subprocess.Popen([sys.executable, "-m", "nas", *argv], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
    killed = threading.Event()

    def kill_after_the_first_trial() -> None:
        client = mlflow.MlflowClient(tracking_uri=url)
        while search_process.poll() is None:
            runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                      filter_string="tags.`videonas.synced` = '1'")
            if runs:
                server.kill()
                killed.set()
                return
            time.sleep(0.3)

    watcher = threading.Thread(target=kill_after_the_first_trial, daemon=True)
    watcher.start()
    out, err = search_process.communicate(timeout=400)
    watcher.join(timeout=30)
    assert killed.is_set(), "the search ended before a trial reached the server"
    assert search_process.returncode == 0, err
    assert "Traceback" not in err
    mentions = [line for line in err.splitlines() if "MLflow" in line or "mlflow" in line]
    assert len(mentions) == 1 and mentions[0].startswith(f"{WARNING}{url} stopped answering ("), err
    assert mentions[0].endswith("the search goes on, trials are no longer logged there")
    run_dir = tmp_path / "runs" / "tiny"
    table = trained(run_dir)
    assert len(table) == 3
    parent, children = runs_of(server.db, run_dir)  # the dead server's own database
    assert 1 <= len(children) < 3
    synced = [c for c in children if c.data.tags.get("videonas.synced") == "1"]
    assert_children_match_the_table(server.db, synced, table[table["trial_id"].isin(
        [int(c.data.tags["videonas.trial"]) for c in synced])])


@pytest.mark.parametrize("value, needle", [
    ("", "empty"),
    ("foo://x", "unknown scheme 'foo://'"),
    ("http://127.0.0.1:1", "no MLflow tracking server answers"),
    ("127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("sqlite:////no/such/folder/mlflow.db", "does not exist"),
    ("file:{tmp}/store", "MLFLOW_ALLOW_FILE_STORE"),
    ("{tmp}/a-file/store", "is a file"),
])
def test_bad_mlflow_input_is_one_error_line_and_no_run_directory(tmp_path, value, needle, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    (tmp_path / "a-file").write_text("")
    code, out, err = nas(*search(tmp_path, "--trials", "1", "--mlflow", value.format(tmp=tmp_path)))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --mlflow "), err
    assert needle in lines[0] and "Traceback" not in out + err
    assert not (tmp_path / "runs").exists()


def test_without_the_extra_mlflow_is_one_error_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` meets where the extra is not installed
    code, _, err = nas(*search(tmp_path, "--trials", "1", "--mlflow", str(tmp_path / "store")))
    assert code == 2 and err.strip() == "error: --mlflow needs the optional extra: pip install 'videonas[mlflow]'"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "store").exists()


def test_the_setting_is_stored_with_the_run_config_and_an_older_run_resumes_without_it():
    from nas.config import SearchConfig

    config = SearchConfig.from_flags(mlflow="http://127.0.0.1:5000")
    assert config.to_dict()["mlflow"] == "http://127.0.0.1:5000"
    assert SearchConfig.from_dict(config.to_dict()).mlflow == "http://127.0.0.1:5000"
    older = {k: v for k, v in config.to_dict().items() if k != "mlflow"}
    assert SearchConfig.from_dict(older).mlflow is None
