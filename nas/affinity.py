"""CPU pinning, so the latency measurer really owns its cores (``docs/costs.md``: the cores no trial uses).

A Ray resource lease only keeps Ray from scheduling more than the cluster has; it does not stop the
OS from running a trial's thread on the measurer's core. Pinning does: the measurer takes the last
``threads`` cores of the machine, trials the others. Linux only (elsewhere these are no-ops).
"""

from __future__ import annotations

import os
from pathlib import Path


def available_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def measurer_cores(threads: int) -> list[int]:
    """The cores the measurer pins itself to: the last ``threads`` of this machine (none if it has too few)."""
    cores = available_cores()
    return cores[-threads:] if len(cores) > threads else []


def pin_process(cores: list[int]) -> bool:
    """Pin every thread of this process (and the threads it starts later) to ``cores``."""
    if not cores or not hasattr(os, "sched_setaffinity"):
        return False
    allowed = set(cores)
    for task in Path("/proc/self/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), allowed)
        except (OSError, ValueError):
            continue
    return True


def pin_away_from(cores: list[int]) -> bool:
    """Pin this process to every core except ``cores`` (what a trial does while a measurer runs)."""
    remaining = [c for c in available_cores() if c not in set(cores)]
    return pin_process(remaining) if remaining and cores else False
