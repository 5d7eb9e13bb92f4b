"""``nas bench costs``: the catalog's costs beside the papers' values, and the cost model's own checks.

Writes into ``out_dir``:

* ``costs.csv`` / ``costs.md`` - every catalog architecture: params, recurrent params, GMACs @ 1x3x16x224x224
  (meta-device count), the SRTG overhead against the same spec with ``placement: none`` (GMACs % and G),
  MTNet g = 8 savings, and the papers' values (MTNet Table 3 params and GFLOPs, SRTG Table 4 GFLOPs; the
  papers do not state the input shape of those GFLOPs, so no ratio is claimed for them);
* the SRTG forward latency overhead on CPU (interleaved A/B pairs, median ratio, bootstrap 95% interval);
* the time fvcore and the meta-device counter take for r3d-101 @ 1x3x16x224x224;
* an operator profile of the SRTG gate and SoftPool at two (batch, time) sizes: the same number of operator
  calls at both sizes shows there is no Python loop over batch or time;
* eager PyTorch vs ONNX Runtime forward latency for five catalog models (``nas/bench/deploy_latency.py``).
"""

from __future__ import annotations

import csv
import dataclasses
import random
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from rich.progress import Progress

from nas.bench.deploy_latency import eager_vs_onnxruntime
from runners.costs import count_gmacs, model_costs, shape_label
from runners.latency import forward_step, get_profile, torch_threads
from space import CATALOG, ArchSpec, MTNetSpec, ResNet3DSpec, build_model

__all__ = ["run_costs_benchmark", "srtg_baseline", "ab_latency_overhead", "counter_timings", "loop_profile"]

FULL_SHAPE = (16, 224, 224)

# MTNet Table 3 (400 classes, r = 0.875): params (M) and GFLOPs (input shape not stated in the table).
MTNET_TABLE3 = {
    "mtnet-32": (21.64, 35.1),
    "mtnet-48": (39.78, 42.80),
    "mtnet-64": (43.02, 64.53),
    "mtnet-132": (85.30, 101.55),
    "mtnet-200": (124.25, 144.08),
    "mtnet-64-g8": (13.07, 9.16),
    "mtnet-132-g8": (24.68, 10.42),
}
MTNET_G8_PAPER_SAVINGS = {"mtnet-64-g8": ("mtnet-64", 71.82), "mtnet-132-g8": ("mtnet-132", 76.14)}
# SRTG paper Table 4 GFLOPs (placement and input shape not stated there).
SRTG_TABLE4_GFLOPS = {
    "srtg-r3d-34-final": 110.48,
    "srtg-r2plus1d-34-final": 110.8,
    "srtg-r3d-50-final": 150.98,
    "srtg-r2plus1d-50-final": 151.6,
}
SRTG_PAPER_OVERHEAD = "0.03-0.4 GFLOPs per model (~0.15% of model GFLOPs)"


def srtg_baseline(spec: ResNet3DSpec) -> ResNet3DSpec:
    """The same spec with ``placement: none``: what SRTG overhead is always measured against."""
    return dataclasses.replace(spec, srtg=dataclasses.replace(spec.srtg, placement="none"))


# --------------------------------------------------------------------------------------------
# The catalog table
# --------------------------------------------------------------------------------------------


