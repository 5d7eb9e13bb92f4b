"""``nas bench search``: which sampler and scheduler find good trade-offs fastest, simulated on a recorded table.

Every strategy (samplers random / tpe / nsga2 / gp x schedulers fifo / asha / moasha, :mod:`nas.sim.compare`)
is simulated (:mod:`nas.sim.replay`, no Ray) over ``--seeds`` seeds at the same simulated wall-clock budget
and worker count. The search settings are the demo's (:func:`nas.demo.demo_config`: objectives, rungs,
reduction factor) with the table's recorded proxy settings, and without baselines (they would spend the same
time in every strategy and are not samples of the space).

Budget: ``BUDGET_SHARE`` of the space's architectures trained in full, one after another, divided by the
workers: ``budget = ceil(BUDGET_SHARE x architectures) x (median full-trial seconds) / workers``, the
full-trial seconds being the recorded epochs plus the modelled overheads. ``--trials`` is the space size
(the samplers size their start-up phase from it), so the budget is what ends every run.

Tables: ``--table FILE`` (a ``table.parquet`` of ``nas bench record``), else the shipped demo table
``nas/sim/tables/demo.parquet`` (72 architectures x 2 seeds x 3 epochs), and with ``--quick`` the shipped
``small.parquet``
(eight architectures, two epochs, two seeds per strategy: a smoke test of the whole pipeline, whose
figures say nothing about the demo problem).

Peers: when Syne Tune is installed (the ``synetune`` extra, alias ``peers``), its own MOASHA and its FIFO
scheduler with its multi-objective random searcher run after ours on the same table, objectives, budget,
workers and seeds, through its own simulator (:mod:`nas.bench.peers`), as the rows ``syne-random +
syne-moasha`` and ``syne-random + syne-fifo``, valued as ours; without it the report says so in one line.

Strategies: ``--strategies`` picks some, comma-separated as the report names them without spaces
(``tpe+costaware,syne-random+syne-moasha``); random + fifo, the yardstick of every "time to target", is always
run. Default: every one of ours and both peers (``--quick``: without the GP sampler, ``QUICK_SKIPS``).

Writes ``report.md``, ``report.html`` (curves), ``results.json`` (every figure), ``trials.parquet`` (every
simulated trial of every run, with ``sampler``, ``scheduler`` and ``seed`` columns: the report's numbers
are recomputable from it).
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from nas.sim.shipped import SHIPPED_TABLES, default_table, load_table, shipped_table  # noqa: F401  (re-exported)

BUDGET_SHARE = 0.3
PROCESSES = max(1, min(4, os.cpu_count() or 1))  # full mode: simulations in parallel (GP proposals dominate)
QUICK_SEEDS = 2
FULL_SEEDS = 10
# A sampler that proposes this many architectures already evaluated in a row ends its run (a real search
# allows 200: on a small table every sampler soon exhausts the space, and each proposal of the GP sampler
# costs about a second on a 2-core machine).
MAX_RESAMPLES = {True: 5, False: 20}
# ``--quick`` leaves out the GP sampler unless ``--strategies`` names it: each of its proposals costs about a
# second on a 2-core machine, so on the 190-architecture benchmark table its runs alone would take minutes.
QUICK_SKIPS = ("gp",)


def bench_config(manifest: dict[str, Any], *, trials: int, has_latency: bool = True):
    """The demo search's settings with the table's recorded proxy settings, no baselines, ``trials`` trials.

    A table without latencies (a benchmark table whose latency phase has not run yet) is searched on
    accuracy, GMACs and parameters instead of accuracy, GMACs and latency.
    """
    from nas.demo import demo_config
    from nas.sim.curvetable import SIMULATED_OBJECTIVES_WITHOUT_LATENCY
    from nas.sim.table import RECORDED_SETTINGS

    settings = {k: manifest["settings"][k] for k in RECORDED_SETTINGS}
    settings["deploy_shape"] = _shape(settings["deploy_shape"])
    if not has_latency:
        settings["objectives"] = SIMULATED_OBJECTIVES_WITHOUT_LATENCY
    return demo_config(name="bench-search", space=str(manifest["space"]), baselines=(), trials=trials, **settings)


def _shape(label: Any) -> tuple[int, int, int]:
    """``"1x3x16x112x112"`` (how config.to_dict stores it) or a list -> (T, H, W)."""
    if isinstance(label, str):
        numbers = [int(n) for n in label.split("x")]
        return tuple(numbers[-3:])  # type: ignore[return-value]
    return tuple(int(n) for n in label)[-3:]  # type: ignore[return-value]


def full_trial_seconds(table, overheads, config) -> float:
    """Median over recorded (architecture, seed) of a full trial's simulated seconds, overheads included."""
    rows = table.rows[table.rows["epoch"] > 0]
    totals = []
    for (key, _seed), curve in rows.groupby(["spec_key", "seed"]):
        seconds = curve.sort_values("epoch")["seconds"].tolist()
        first = max(seconds[0], overheads.latency_s.get(key, 0.0)) if config.problem.needs_latency else seconds[0]
        totals.append(overheads.startup_s + first + sum(seconds[1:]))
    return statistics.median(totals)


