"""``nas bench fidelity --run RUN --table TABLE``: a real search and its simulation on one figure (:mod:`nas.sim.fidelity`).

Writes ``fidelity.md``, ``fidelity.html`` (both hypervolume curves) and ``fidelity.json``. The table must
have been recorded with the run's settings (the demo's: ``nas bench record demo``); another is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def run_fidelity_benchmark(out_dir: Path, *, quick: bool = False, run: str | None = None,
                           table: str | None = None) -> dict[str, Any]:
    """Simulate the run ``run`` from ``table`` (default: the shipped demo table; any ``--table`` of
    :func:`nas.sim.shipped.load_table`) and state the gap."""
    from nas.sim.compare import jsonable
    from nas.sim.fidelity import compare_run
    from nas.sim.shipped import load_table
    from reports.search_bench import render_fidelity_html, render_fidelity_markdown
    from space.errors import UserInputError
    from space.files import atomic_write

    if not run:
        raise UserInputError("nas bench fidelity needs --run RUN_DIR (a finished search, e.g. runs/demo)")
    _, recorded = load_table(table, quick=False)  # a shipped name (demo, small, bench), a file or its folder
    fidelity = compare_run(Path(run), recorded)
    result = jsonable({"times": fidelity.times, "real_curve": fidelity.real_curve, "sim_curve": fidelity.sim_curve,
                       "figures": fidelity.figures})
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "fidelity.json", json.dumps(result, indent=1))
    atomic_write(out_dir / "fidelity.md", render_fidelity_markdown(result))
    atomic_write(out_dir / "fidelity.html", render_fidelity_html(result))
    return result["figures"]