def catalog_rows(shape=FULL_SHAPE, progress: Progress | None = None) -> list[dict[str, Any]]:
    """One row per catalog entry with our costs, the overheads and the papers' values."""
    cache: dict[str, Any] = {}

    def costs(spec: ArchSpec):
        if spec.key() not in cache:
            cache[spec.key()] = model_costs(spec, shape=shape)
        return cache[spec.key()]

    task = progress.add_task("catalog costs", total=len(CATALOG)) if progress else None
    rows = []
    for name, spec in CATALOG.items():
        c = costs(spec)
        row: dict[str, Any] = {
            "arch": name,
            "params_M": round(c.params / 1e6, 3),
            "recurrent_params_M": round(c.recurrent_params / 1e6, 3),
            f"GMACs @ {shape_label(shape)}": round(c.gmacs, 3),
            "srtg_overhead_GMACs": None,
            "srtg_overhead_GMACs_pct": None,
            "g8_GMACs_saving_pct": None,
            "paper_g8_GFLOPs_saving_pct": None,
            "paper_params_M": None,
            "params_ratio_ours_vs_paper": None,
            "paper_GFLOPs": None,
            "note": "",
        }
        if isinstance(spec, ResNet3DSpec) and spec.srtg.enabled:
            base = costs(srtg_baseline(spec))
            row["srtg_overhead_GMACs"] = round(c.gmacs - base.gmacs, 4)
            row["srtg_overhead_GMACs_pct"] = round(100 * (c.gmacs / base.gmacs - 1), 3)
            if name in SRTG_TABLE4_GFLOPS:
                row["paper_GFLOPs"] = SRTG_TABLE4_GFLOPS[name]
                row["note"] = "SRTG Table 4 GFLOPs: input shape and placement not stated; no ratio"
        if name in MTNET_TABLE3:
            paper_params, paper_gflops = MTNET_TABLE3[name]
            row["paper_params_M"] = paper_params
            row["params_ratio_ours_vs_paper"] = round(c.params / 1e6 / paper_params, 4)
            row["paper_GFLOPs"] = paper_gflops
            row["note"] = "MTNet Table 3 GFLOPs: input shape not stated; no ratio"
        if name in MTNET_G8_PAPER_SAVINGS:
            g1_name, paper_saving = MTNET_G8_PAPER_SAVINGS[name]
            row["g8_GMACs_saving_pct"] = round(100 * (1 - c.gmacs / costs(CATALOG[g1_name]).gmacs), 2)
            row["paper_g8_GFLOPs_saving_pct"] = paper_saving
        rows.append(row)
        if progress is not None:
            progress.advance(task)
    return rows


# --------------------------------------------------------------------------------------------
# SRTG latency overhead: interleaved A/B pairs
# --------------------------------------------------------------------------------------------


def bootstrap_median_ci(values: list[float], *, resamples: int = 5000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the median."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def ab_latency_overhead(
    spec: ResNet3DSpec, *, shape=(16, 112, 112), pairs: int = 20, threads: int = 1, warmup_s: float = 1.0
) -> dict[str, Any]:
    """Forward latency of ``spec`` (B) against its ``placement: none`` baseline (A), in interleaved pairs.

    Pairs alternate AB / BA so drift in machine load hits both sides alike; each pair gives one ratio B/A.
    One thread by default: on a shared 2-core machine a 2-thread OpenMP team mostly measures contention
    (it inflated the many small per-step LSTM ops far more than the big convolutions: ratios of 1.8-2.0).
    """
    profile = dataclasses.replace(get_profile("cpu"), shape=tuple(shape), threads=threads, train=False)
    torch.manual_seed(0)
    models = {"A": build_model(srtg_baseline(spec)).eval(), "B": build_model(spec).eval()}
    x = torch.randn(1, 3, *shape)
    steps: dict[str, Callable[[], None]] = {k: forward_step(m, x, profile) for k, m in models.items()}
    times: dict[str, list[float]] = {"A": [], "B": []}
    with torch_threads(threads):
        for step in steps.values():  # time-based warm-up of both
            begin = time.perf_counter()
            while time.perf_counter() - begin < warmup_s:
                step()
        for i in range(pairs):
            for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
                begin = time.perf_counter()
                steps[side]()
                times[side].append((time.perf_counter() - begin) * 1e3)
    ratios = [b / a for a, b in zip(times["A"], times["B"])]
    low, high = bootstrap_median_ci(ratios)
    return {
        "arch": next((n for n, s in CATALOG.items() if s == spec), spec.key()),
        "input": shape_label(tuple(shape)),
        "threads": threads,
        "pairs": pairs,
        "baseline_ms_median": statistics.median(times["A"]),
        "srtg_ms_median": statistics.median(times["B"]),
        "median_ratio": statistics.median(ratios),
        "ci95_low": low,
        "ci95_high": high,
        "overhead_pct": 100 * (statistics.median(ratios) - 1),
    }


# --------------------------------------------------------------------------------------------
# Counter speed and the no-Python-loop profile
# --------------------------------------------------------------------------------------------


