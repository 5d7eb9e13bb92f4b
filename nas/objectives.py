"""The search objectives and constraints (``docs/search.md``), and the column each lives in in ``trials.parquet``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    name: str  # what the user types in --objectives
    column: str  # its column in trials.parquet
    direction: str  # "maximize" or "minimize"
    label: str  # axis label, with unit


OBJECTIVES: dict[str, Objective] = {
    "accuracy": Objective("accuracy", "accuracy", "maximize", "proxy val top-1 (%)"),
    "gmacs": Objective("gmacs", "gmacs", "minimize", "GMACs"),
    "latency": Objective("latency", "latency_ms", "minimize", "latency (ms)"),
    "params": Objective("params", "params", "minimize", "parameters (M)"),
}

# constraint flag -> the column it bounds
CONSTRAINTS: dict[str, str] = {"max_gmacs": "gmacs", "max_params": "params", "max_latency_ms": "latency_ms"}
