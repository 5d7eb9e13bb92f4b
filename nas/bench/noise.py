"""``nas bench noise --table NAME|FILE``: how far a benchmark table's proxy readings can be trusted.

Kendall tau of every budget's validation top-1, validation loss and training loss against truth, against a
held-out seed's truth and seed to seed, at 100 / 250 / 500 / all validation clips, and the split of one
reading's variance into validation-set and training-seed noise (:mod:`nas.sim.curvestats`). Writes
``report.md`` and ``results.json``; ``--quick`` uses 200 bootstrap resamples instead of 1000.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def run_noise_benchmark(out_dir: Path, *, quick: bool = False, table: str | None = None) -> dict[str, Any]:
    """Rank and noise figures of ``table`` (default: the shipped ``bench`` table)."""
    from nas.sim.curvestats import noise_shares, rank_figures, stats_dict, stats_markdown
    from nas.sim.curvetable import CurveTable
    from space.files import atomic_write

    curves = CurveTable.load(table or "bench")
    figures = rank_figures(curves, resamples=200 if quick else 1000)
    shares = noise_shares(curves)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = (f"# Benchmark table noise: {table or 'bench'}\n\nSpace `{curves.manifest['space']}`, recorded on "
              f"{curves.manifest['machine']['cpu']} ({curves.manifest['machine']['cpu_count']} cores); "
              f"{len(curves.done())} runs.\n\n")
    atomic_write(out_dir / "report.md", header + stats_markdown(curves, figures, shares))
    results = stats_dict(figures, shares)
    atomic_write(out_dir / "results.json", json.dumps(results, indent=1))
    final = curves.budgets[-1]
    headline = [t for t in figures if t.signal == "accuracy" and t.val_clips == curves.val_clips]
    return {f"{t.comparison} @ {t.budget:g} ep": t.tau for t in headline if t.budget in (curves.budgets[0], 1.0, final)}
