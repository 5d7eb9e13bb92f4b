"""``nas bench curves SPACE``: record a space's benchmark table, learning curves at several budgets, without Ray.

The recording itself is :func:`nas.sim.curverecord.record_curves` (settings: ``BENCH_SETTINGS``; the datasheet:
``docs/bench/bench-table.md``). ``--quick`` records two runs at a smoke-test size instead, into its own folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any


def run_curves_benchmark(out_dir: Path, *, quick: bool = False, space: str | None = None, seeds: int = 2,
                         workers: int = 2) -> dict[str, Any]:
    """Record (or resume) ``space``'s benchmark table into ``out_dir/table.parquet``; returns runs done / total."""
    from nas.sim.curverecord import BENCH_SETTINGS, record_curves, record_plan
    from runners.proxy import ProxyConfig
    from space.errors import UserInputError

    if not space:
        raise UserInputError("nas bench curves needs a space: `nas bench curves SPACE` (a preset or a YAML file)")
    settings, limit = BENCH_SETTINGS, None
    if quick:
        settings = dataclasses.replace(BENCH_SETTINGS, train_clips=64, val_clips=32, budgets=(0.5, 1.0),
                                       proxy=ProxyConfig(epochs=1, batch_size=16, width_mult=0.125, frames=4, size=16))
        limit = 2
    table = record_curves(space, out_dir, seeds=seeds, workers=workers, settings=settings, limit=limit)
    jobs, _ = record_plan(space, settings, seeds)
    return {"table": str(out_dir / "table.parquet"), "runs_done": len(table.done()), "runs_total": len(jobs)}
