"""``nas bench record SPACE``: the recorded table of a space at the demo's proxy settings (:mod:`nas.sim.record`).

The settings are the demo search's (:func:`nas.demo.demo_config`), never restated: a table recorded here
is exactly what ``nas demo`` would train. ``--quick`` records a smoke-size table instead (two epochs, 240
clips, 2 epochs: one rung); its manifest says so, and the simulator refuses it for the demo's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

QUICK_OVERRIDES: dict[str, Any] = {"proxy_epochs": 2, "num_clips": 240}


def record_config(space: str, *, quick: bool):
    """The demo's search settings on ``space``, without baselines for a space other than the demo's."""
    from nas.demo import demo_config

    overrides: dict[str, Any] = {"space": space, "name": "record"}
    if quick:
        overrides.update(QUICK_OVERRIDES)
    if space != "demo":
        overrides["baselines"] = ()
    return demo_config(**overrides)


def run_record_benchmark(out_dir: Path, *, quick: bool = False, space: str | None = None, seeds: int = 2,
                         workers: int = 1, show_progress: bool = True) -> dict[str, Any]:
    """Record (or resume) ``space``'s table into ``out_dir/table.parquet``; returns rows done / total."""
    from space.errors import UserInputError

    if not space:
        raise UserInputError("nas bench record needs a space: `nas bench record SPACE` (a preset or a YAML file)")
    from nas.sim.record import record_table  # imports Ray
    config = record_config(space, quick=quick)
    outcome = record_table(config=config, out_dir=out_dir, seeds=seeds, workers=workers, show_progress=show_progress)
    return {"table": str(outcome.table_path), "trials_done": outcome.done, "trials_total": outcome.total,
            "trained_now": outcome.recorded, "seconds_per_trial": outcome.seconds_per_trial}
