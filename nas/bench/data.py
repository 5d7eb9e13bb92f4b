"""``nas bench data`` (``docs/data.md``): how fast data is made and read, against what proxy training consumes.

:func:`run_data_benchmark` measures, and writes ``data-benchmark.md`` (plus ``data-benchmark.json``) into
``out_dir``:

1. **Synthetic generation** of 16 x 64 x 64 clips on one core: clips per second, steady state (after a
   warm-up, into a reused buffer) and end to end (``generate_synthetic`` including allocating fresh memory),
   by wall clock and by process CPU time (the CPU-time figure is the one-core rate even when other processes
   compete for the cores).
2. **Cache read**: random training batches gathered from a memory-mapped prepared cache, clips per second.
3. **Proxy training feed**: a short ``train_proxy`` run; time the step loop waited for data as a share of
   step time.
4. **Architecture separation** (optional, the slow part): the proxy accuracy of five catalog architectures at
   the demo's proxy settings; the data should separate them (span >= 15 points) without saturating (< 95%).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from runners.cache import open_cache, prepare_dataset
from runners.proxy import ProxyConfig, train_proxy
from runners.sampling import ViewConfig, sample_training_batch
from runners.synthetic import (
    SyntheticConfig,
    balanced_labels,
    generate_synthetic,
    pair_accuracy,
    render,
    reversed_pairs,
    sample_params,
    synthetic_splits,
)
from nas.demo import demo_data, demo_proxy
from space.catalog import catalog_spec

__all__ = ["DEMO_PROXY", "DEMO_DATA", "DEMO_ARCHITECTURES", "run_data_benchmark"]

# The demo's proxy settings and data (what `make demo` searches with), derived from nas.demo (docs/data.md, Demo proxy settings).
DEMO_PROXY = demo_proxy(threads=2)
DEMO_DATA = demo_data()
DEMO_ARCHITECTURES = ("r3d-18", "r2plus1d-18", "srtg-r3d-18-final", "r3d-50", "mtnet-32")


def _generation_rates(clips: int, repeats: int = 3) -> dict[str, float]:
    config = SyntheticConfig(frames=16, size=64)
    rng = np.random.default_rng(0)
    params = sample_params(rng, balanced_labels(rng, clips, config.num_classes), config)
    buffer = np.empty((clips, 16, 64, 64, 3), dtype=np.uint8)
    render(params, config, seed=0, out=buffer)  # warm-up: first touch of fresh memory, page faults
    steady_wall, steady_cpu = [], []
    for r in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        render(params, config, seed=r, out=buffer)
        steady_wall.append(clips / (time.perf_counter() - wall))
        steady_cpu.append(clips / (time.process_time() - cpu))
    wall, cpu = time.perf_counter(), time.process_time()
    generate_synthetic(clips, config, seed=99)
    return {
        "steady_clips_per_s_wall": max(steady_wall),
        "steady_clips_per_s_cpu": max(steady_cpu),
        "end_to_end_clips_per_s_wall": clips / (time.perf_counter() - wall),
        "end_to_end_clips_per_s_cpu": clips / (time.process_time() - cpu),
    }


def _cache_read_rate(folder: Path, batches: int = 50, batch_size: int = 32) -> dict[str, float]:
    train = open_cache(folder)["train"]
    rng = np.random.default_rng(0)
    view = ViewConfig(frames=8, size=32)
    started = time.perf_counter()
    for _ in range(batches):
        indices = np.sort(rng.choice(len(train), batch_size, replace=False))
        sample_training_batch(train.videos, indices, view, rng)
    seconds = time.perf_counter() - started
    return {"cache_read_clips_per_s": batches * batch_size / seconds, "cache_read_batch_ms": 1000 * seconds / batches}


def _feed_share(folder: Path, config: ProxyConfig) -> dict[str, float]:
    sets = open_cache(folder)
    result = train_proxy(catalog_spec("r3d-18"), sets["train"], sets["val"], config)
    steps = sum(e.step_seconds for e in result.history)
    consumed = len(sets["train"]) // config.batch_size * config.batch_size * config.epochs
    return {
        "proxy_data_wait_seconds": result.data_wait_seconds,
        "proxy_step_seconds": steps,
        "proxy_data_wait_share": result.data_wait_fraction,
        "proxy_consumed_clips_per_s": consumed / steps,
    }


def _architecture_accuracies(architectures: tuple[str, ...], config: ProxyConfig, data: dict) -> dict:
    sets = synthetic_splits(train=data["train"], val=data["val"], config=data["config"], seed=config.seed)
    pairs = reversed_pairs(sets["val"].classes)
    rows = {}
    for name in architectures:
        result = train_proxy(catalog_spec(name), sets["train"], sets["val"], config)
        pair, _ = pair_accuracy(result.val_probabilities, sets["val"].labels, pairs)
        rows[name] = {"accuracy": result.accuracy, "pair_accuracy": pair, "seconds": result.train_seconds}
    accuracies = [r["accuracy"] for r in rows.values()]
    return {"architectures": rows, "span_points": 100 * (max(accuracies) - min(accuracies)),
            "max_accuracy": max(accuracies)}


def run_data_benchmark(
    out_dir: Path,
    *,
    generation_clips: int = 2000,
    include_architectures: bool = True,
    architectures: tuple[str, ...] = DEMO_ARCHITECTURES,
    proxy: ProxyConfig = DEMO_PROXY,
    data: dict | None = None,
    quick: bool = False,
) -> dict:
    """Run the data benchmark, write ``data-benchmark.md`` / ``.json`` into ``out_dir``, return the figures.

    ``quick``: a smoke-test version (500 generated clips, a small cache, no architecture comparison).
    """
    data = data or DEMO_DATA
    if quick:
        generation_clips, include_architectures = 500, False
        data = {**data, "train": 256, "val": 64}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "load_average": os.getloadavg()}}
    figures["generation"] = _generation_rates(generation_clips)
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "cache"
        prepare_dataset("synthetic", out=cache, frames=proxy.frames, size=proxy.size, synthetic=data["config"],
                        synthetic_clips=data["train"])
        figures["cache"] = _cache_read_rate(cache)
        feed_config = ProxyConfig(**{**asdict(proxy), "epochs": 1})
        figures["feed"] = _feed_share(cache, feed_config)
    if include_architectures:
        figures["separation"] = _architecture_accuracies(architectures, proxy, data)
    figures["settings"] = {"proxy": proxy.to_dict(), "train_clips": data["train"], "val_clips": data["val"],
                           "synthetic": asdict(data["config"])}
    (out_dir / "data-benchmark.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    (out_dir / "data-benchmark.md").write_text(_markdown(figures))
    return figures


def _markdown(f: dict) -> str:
    g, c, feed, s = f["generation"], f["cache"], f["feed"], f["settings"]
    p = s["proxy"]
    shape = f"{p['frames']}x{p['size']}x{p['size']}"
    lines = [
        "# Data benchmark (`nas bench data`)",
        "",
        f"Machine: {f['machine']['cpu']}, {f['machine']['cores']} cores, load average at start "
        f"{', '.join(f'{x:.1f}' for x in f['machine']['load_average'])}.",
        "",
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| synthetic generation, 16x64x64 clips, one core, steady state (CPU time) | {g['steady_clips_per_s_cpu']:.0f} clips/s | >= 2000 |",
        f"| synthetic generation, 16x64x64 clips, steady state (wall clock) | {g['steady_clips_per_s_wall']:.0f} clips/s | |",
        f"| synthetic generation, 16x64x64, end to end incl. fresh memory (CPU time) | {g['end_to_end_clips_per_s_cpu']:.0f} clips/s | |",
        f"| cache read: random {shape} training batches of 32 from a memory map | {c['cache_read_clips_per_s']:.0f} clips/s ({c['cache_read_batch_ms']:.1f} ms/batch) | |",
        f"| proxy training (r3d-18, width {p['width_mult']}, {shape}, batch {p['batch_size']}) consumes | {feed['proxy_consumed_clips_per_s']:.0f} clips/s | |",
        f"| data wait / step time during proxy training | {100 * feed['proxy_data_wait_share']:.2f}% | <= 5% |",
    ]  # fmt: skip
    if "separation" in f:
        sep = f["separation"]
        lines += [
            "",
            "## Architecture separation at the demo proxy settings",
            "",
            f"{p['epochs']} epochs, batch {p['batch_size']}, lr {p['lr']}, width {p['width_mult']}, clips {shape} "
            f"(T x H x W), {s['train_clips']} training / {s['val_clips']} validation synthetic clips with "
            + ", ".join(f"{k} {v}" for k, v in s["synthetic"].items()) + ".",
            "",
            "| architecture | val top-1 | pair accuracy (true class vs its time-reversal) | seconds |",
            "| --- | --- | --- | --- |",
        ]
        for name, row in sep["architectures"].items():
            lines.append(f"| {name} | {100 * row['accuracy']:.1f}% | {100 * row['pair_accuracy']:.1f}% | {row['seconds']:.0f} |")
        lines += ["", f"Span: {sep['span_points']:.1f} points (target >= 15); best: {100 * sep['max_accuracy']:.1f}% "
                  "(target < 95%)."]
    return "\n".join(lines) + "\n"
