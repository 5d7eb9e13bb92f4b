"""The disk cache of latency results: one JSON file per (spec key, classes, profile, hardware fingerprint).

A :class:`LatencyResult` is one architecture's figures under one profile on one machine; :class:`LatencyCache`
stores it under the hash of everything the figures depend on, so a second measurement of the same
architecture on the same machine reads the file and any other machine, profile or torch version misses it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.latencyprofile import HardwareFingerprint, LatencyProfile
from runners.latencytiming import TimingStats
from space.files import atomic_write

CACHE_FORMAT = 1


@dataclass(frozen=True)
class LatencyResult:
    """The latency of one architecture under one profile on one machine."""

    spec_key: str
    profile: LatencyProfile
    fingerprint: HardwareFingerprint
    forward: TimingStats
    train: TimingStats | None
    measured_at: str
    cached: bool = field(default=False, compare=False)  # True when read back from the disk cache

    @property
    def fwd_ms_median(self) -> float:
        return self.forward.median_ms

    @property
    def fwd_ms_p90(self) -> float:
        return self.forward.p90_ms

    @property
    def train_ms_median(self) -> float | None:
        return self.train.median_ms if self.train else None

    @property
    def train_ms_p90(self) -> float | None:
        return self.train.p90_ms if self.train else None

    @property
    def cv(self) -> float:
        """Coefficient of variation of the forward timings (the figure a search ranks on)."""
        return self.forward.cv

    def summary(self) -> dict[str, Any]:
        """The flat view ``nas profile --json`` prints."""
        return {
            "profile": self.profile.name,
            "fwd_ms_median": self.fwd_ms_median,
            "fwd_ms_p90": self.fwd_ms_p90,
            "train_ms_median": self.train_ms_median,
            "train_ms_p90": self.train_ms_p90,
            "cv": self.cv,
        }


def default_cache_dir() -> Path:
    """``$VIDEONAS_CACHE/latency`` or ``$XDG_CACHE_HOME/videonas/latency`` (``~/.cache`` by default)."""
    if os.environ.get("VIDEONAS_CACHE"):
        return Path(os.environ["VIDEONAS_CACHE"]) / "latency"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "videonas" / "latency"


class LatencyCache:
    """One JSON file per (spec key, classes, profile, fingerprint), named by the hash of that key."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    @staticmethod
    def cache_key(spec_key: str, num_classes: int, profile: LatencyProfile, fp: HardwareFingerprint) -> dict:
        return {
            "format": CACHE_FORMAT,
            "spec_key": spec_key,
            "num_classes": num_classes,
            "profile": profile.as_dict(),
            "fingerprint": fp.as_dict(),
        }

    def path_for(self, key: dict) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return self.directory / f"{digest}.json"

    def load(self, key: dict, profile: LatencyProfile, fp: HardwareFingerprint) -> LatencyResult | None:
        path = self.path_for(key)
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if entry.get("key") != key:  # a hash collision or a hand-edited file: treat as a miss
            return None
        return LatencyResult(
            spec_key=key["spec_key"],
            profile=profile,
            fingerprint=fp,
            forward=TimingStats.from_dict(entry["forward"]),
            train=TimingStats.from_dict(entry["train"]) if entry["train"] else None,
            measured_at=entry["measured_at"],
            cached=True,
        )

    def save(self, key: dict, result: LatencyResult) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(key)
        entry = {
            "key": key,
            "forward": result.forward.as_dict(),
            "train": result.train.as_dict() if result.train else None,
            "measured_at": result.measured_at,
        }
        return atomic_write(path, json.dumps(entry, indent=1))  # a reader never sees half a file
