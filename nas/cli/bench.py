"""``nas bench NAME``: reproducible experiments that write a report (SPEC 8).

Each benchmark is a documented function ``run_*_benchmark(out_dir: Path, **options) -> dict`` that writes
its Markdown (and CSV) into ``out_dir`` and returns its headline figures; this table names them. Imports
are deferred so ``nas --help`` does not load every benchmark's dependencies.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from space.errors import UserInputError

BENCHMARKS: dict[str, tuple[str, str, str]] = {
    "costs": ("runners.bench_costs", "run_costs_benchmark", "catalog params / GMACs / latency beside the papers' values"),
    "data": ("runners.bench_data", "run_data_benchmark", "synthetic generation and cache throughput vs training"),
    "overhead": ("nas.bench_overhead", "run_overhead_benchmark", "harness overhead, peak memory, in-search vs alone latency"),
    "retrain": ("nas.bench_retrain", "run_retrain_benchmark", "proxy vs full-scale top-1 over the demo front (Kendall tau)"),
    "srtg-gate": ("runners.bench_srtg_gate", "run_srtg_gate_benchmark", "SRTG gate study: open-rate per stage x setting"),
    "srtg": ("runners.bench_srtg", "run_srtg_benchmark", "SRTG Table 1 at proxy scale: placements x gates, open-rates"),
    "mtnet": ("runners.bench_mtnet", "run_mtnet_benchmark", "MTNet ratio and sub-stream ablation at proxy scale"),
}


def run_benchmark(name: str, out_dir: Path, **options: object) -> dict:
    """Run benchmark ``name`` writing into ``out_dir``; returns its figures."""
    if name not in BENCHMARKS:
        raise UserInputError(f"unknown benchmark {name!r}; allowed: {', '.join(BENCHMARKS)}")
    module_name, function_name, _ = BENCHMARKS[name]
    function = getattr(importlib.import_module(module_name), function_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    return function(out_dir, **options)


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_command(
        name: str = typer.Argument(..., help=f"One of: {', '.join(BENCHMARKS)}."),
        out: Optional[Path] = typer.Option(None, help="Output folder (default bench-out/NAME)."),
        quick: bool = typer.Option(False, "--quick", help="A smaller, faster version (for smoke tests)."),
    ) -> None:
        """Run a benchmark and write its report."""
        out_dir = out or Path("bench-out") / name
        figures = run_benchmark(name, out_dir, quick=quick)
        Console().print_json(json.dumps(figures, default=str))
        Console().print(f"report: {out_dir}")
