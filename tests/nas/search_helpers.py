"""Shared pieces of the search tests: a tiny space, tiny proxies, one Ray head on loopback per module."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from nas.config import SearchConfig

TINY_SPACE = """\
name: tiny
description: six tiny depth-18 networks, for tests
families:
  resnet3d:
    conv: [r3d, r2plus1d]
    depth: 18
    srtg:
      placement: [none, final, mid]
      recurrent: [gru]
      gate: [inactive]
"""


def write_tiny_space(folder: Path) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


def tiny_config(tmp_path: Path, **overrides) -> SearchConfig:
    """A search that trains 8-frame 32 px clips at width 1/8 for 2 epochs: seconds per trial."""
    settings = dict(
        name="tiny",
        runs_dir=str(tmp_path / "runs"),
        space=str(write_tiny_space(tmp_path)),
        trials=4,
        objectives=("accuracy", "gmacs"),
        sampler="random",
        scheduler="fifo",
        num_clips=96,
        num_classes=4,
        proxy_epochs=2,
        proxy_width=0.125,
        proxy_frames=8,
        proxy_size=32,
        proxy_batch_size=16,
        deploy_shape=(8, 32, 32),
        cpus_per_trial=1.0,
        seed=0,
    )
    settings.update(overrides)
    return SearchConfig.from_flags(**settings)


def start_ray_head(tmp_path: Path) -> str:
    """``ray start --head`` on loopback with 2 CPUs and no dashboard; returns its address.

    The head gets its own ``--temp-dir`` so :func:`stop_ray_head` can stop exactly its processes
    (``ray stop`` would stop every Ray instance on the machine).
    """
    ray_bin = Path(sys.executable).with_name("ray")
    port, agent_port, metrics_port = (str(_free_port()) for _ in range(3))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    if not (Path.home() / ".ray" / "auth_token").exists():
        subprocess.run([str(ray_bin), "get-auth-token", "--generate"], check=True, capture_output=True, env=env)
    subprocess.run(
        [str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         f"--dashboard-agent-listen-port={agent_port}",
         f"--metrics-export-port={metrics_port}",
         f"--temp-dir={_head_temp_dir(tmp_path)}",
         "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"],
        check=True, capture_output=True, text=True, timeout=120,
        env=env,
    )
    return f"127.0.0.1:{port}"


def _free_port() -> int:
    """A loopback port nobody listens on now (several engineers' test sessions share one machine)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _head_temp_dir(tmp_path: Path) -> Path:
    global _HEAD_TEMP_DIR
    _HEAD_TEMP_DIR = Path(tempfile.mkdtemp(prefix="rayhead-", dir="/tmp"))  # short: Ray's socket paths are limited
    return _HEAD_TEMP_DIR


_HEAD_TEMP_DIR: Path | None = None


def stop_ray_head() -> None:
    """Stop the processes of the head :func:`start_ray_head` started, and only those."""
    if _HEAD_TEMP_DIR is None:
        return
    marker = str(_HEAD_TEMP_DIR).encode()
    victims = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "cmdline").read_bytes():
                victims.append(int(proc.name))
        except OSError:
            continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in victims:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(2)
    shutil.rmtree(_HEAD_TEMP_DIR, ignore_errors=True)


def load_study(run_dir: Path, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{run_dir / 'study.db'}")


def _postgres_bin() -> Path | None:
    """Debian keeps the server binaries in /usr/lib/postgresql/VERSION/bin; elsewhere they are on PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if candidates:
        return candidates[0].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextlib.contextmanager
def postgres_server(tmp_path: Path):
    """A PostgreSQL URL: CI's server (VIDEONAS_TEST_POSTGRES_URL), else a throwaway cluster on loopback.

    Skips only where no PostgreSQL binary exists. As root the throwaway cluster runs as ``postgres``.
    """
    url = os.environ.get("VIDEONAS_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binary on this machine")
    data = Path(tempfile.mkdtemp(prefix="pgdata-", dir="/tmp"))
    as_postgres = os.geteuid() == 0
    if as_postgres:
        shutil.chown(data, "postgres")

    def run(*args: str) -> None:
        command = [str(bin_dir / args[0]), *args[1:]]
        if as_postgres:
            command = ["su", "postgres", "-c", " ".join(shlex.quote(c) for c in command)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    port = "54329"
    run("initdb", "-D", str(data), "-U", "videonas", "--auth=trust")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    run("pg_ctl", "-D", str(data), "-o", options, "-w", "-l", str(data / "log"), "start")
    try:
        yield f"postgresql://videonas@127.0.0.1:{port}/postgres"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)
