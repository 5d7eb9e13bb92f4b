"""The run directory (``runs/NAME/``): paths, the driver lock, ``search.yaml``, ``trials.parquet``.

Format: ``docs/run-directory.md``. The Optuna study is the source of truth; ``trials.parquet`` is an
export of it (rewritten after every finished trial) that reports and ``nas trials`` read.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from space import ArchSpec, spec_from_dict
from space.errors import UserInputError

SEARCH_FILE = "search.yaml"
TRIALS_FILE = "trials.parquet"
STUDY_FILE = "study.db"
LOCK_FILE = ".lock"

TRIAL_COLUMNS = [
    "trial_id", "status", "spec", "spec_key", "family", "baseline", "accuracy", "gmacs", "latency_ms", "params",
    "recurrent_params", "feasible", "fidelity", "max_fidelity", "started_at", "finished_at", "train_seconds",
    "error", "duplicate_of", "gate_open_rates", "params_json", "latency_profile", "deploy_shape", "history",
]


class RunLockedError(UserInputError):
    """Another driver holds this run."""


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def search_file(self) -> Path:
        return self.path / SEARCH_FILE

    @property
    def trials_file(self) -> Path:
        return self.path / TRIALS_FILE

    @property
    def study_file(self) -> Path:
        return self.path / STUDY_FILE

    @property
    def costs_dir(self) -> Path:
        return self.path / "costs"

    @property
    def ray_dir(self) -> Path:
        return self.path / "ray"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    def storage_url(self, override: str | None = None) -> str:
        return override or f"sqlite:///{self.study_file.resolve()}"

    def exists(self) -> bool:
        return self.search_file.is_file()

    def read_search(self) -> dict[str, Any]:
        if not self.search_file.is_file():
            raise UserInputError(f"{self.path} is not a run directory (no {SEARCH_FILE}); see `nas runs`")
        try:
            return yaml.safe_load(self.search_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserInputError(f"{self.search_file} is not valid YAML: {exc}") from None

    def write_search(self, content: dict[str, Any]) -> None:
        _atomic_write(self.search_file, yaml.safe_dump(content, sort_keys=False))

    def read_trials(self) -> pd.DataFrame:
        if not self.trials_file.is_file():
            return pd.DataFrame(columns=TRIAL_COLUMNS)
        return pd.read_parquet(self.trials_file)

    def write_trials(self, frame: pd.DataFrame) -> None:
        tmp = self.trials_file.with_suffix(".parquet.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, self.trials_file)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunLock:
    """An exclusive ``flock`` on ``RUN/.lock`` for the driver's lifetime (released by the OS if it dies)."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.run.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLockedError(f"run {self.run.path} is locked by {holder}; one driver per run") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def environment() -> dict[str, Any]:
    """Versions and hardware recorded with every run (reproducibility, cost-figure provenance)."""
    import optuna
    import ray
    import torch

    return {
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "ray": str(ray.__version__),
        "optuna": str(optuna.__version__),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_revision": git_revision(),
        "hostname": socket.gethostname(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision() -> str | None:
    source = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def trial_row(run_dir: str | Path, trial_id: int) -> dict[str, Any]:
    """One row of ``trials.parquet`` as a dict; a missing run or trial is a user error."""
    run = RunDir(Path(run_dir))
    if not run.path.is_dir():
        raise UserInputError(f"run directory {run_dir} does not exist")
    frame = run.read_trials()
    rows = frame[frame["trial_id"] == trial_id]
    if rows.empty:
        known = ", ".join(str(t) for t in frame["trial_id"].tolist()[:20]) or "none"
        raise UserInputError(f"{run_dir} has no trial {trial_id}; trials: {known}")
    return rows.iloc[0].to_dict()


def trial_spec(run_dir: str | Path, trial_id: int) -> ArchSpec:
    """The architecture of trial ``trial_id`` of a run (``RUN_DIR:TRIAL_ID`` on the command line)."""
    row = trial_row(run_dir, trial_id)
    if not row.get("spec"):
        raise UserInputError(f"trial {trial_id} of {run_dir} has no architecture (status {row.get('status')})")
    return spec_from_dict(json.loads(row["spec"]))