def parse_strategies(text: str | None, *, quick: bool = False) -> tuple[list[tuple[str, str]], list[str]]:
    """``--strategies`` -> (our (sampler, scheduler) pairs, Syne Tune peer schedulers); ``None``: every one
    (``quick``: every one but the samplers of ``QUICK_SKIPS``).

    Random + fifo is always among ours (the yardstick); a peer needs Syne Tune installed.
    """
    from nas.bench.peers import MISSING, SAMPLER as PEER_SAMPLER, SCHEDULERS as PEER_SCHEDULERS, peers_installed
    from nas.sim.compare import BASELINE_STRATEGY, SAMPLERS, SCHEDULERS
    from space.errors import UserInputError

    ours = [(a, b) for a in SAMPLERS for b in SCHEDULERS]
    if text is None:
        chosen = [(a, b) for a, b in ours if not (quick and a in QUICK_SKIPS)]
        return chosen, list(PEER_SCHEDULERS) if peers_installed() else []
    allowed = {f"{a}+{b}": (a, b) for a, b in ours + [(PEER_SAMPLER, p) for p in PEER_SCHEDULERS]}
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        what = "an empty list" if not text.strip() else f"unknown {', '.join(map(repr, unknown))}"
        raise UserInputError(f"--strategies {text!r}: {what}; allowed: a comma-separated list of {', '.join(allowed)}")
    chosen = list(dict.fromkeys(allowed[name] for name in names))
    peers = [scheduler for sampler, scheduler in chosen if sampler == PEER_SAMPLER]
    if peers and not peers_installed():
        raise UserInputError(f"--strategies {text!r} asks for Syne Tune's own; {MISSING}")
    ours_chosen = [BASELINE_STRATEGY] + [pair for pair in chosen if pair in ours and pair != BASELINE_STRATEGY]
    return ours_chosen, peers


def run_search_benchmark(out_dir: Path, *, quick: bool = False, table: str | None = None, seeds: int | None = None,
                         workers: int | None = None, strategies: str | None = None,
                         show_progress: bool = True) -> dict[str, Any]:
    """Simulate the strategies on the table and write the report; returns the headline figures."""
    import optuna

    from nas.sim.compare import runs_frame, summarise, table_bounds, jsonable
    from nas.sim.replay import Overheads
    from space.errors import UserInputError
    from space.searchspace import parse_space

    seeds = seeds if seeds is not None else (QUICK_SEEDS if quick else FULL_SEEDS)
    workers = workers if workers is not None else 1
    if seeds < 1 or workers < 1:
        raise UserInputError(f"--seeds {seeds} / --workers {workers} not allowed; allowed: integers >= 1")
    ours, peer_schedulers = parse_strategies(strategies, quick=quick)
    table_path, recorded = load_table(table, quick=quick)
    space = parse_space(recorded.manifest["space_yaml"], source=str(table_path), default_name="table")
    architectures = recorded.rows.loc[recorded.rows["baseline"].isna(), "spec_key"].nunique()
    has_latency = bool(recorded.rows["latency_ms"].notna().any())
    config = bench_config(recorded.manifest, trials=architectures, has_latency=has_latency)
    config = config.replace(max_resamples=MAX_RESAMPLES[quick])
    overheads = Overheads.from_table(recorded)
    bounds = table_bounds(recorded, config.problem.objectives)
    full_s = full_trial_seconds(recorded, overheads, config)
    budget_trials = max(3, math.ceil(BUDGET_SHARE * architectures))
    budget_s = budget_trials * full_s / workers
    started = time.time()
    runs, peers = simulate_all(config=config, table=recorded, space=space, seeds=seeds, workers=workers,
                               strategies=ours, peer_schedulers=peer_schedulers,
                               budget_s=budget_s, bounds=bounds, overheads=overheads, started=started,
                               processes=1 if quick else PROCESSES, show_progress=show_progress)
    results = summarise(runs, config=config, table=recorded, bounds=bounds, budget_s=budget_s)
    results.update({
        "table": str(table_path), "table_rows": int(len(recorded.rows)), "architectures": int(architectures),
        "table_seeds": recorded.seeds, "space": recorded.manifest["space"], "settings": recorded.manifest["settings"],
        "hardware": recorded.manifest.get("hardware") or recorded.manifest.get("machine"), "seeds": seeds, "workers": workers,
        "budget_full_trials": budget_trials, "full_trial_s": full_s, "overheads": overheads.describe(),
        "wall_seconds": time.time() - started, "quick": quick, "processes": 1 if quick else PROCESSES, "peers": peers,
    })
    write_report(out_dir, runs_frame(runs), jsonable(results))
    return headline(results)


