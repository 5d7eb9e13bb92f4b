"""``nas bench warm-start``: does a warm start from another seed's run make a search reach a good front sooner?

Simulated on a recorded table (default ``demo``; ``--quick``: ``small``) with the settings of ``nas bench search``
(:mod:`nas.bench.search`: the demo's search settings with the table's proxy, a budget of ``BUDGET_SHARE`` of the
space trained in full, one worker, the same normalisation, each found architecture valued at its seed-mean
accuracy), except that every run may propose the real search's 200 architectures in a row that need no training
(informed by known results, TPE first proposes mostly architectures it already knows: DUPLICATEs, which cost
sampler time, not training). For every seed ``s``, with ``nas search``'s default sampler and scheduler:

* **cold**: seed ``s``, no warm start;
* **warm from a whole run**: seed ``s``, starting from the COMPLETE trials of the run with seed ``1000 + s`` at the
  full budget (:mod:`nas.warmstart`, as ``--warm-start RUN`` adds them);
* **warm from a short run**: the same from a run with seed ``2000 + s`` stopped at a third of the budget;
* **random + fifo**, seed ``s``: its median final hypervolume is the target, as in ``nas bench search``.

A warm run's front holds its known results from time 0. Figures: time to the target within the new run (the
source's own time is not counted: it was spent earlier), final hypervolume, the source's own final hypervolume,
trials trained and DUPLICATE proposals. Writes ``report.md`` and ``results.json``.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCES = {"whole": (1000, 1.0), "short": (2000, 1 / 3)}  # source kind -> (seed offset, share of the budget)
_LABELS = {"cold": "cold start", "whole": "warm start from a whole run", "short": "warm start from a run of 1/3 budget"}


@dataclass
class _Setting:
    """What every simulated run of the benchmark shares."""

    common: dict[str, Any]
    config: Any
    space: Any
    times: Any
    value: Any
    budget_s: float


def run_warm_start_benchmark(out_dir: Path, *, quick: bool = False, table: str | None = None,
                             seeds: int | None = None) -> dict[str, Any]:
    """Simulate cold and warm-started searches on ``table``; write the report; return the headline figures."""
    from nas.bench.search import FULL_SEEDS, QUICK_SEEDS, load_table
    from nas.sim.compare import best_hypervolume
    from space.errors import UserInputError
    from space.files import atomic_write

    seeds = seeds if seeds is not None else (QUICK_SEEDS if quick else FULL_SEEDS)
    if seeds < 1:
        raise UserInputError(f"--seeds {seeds} is not allowed; allowed: an integer >= 1")
    table_path, recorded = load_table(table, quick=quick)
    setting = _setting(recorded, table_path)
    started = time.time()
    rows = []
    for seed in range(seeds):
        rows.append(_one_seed(setting, seed))
        print(f"bench warm-start: seed {seed + 1}/{seeds} · {time.time() - started:.0f} s", file=sys.stderr, flush=True)
    results = _summary(rows, setting)
    results.update({"table": str(table_path), "seeds": seeds, "wall_seconds": time.time() - started,
                    "best_hv": best_hypervolume(recorded, setting.config, setting.common["bounds"]),
                    "architectures": int(recorded.rows.loc[recorded.rows["baseline"].isna(), "spec_key"].nunique())})
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "results.json",
                 json.dumps(results, indent=1, default=float).replace("Infinity", "null").replace("NaN", "null"))
    atomic_write(out_dir / "report.md", _markdown(results))
    return {"target_hv": results["target_hv"], **{k: {"reached": v["reached"], "share": v["time_to_target_share_median"],
                                                      "final_hv_median": v["final_hv_median"]}
                                                  for k, v in results["summary"].items()}}


def _setting(recorded, table_path) -> _Setting:
    import numpy as np

    from nas.bench.search import BUDGET_SHARE, bench_config, full_trial_seconds
    from nas.config import SearchConfig
    from nas.sim.compare import mean_accuracy, table_bounds
    from nas.sim.replay import Overheads
    from space.searchspace import parse_space

    space = parse_space(recorded.manifest["space_yaml"], source=str(table_path), default_name="table")
    architectures = recorded.rows.loc[recorded.rows["baseline"].isna(), "spec_key"].nunique()
    config = bench_config(recorded.manifest, trials=architectures,
                          has_latency=bool(recorded.rows["latency_ms"].notna().any()))
    config = config.replace(max_resamples=SearchConfig().max_resamples)
    overheads = Overheads.from_table(recorded)
    budget_s = max(3, math.ceil(BUDGET_SHARE * architectures)) * full_trial_seconds(recorded, overheads, config)
    means = mean_accuracy(recorded)
    common = dict(config=config, table=recorded, space=space, workers=1, budget_s=budget_s,
                  bounds=table_bounds(recorded, config.problem.objectives), overheads=overheads)
    return _Setting(common, config, space, np.linspace(0.0, budget_s, 121), lambda row: means[row["spec_key"]],
                    budget_s)


def _one_seed(setting: _Setting, seed: int) -> dict[str, Any]:
    """The baseline, the cold run and the warm runs of one seed: their hypervolume curves and counts."""
    from nas.config import SearchConfig
    from nas.sim.compare import hv_curve, simulate_one
    from nas.warmstart import from_study

    default = SearchConfig()
    strategy = (default.sampler, default.scheduler.name)
    curve = lambda run: hv_curve(run.frame, setting.config, setting.common["bounds"], setting.times,  # noqa: E731
                                 setting.value)
    duplicates = lambda run: int((run.frame["status"] == "DUPLICATE").sum())  # noqa: E731
    baseline = simulate_one("random", "fifo", seed, **setting.common)
    cold = simulate_one(*strategy, seed, **setting.common)
    row: dict[str, Any] = {"seed": seed, "baseline_final": float(curve(baseline)[-1]), "curves": {"cold": curve(cold)},
                           "trained": {"cold": cold.trained}, "duplicates": {"cold": duplicates(cold)},
                           "known": {}, "source_final": {}}
    for kind, (offset, share) in SOURCES.items():
        source = simulate_one(*strategy, offset + seed, keep_study=True,
                              **{**setting.common, "budget_s": share * setting.budget_s})
        known = from_study(source.study, f"seed {offset + seed}", setting.config, setting.space)
        warm = simulate_one(*strategy, seed, warm=known, **setting.common)
        row["curves"][kind], row["trained"][kind], row["duplicates"][kind] = curve(warm), warm.trained, duplicates(warm)
        row["known"][kind], row["source_final"][kind] = len(known.results), float(curve(source)[-1])
    return row


def _summary(rows: list[dict[str, Any]], setting: _Setting) -> dict[str, Any]:
    import numpy as np

    from nas.sim.compare import time_to_reach

    target = statistics.median(r["baseline_final"] for r in rows)
    summary = {}
    for kind in _LABELS:
        reach = [time_to_reach(r["curves"][kind], setting.times, target) for r in rows]
        finals = [float(r["curves"][kind][-1]) for r in rows]
        median_reach = float(np.median(reach))
        summary[kind] = {
            "reached": sum(math.isfinite(t) for t in reach), "time_to_target": reach,
            "time_to_target_share_median": median_reach / setting.budget_s if math.isfinite(median_reach) else None,
            "final_hv_median": statistics.median(finals), "final_hv": finals,
            "trained_median": statistics.median(r["trained"][kind] for r in rows),
            "duplicates_median": statistics.median(r["duplicates"][kind] for r in rows),
            "known_median": statistics.median(r["known"][kind] for r in rows) if kind != "cold" else 0,
            "source_final_hv_median": (statistics.median(r["source_final"][kind] for r in rows)
                                       if kind != "cold" else None),
        }
    return {"target_hv": target, "budget_s": setting.budget_s, "objectives": list(setting.config.problem.objectives),
            "summary": summary,
            "runs": [{k: v for k, v in r.items() if k != "curves"} for r in rows]}


def _markdown(results: dict[str, Any]) -> str:
    seeds = results["seeds"]
    lines = [
        "# Warm start from another seed's run (simulated)", "",
        f"Table `{results['table']}` ({results['architectures']} architectures); `nas search`'s default sampler and "
        f"scheduler; {seeds} seeds; one worker; budget {results['budget_s']:.0f} simulated s (as `nas bench search`); "
        f"objectives {', '.join(results['objectives'])}. Target: random + fifo's median final hypervolume over the "
        f"same seeds, {results['target_hv']:.4f} (best achievable {results['best_hv']:.4f}). Times are within the new "
        "run: a warm run's known results are on its front from time 0 (the source's own time was spent earlier).", "",
        "| run | known results (median) | seeds reaching the target | median time to target (share of the budget) "
        "| median final HV | the source alone: median final HV | trained (median) | DUPLICATE proposals (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, label in _LABELS.items():
        s = results["summary"][kind]
        share = "never (median)" if s["time_to_target_share_median"] is None else f"{s['time_to_target_share_median']:.0%}"
        source = "" if s["source_final_hv_median"] is None else f"{s['source_final_hv_median']:.4f}"
        lines.append(f"| {label} | {s['known_median']:g} | {s['reached']}/{seeds} | {share} | {s['final_hv_median']:.4f} "
                     f"| {source} | {s['trained_median']:g} | {s['duplicates_median']:g} |")
    lines += ["", f"Wall time of this benchmark: {results['wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)
