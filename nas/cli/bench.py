"""``nas bench NAME``: reproducible experiments that write a report (README, Benchmarks; ``docs/bench/``).

The benchmarks and their registry live in :mod:`nas.bench` (how to add one: its module docstring).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from nas.bench import BENCHMARKS, run_benchmark


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_command(
        name: str = typer.Argument(..., help=f"One of: {', '.join(BENCHMARKS)}."),
        out: Optional[Path] = typer.Option(None, help="Output folder (default bench-out/NAME)."),
        space: Optional[str] = typer.Argument(None, help="record, curves: the space to record (a preset or a YAML file)."),
        quick: bool = typer.Option(False, "--quick", help="A smaller, faster version (for smoke tests)."),
        seeds: Optional[int] = typer.Option(None, help="record, curves: seeds per architecture (default 2); search: seeds per strategy (default 10, --quick 2)."),
        workers: Optional[int] = typer.Option(None, help="record: trials trained at once (curves: default 2); search: simulated workers (default 1)."),
        table: Optional[str] = typer.Option(None, help="search, fidelity, export-syne: a recorded table (shipped: bench, demo, small; or `nas bench record` / `curves`' table.parquet or its folder); noise: a benchmark table."),
        run: Optional[str] = typer.Option(None, help="fidelity: a finished search's run directory."),
        strategies: Optional[str] = typer.Option(None, help="search: comma-separated strategies as the report names them (tpe+costaware,syne-random+syne-moasha); random+fifo always runs (default: every one)."),
    ) -> None:
        """Run a benchmark and write its report (`nas bench record SPACE`: record a space's table)."""
        out_dir = out or Path("bench-out") / name
        figures = run_benchmark(name, out_dir, quick=quick, space=space, seeds=seeds, workers=workers,
                                table=table, run=run, strategies=strategies)
        Console().print_json(json.dumps(figures, default=str))
        Console().print(f"report: {out_dir}")