def counter_timings(spec: ArchSpec, shape=FULL_SHAPE) -> dict[str, Any]:
    """Wall time of each counter (model build included) and both counts."""
    result: dict[str, Any] = {"input": shape_label(tuple(shape))}
    for method in ("meta", "fvcore"):
        begin = time.perf_counter()
        result[f"{method}_gmacs"] = count_gmacs(spec, tuple(shape), method=method)
        result[f"{method}_s"] = time.perf_counter() - begin
    return result


def _op_calls(fn: Callable[[], Any]) -> tuple[int, list[tuple[str, int]]]:
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [(e.key, e.count) for e in prof.key_averages()]
    return sum(count for _, count in events), sorted(events, key=lambda e: -e[1])[:12]


def loop_profile() -> list[dict[str, Any]]:
    """Operator calls of the SRTG gate (cycle consistency, both directions) and of SoftPool at two sizes."""
    from space.softpool import soft_pool3d
    from space.srtg import cycle_consistent

    rows = []
    for batch, frames in ((1, 8), (8, 32)):
        s, h = torch.randn(batch, frames, 256), torch.tanh(torch.randn(batch, frames, 256))
        calls, top = _op_calls(lambda: cycle_consistent(s, h, tau=0.05))
        rows.append({"function": "srtg.cycle_consistent", "B": batch, "T": frames, "op_calls": calls, "top_ops": top})
        x = torch.randn(batch, 32, frames, 28, 28)
        calls, top = _op_calls(lambda: soft_pool3d(x, (1, 2, 2), ceil_mode=True))
        rows.append({"function": "softpool.soft_pool3d", "B": batch, "T": frames, "op_calls": calls, "top_ops": top})
    return rows


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(r[h]) for h in header) + " |" for r in rows]
    return "\n".join(lines)


def run_costs_benchmark(out_dir: Path, quick: bool = False, pairs: int = 20) -> dict[str, Any]:
    """Run everything and write ``costs.md`` / ``costs.csv`` / ``srtg_latency_ab.csv``; returns headline figures.

    ``quick`` keeps the catalog table at 16x224x224 but times the A/B pairs at 8x64x64 and the counters
    at 8x112x112 (a smoke test; figures are labelled with the input they used).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, ab, timings, loops, deploy = _measure(quick=quick, pairs=pairs)
    _write_csv(out_dir / "costs.csv", rows)
    _write_csv(out_dir / "srtg_latency_ab.csv", ab)
    figures = _figures(rows, ab, timings, loops, deploy)
    (out_dir / "costs.md").write_text(_markdown(rows, ab, timings, loops, deploy))
    return figures


def _measure(*, quick: bool, pairs: int) -> tuple[list[dict], list[dict], dict[str, Any], list[dict], dict[str, Any]]:
    """Every measurement, under one progress display: the catalog's costs, the SRTG A/B latency pairs, the
    counters' speed, the loop profile and eager vs ONNX Runtime."""
    ab_shape = (8, 64, 64) if quick else (16, 112, 112)
    timing_shape = (8, 112, 112) if quick else FULL_SHAPE
    with Progress() as progress:
        rows = catalog_rows(progress=progress)
        task = progress.add_task("SRTG A/B latency", total=2)
        ab = []
        for name in ("srtg-r3d-34-final", "srtg-r3d-50-final"):
            ab.append(ab_latency_overhead(CATALOG[name], shape=ab_shape, pairs=max(pairs, 20)))
            progress.advance(task)
        task = progress.add_task("counter timings + profile", total=2)
        timings = counter_timings(CATALOG["r3d-101"], timing_shape)
        progress.advance(task)
        loops = loop_profile()
        progress.advance(task)
        deploy = eager_vs_onnxruntime(quick=quick, progress=progress)
    return rows, ab, timings, loops, deploy


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _figures(rows: list[dict], ab: list[dict], timings: dict[str, Any], loops: list[dict],
             deploy: dict[str, Any]) -> dict[str, Any]:
    """The headline figures (what ``nas bench costs`` returns)."""
    srtg_pcts = [r["srtg_overhead_GMACs_pct"] for r in rows if r["srtg_overhead_GMACs_pct"] is not None]
    srtg_deltas = [r["srtg_overhead_GMACs"] for r in rows if r["srtg_overhead_GMACs"] is not None]
    return {
        "catalog_models": len(rows),
        "srtg_gmacs_overhead_pct_max": max(srtg_pcts),
        "srtg_gmacs_overhead_pct_median": statistics.median(srtg_pcts),
        "srtg_gmacs_overhead_G_range": [min(srtg_deltas), max(srtg_deltas)],
        "srtg_latency_overhead": {r["arch"]: {k: r[k] for k in ("input", "pairs", "median_ratio", "ci95_low", "ci95_high", "overhead_pct")} for r in ab},
        "counter_timings_r3d_101": timings,
        "mtnet_g8_saving_pct": {r["arch"]: r["g8_GMACs_saving_pct"] for r in rows if r["g8_GMACs_saving_pct"] is not None},
        "mtnet_params_ratio": {r["arch"]: r["params_ratio_ours_vs_paper"] for r in rows if r["params_ratio_ours_vs_paper"]},
        "loop_profile_op_calls": {f"{r['function']} B={r['B']} T={r['T']}": r["op_calls"] for r in loops},
        "eager_vs_onnxruntime": deploy,
    }


