"""A worker killed in a Ray Train retrain, from the tests only: an ``after_step`` hook for :func:`runners.retrain.retrain`.

``retrain(..., after_step=kill_rank_after(rank=1, epoch=1, step=1, marker=PATH))`` SIGKILLs rank 1's process after
step 2 of epoch 2 (0-based arguments), once: the marker file records that it fired, so the restarted worker group
trains on. A real kill, as a lost machine or the kernel's OOM killer would deliver it. The hook runs in the Ray
Train workers, which may not be able to import ``tests``: this module is pickled by value.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

from ray import cloudpickle


def kill_rank_after(*, rank: int, epoch: int, step: int, marker: Path | str,
                    snapshot: Path | str | None = None) -> Callable[[int, int, int], None]:
    """The hook. With ``snapshot`` (Ray Train's ``checkpoint_manager_snapshot.json``) it first waits, up to 60 s,
    until the controller has registered the checkpoint of ``epoch``: Ray Train registers a reported checkpoint at
    its next poll of the workers (every 2 s), and a restart resumes from the last *registered* one."""
    marker = Path(marker)

    def after_step(at_rank: int, at_epoch: int, at_step: int) -> None:
        if (at_rank, at_epoch, at_step) != (rank, epoch, step) or marker.exists():
            return
        if snapshot is not None:
            _wait_for_registered_checkpoint(Path(snapshot), epoch)
        marker.write_text(f"rank {rank} killed after step {step + 1} of epoch {epoch + 1}\n")
        os.kill(os.getpid(), signal.SIGKILL)

    return after_step


def _wait_for_registered_checkpoint(snapshot: Path, epoch: int, limit_s: float = 60.0) -> None:
    deadline = time.time() + limit_s
    while time.time() < deadline:
        try:
            latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result") or {}
            if int(latest.get("metrics", {}).get("epoch", 0)) >= epoch:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)


cloudpickle.register_pickle_by_value(sys.modules[__name__])
