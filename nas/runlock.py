"""The search driver's hold on a run directory: the one-driver lock and the environment it records.

What the directory holds and means is the run model (:mod:`nas.runmodel`); this module is only what a
*running* search adds: an exclusive ``flock`` and the versions/hardware stored in ``search.yaml``.
"""

from __future__ import annotations

import fcntl
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from nas.runmodel import RunDir
from space.errors import UserInputError


class RunLockedError(UserInputError):
    """Another driver holds this run."""


class RunLock:
    """An exclusive ``flock`` on ``RUN/.lock`` for the driver's lifetime (released by the OS if it dies)."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.run.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
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


def held_by_a_driver(run: RunDir) -> bool:
    """Whether a driver holds the run's lock now (probed with a shared lock; nothing is written)."""
    if not run.lock_file.exists():
        return False
    fd = os.open(run.lock_file, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


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
