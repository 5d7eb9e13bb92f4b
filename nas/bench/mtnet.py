"""``nas bench mtnet``: the MTNet paper's ratio ablation and sub-stream costs at proxy scale (``docs/mtnet.md``, ``docs/bench/mtnet.md``).

* **Ratio ablation** (paper Table 2, MTNet-32 column): ``mtnet-32`` with short/long channel ratio
  r in {0.5, 0.625, 0.75, 0.875, 1.0} (1.0 = one vanilla 3D stream) at g = 1, and r = 0.875 at g = 8, each
  trained with the search's proxy loop on the synthetic data at several seeds (a seed fixes the data, the
  initialisation and the batch order). Reported: mean ± std of validation top-1 and top-5, params and GMACs at
  full width (1 x 3 x 16 x 224 x 224, 400 classes), CPU latency (profile ``cpu-quick``: batch 1, 8 x 112 x 112,
  one thread, forward, median of 10), and the paper's HACS top-1 beside ours.
* **Sub-stream cost table** (paper Table 3): params, GMACs and CPU latency of ``mtnet-32`` and ``mtnet-64`` at
  g = 1 and g = 8 (r = 0.875), beside the paper's params, GFLOPs and latency.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path
from typing import Any

from nas.bench.paper_trials import (
    PAPER_SHAPE, Trial, fmt_mean_std, full_costs, markdown_table, run_trials, spec_of, write_report,
)
from runners.latency import LatencyProfile, get_profile, measure_latency
from runners.proxy import ProxyConfig
from space import MTNetSpec

__all__ = ["run_mtnet_benchmark", "PAPER_TABLE2_MTNET32", "PAPER_TABLE3"]

RATIOS = (0.5, 0.625, 0.75, 0.875, 1.0)
LATENCY_PROFILE = get_profile("cpu-quick")
# ``--quick`` is a smoke test of the whole table: latency on a small clip with a short warm-up, so nine
# full-width models are timed in seconds, not minutes (its figures say which profile produced them).
SMOKE_LATENCY_PROFILE = dataclasses.replace(
    LATENCY_PROFILE, name="cpu-smoke", shape=(4, 56, 56), warmup_s=0.1,
    note="--quick only: cpu-quick on a 4 x 56 x 56 clip with a 0.1 s warm-up (a smoke test, not a measurement)",
)

# MTNet paper Table 2, HACS top-1 (%) of MTNet-32 per (ratio, substreams).
PAPER_TABLE2_MTNET32: dict[tuple[float, int], float] = {
    (0.5, 1): 69.760, (0.5, 8): 68.304,
    (0.625, 1): 71.482, (0.625, 8): 71.767,
    (0.75, 1): 74.217, (0.75, 8): 73.883,
    (0.875, 1): 76.368, (0.875, 8): 75.963,
    (1.0, 1): 74.104, (1.0, 8): 73.452,
}
# MTNet paper Table 3 (r = 0.875): params (M), GFLOPs (input shape not stated), latency forward / backward (ms).
PAPER_TABLE3: dict[tuple[int, int], tuple[float, float, float, float]] = {
    (32, 1): (21.64, 35.1, 27.41, 56.88),
    (64, 1): (43.02, 64.53, 53.17, 95.40),
    (64, 8): (13.07, 9.16, 47.96, 97.83),
}


def ablation_configs() -> list[tuple[float, int]]:
    return [(r, 1) for r in RATIOS] + [(0.875, 8)]


def _trials(proxy: ProxyConfig, train: int, val: int, seeds: tuple[int, ...]) -> list[Trial]:
    return [
        Trial(key=f"r{r}|g{g}|{seed}", label=f"r={r} g={g}", spec=MTNetSpec(depth=32, ratio=r, substreams=g),
              proxy=dataclasses.replace(proxy, seed=seed), train=train, val=val, tags={"ratio": r, "substreams": g})
        for seed in seeds for r, g in ablation_configs()  # seed-major: an interrupted run has whole tables
    ]


def _latency_ms(spec: MTNetSpec, cache: Path, profile: LatencyProfile) -> float:
    """Median forward latency under ``profile`` (cached in the output folder, so a resumed run re-uses it)."""
    return measure_latency(spec, profile, cache=cache).fwd_ms_median


def ablation_rows(
    records: dict[str, dict[str, Any]], cache: Path, profile: LatencyProfile = LATENCY_PROFILE
) -> list[dict[str, Any]]:
    groups: dict[tuple[float, int], list[dict]] = {}
    for record in records.values():
        groups.setdefault((record["tags"]["ratio"], record["tags"]["substreams"]), []).append(record)
    rows = []
    for (r, g), members in groups.items():
        spec = spec_of(members[0])
        params, gmacs = full_costs(spec)
        rows.append({
            "ratio": r, "substreams": g, "seeds": sorted(m["proxy"]["seed"] for m in members),
            "top1": [m["top1"] for m in members], "top5": [m["top5"] for m in members],
            "params_m": params, "gmacs": gmacs, "latency_ms": _latency_ms(spec, cache, profile),
            "paper_hacs_top1": PAPER_TABLE2_MTNET32.get((r, g)),
        })
    return rows


def cost_rows(cache: Path, profile: LatencyProfile = LATENCY_PROFILE) -> list[dict[str, Any]]:
    rows = []
    for depth in (32, 64):
        for g in (1, 8):
            spec = MTNetSpec(depth=depth, ratio=0.875, substreams=g)
            params, gmacs = full_costs(spec)
            rows.append({"depth": depth, "substreams": g, "params_m": params, "gmacs": gmacs,
                         "latency_ms": _latency_ms(spec, cache, profile), "paper": PAPER_TABLE3.get((depth, g))})
    return rows


def _markdown(ablation: list[dict], costs: list[dict], settings: str, profile: LatencyProfile) -> str:
    lines = ["# nas bench mtnet: the MTNet paper's ablations at proxy scale", "", settings, "",
             "## Ratio ablation (MTNet-32; paper Table 2)", "",
             "Top-1 / top-5: validation clips, mean ± std over seeds (%). Params (M) and GMACs at full width, "
             f"1 x 3 x 16 x 224 x 224, 400 classes. Latency: `{profile.name}` (batch 1, "
             f"{'x'.join(map(str, profile.shape))}, one thread, forward, median, ms) on this shared machine. Paper: HACS top-1 (%), trained from scratch.", ""]
    table = [[r["ratio"], r["substreams"], fmt_mean_std(r["top1"]), fmt_mean_std(r["top5"]), f"{r['params_m']:.2f}",
              f"{r['gmacs']:.2f}", f"{r['latency_ms']:.1f}",
              "-" if r["paper_hacs_top1"] is None else f"{r['paper_hacs_top1']:.1f}"] for r in ablation]
    lines += [markdown_table(["r", "g", "top-1 (%)", "top-5 (%)", "params (M)", "GMACs", "CPU latency (ms)",
                              "paper HACS top-1 (%)"], table), ""]
    lines += ["## Sub-stream costs (r = 0.875; paper Table 3)", "",
              "Paper: params (M), GFLOPs (input shape not stated), latency forward / backward (ms, the paper's GPU).",
              ""]
    table = []
    for c in costs:
        paper = c["paper"]
        table.append([f"mtnet-{c['depth']}", c["substreams"], f"{c['params_m']:.2f}", f"{c['gmacs']:.2f}",
                      f"{c['latency_ms']:.1f}", "-" if paper is None else f"{paper[0]:.2f}",
                      "-" if paper is None else f"{paper[1]:.2f}",
                      "-" if paper is None else f"{paper[2]:.1f} / {paper[3]:.1f}"])
    lines += [markdown_table(["model", "g", "params (M)", "GMACs", "CPU latency (ms)", "paper params (M)",
                              "paper GFLOPs", "paper latency F / B (ms)"], table), ""]
    return "\n".join(lines)


def run_mtnet_benchmark(
    out_dir: Path, *, quick: bool = False, workers: int = 2, seeds: tuple[int, ...] = (0, 1, 2),
    train: int = 480, val: int = 240, epochs: int = 3,
) -> dict[str, Any]:
    """Train the ablation (resuming from ``out_dir/trials.jsonl``), measure costs; writes ``mtnet.md`` / ``.html``.

    ``quick``: one seed, 16 / 16 clips, one epoch (a smoke test of the whole table, not a measurement).
    """
    if quick:
        seeds, train, val, epochs = (0,), 16, 16, 1
    proxy = ProxyConfig(epochs=epochs, batch_size=8 if quick else 32, lr=0.1, width_mult=0.25, frames=8, size=32,
                        threads=1)
    records = run_trials(_trials(proxy, train, val, seeds), out_dir, workers=workers, description="mtnet ablation")
    cache = out_dir / "latency-cache"
    profile = SMOKE_LATENCY_PROFILE if quick else LATENCY_PROFILE
    ablation = ablation_rows(records, cache, profile)
    costs = cost_rows(cache, profile)
    settings = (f"Proxy: synthetic data (12 classes), {train} train / {val} validation clips, 8 frames x 32 x 32 px, "
                f"width 0.25, SGD lr 0.1 batch {proxy.batch_size}, {epochs} epochs; seeds {list(seeds)}; "
                f"{workers} worker processes x 1 thread on {platform.processor() or platform.machine()}; GRU cells.")
    write_report(out_dir, "mtnet", _markdown(ablation, costs, settings, profile))
    (out_dir / "mtnet.json").write_text(json.dumps(
        {"settings": settings, "shape": PAPER_SHAPE, "ablation": ablation, "costs": costs}, indent=1, default=str))
    return {"rows": len(ablation), "trials": len(records), "report": str(out_dir / "mtnet.md")}