def _markdown(rows: list[dict], ab: list[dict], timings: dict[str, Any], loops: list[dict],
              deploy: dict[str, Any]) -> str:
    """``costs.md``: every table with the protocol that produced it."""
    gmacs_col = f"GMACs @ {shape_label(FULL_SHAPE)}"
    srtg_pcts = [r["srtg_overhead_GMACs_pct"] for r in rows if r["srtg_overhead_GMACs_pct"] is not None]
    srtg_deltas = [r["srtg_overhead_GMACs"] for r in rows if r["srtg_overhead_GMACs"] is not None]
    loop_rows = [{k: v for k, v in r.items() if k != "top_ops"} for r in loops]
    top_ops = "\n".join(
        f"- `{r['function']}` B={r['B']} T={r['T']}: " + ", ".join(f"{k} x{n}" for k, n in r["top_ops"]) for r in loops
    )
    return f"""# Costs of the catalog (`nas bench costs`)

GMACs: multiply-accumulates of convolutions, linear layers, matrix products and RNNs (``docs/costs.md``), counted by the
meta-device `FlopCounterMode` (halved; equal to fvcore's count). Params at 400 classes.
SRTG overhead is against the same spec with `placement: none`. The SRTG paper claims {SRTG_PAPER_OVERHEAD}.
Paper GFLOPs are shown beside ours without a ratio: neither MTNet Table 3 nor SRTG Table 4 states the input
shape of its GFLOPs (MTNet's Table 4 trains at about 8x180x180 with multigrid).

## Catalog @ {shape_label(FULL_SHAPE)} ({gmacs_col})

{_markdown_table(rows)}

SRTG GMACs overhead over {len(srtg_pcts)} SRTG models: max {max(srtg_pcts):.3f}%, median
{statistics.median(srtg_pcts):.3f}%; absolute {min(srtg_deltas):.3f}-{max(srtg_deltas):.3f} GMACs
(paper: {SRTG_PAPER_OVERHEAD}).

## SRTG forward latency overhead on CPU (interleaved A/B pairs; A = placement none, B = SRTG LSTM at final)

Eval-mode forward, batch 1, fp32, fixed thread count (column `threads`), 1 s time-based warm-up of each side.

{_markdown_table(ab)}

Ratio = B / A per pair (pairs alternate AB / BA); interval = percentile bootstrap 95% of the median ratio.

## Counter speed: r3d-101 @ {timings['input']} (model build included)

{_markdown_table([timings])}

## No Python loop over batch or time (torch.profiler operator calls)

{_markdown_table(loop_rows)}

The same number of operator calls at B=1, T=8 and at B=8, T=32 means the work is vectorised over batch and
time. Most frequent operators:

{top_ops}

## Eager PyTorch vs ONNX Runtime forward latency @ {deploy['input']} (ms)

Same weights and clip on both sides; eval forward, fp32, {deploy['threads']} threads, {deploy['warmup_s']} s
warm-up by time, {deploy['runs']} runs; ONNX = the `nas export --format onnx` graph under ONNX Runtime's CPU
provider (profile `ort-cpu`). Machine: {deploy['machine']}; load average (1/5/15 min) before
{deploy['load_average_before']}, after {deploy['load_average_after']}. Five models, one per family and
size class: the whole catalog would take hours here.

{_markdown_table(deploy['rows'])}
"""