def simulate_all(*, config, table, space, seeds: int, workers: int, budget_s: float, bounds: dict, overheads,
                 started: float, processes: int, show_progress: bool, strategies: list[tuple[str, str]],
                 peer_schedulers: list[str]) -> tuple[list, str]:
    """Our strategies (:func:`nas.sim.compare.run_strategies`), then Syne Tune's own on the same table
    (:mod:`nas.bench.peers`): every run, and the report's line about the peers (how to get them when Syne Tune
    is missing)."""
    from nas.bench.peers import MISSING, peer_runs_or_note, peers_installed
    from nas.sim.compare import run_strategies

    on_run = progress_printer((len(strategies) + len(peer_schedulers)) * seeds, started=started, show=show_progress)
    runs = run_strategies(config=config, table=table, space=space, seeds=seeds, workers=workers, budget_s=budget_s,
                          bounds=bounds, overheads=overheads, on_run=on_run, processes=processes, strategies=strategies)
    if not peer_schedulers:
        return runs, "" if peers_installed() else MISSING
    peers, note = peer_runs_or_note(config=config, table=table, seeds=seeds, workers=workers, budget_s=budget_s,
                                    overheads=overheads, on_run=on_run, schedulers=peer_schedulers)
    return runs + peers, note


def progress_printer(total: int, *, started: float, show: bool):
    """The per-run callback: counts finished runs and, when ``show``, prints the count and an ETA to stderr."""
    done = [0]

    def on_run(run) -> None:
        done[0] += 1
        if show:
            elapsed = time.time() - started
            eta = elapsed / done[0] * (total - done[0])
            print(f"bench search: {done[0]}/{total} runs · {run.sampler}+{run.scheduler} seed {run.seed} "
                  f"trained {run.trained} · ETA {eta:.0f} s", file=sys.stderr, flush=True)

    return on_run


def write_report(out_dir: Path, frame, results: dict[str, Any]) -> None:
    """``trials.parquet`` (every simulated trial), ``results.json``, ``report.md`` and ``report.html``."""
    import json

    from reports.search_bench import render_html, render_markdown
    from space.files import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "trials.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
    atomic_write(out_dir / "results.json", json.dumps(results, indent=1))
    atomic_write(out_dir / "report.md", render_markdown(results))
    atomic_write(out_dir / "report.html", render_html(results))


def headline(results: dict) -> dict[str, Any]:
    """Best achievable HV and, per strategy, median final HV and time to random+fifo's HV as a share of the budget."""
    return {
        "best_hv": results["best_hv"], "target_hv": results["target_hv"], "budget_s": results["budget_s"],
        "strategies": {f"{s['sampler']}+{s['scheduler']}": {
            "final_hv_median": s["final_hv_median"], "time_to_target_share": s["time_to_target_share"],
            "trained_median": s["trained_median"]} for s in results["strategies"]},
    }
