"""How much of a proxy training step is fixed per-step cost and how much grows with the batch.

For each family, one proxy training step (:func:`nas.bench.gpu.training_step`, what ``runners.proxy`` runs) is
timed at batch sizes 2, 4, 8, 16 and 32, the sizes interleaved round by round in this one process, and a
least-squares line ``step = fixed + per_sample x batch`` is fitted to the medians. ``fixed`` is what a step costs
whatever the batch (operator dispatch, autograd bookkeeping, the optimiser over every parameter tensor); the
rest is work on the data, which fewer operator calls cannot remove (docs/throughput.md, "where MTNet's step
goes"). One thread, proxy 3 x 8 x 32 x 32 clips at width 0.25, seed 0; the load average is printed before and
after.

    .venv/bin/python docs/throughput/fixed_cost.py [ROUNDS] [FAMILY ...]    # default: 15 rounds, mtnet-32 r3d-18
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nas.bench.gpu import ProxyShape, training_step  # noqa: E402
from nas.bench.throughput import Load  # noqa: E402
from space import CATALOG, build_model  # noqa: E402

BATCHES = (2, 4, 8, 16, 32)  # batch 1 cannot train BatchNorm on the 1 x 1 x 1 maps of the last stage


def _steps(family: str, shape: ProxyShape) -> dict[int, object]:
    steps = {}
    for batch in BATCHES:
        torch.manual_seed(0)
        model = build_model(CATALOG[family], num_classes=shape.num_classes, width_mult=shape.width)
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, shape.frames, shape.size, shape.size, generator=generator)
        y = torch.randint(0, shape.num_classes, (batch,), generator=generator)
        steps[batch] = training_step(model, x, y)
    return steps


def _fit(medians: dict[int, float]) -> tuple[float, float]:
    """Least-squares ``fixed, per_sample`` of ``median = fixed + per_sample x batch``."""
    xs, ys = list(medians), list(medians.values())
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def main(rounds: int, families: list[str]) -> None:
    torch.set_num_threads(1)
    shape = ProxyShape()
    start = Load.now()
    for family in families:
        steps = _steps(family, shape)
        for step in steps.values():  # warm-up: allocator, oneDNN primitive caches
            for _ in range(3):
                step()
        seconds: dict[int, list[float]] = {batch: [] for batch in BATCHES}
        for round_index in range(rounds):
            order = BATCHES if round_index % 2 == 0 else tuple(reversed(BATCHES))
            for batch in order:
                began = time.perf_counter()
                steps[batch]()
                seconds[batch].append(time.perf_counter() - began)
        medians = {batch: 1e3 * statistics.median(values) for batch, values in seconds.items()}
        fixed, per_sample = _fit(medians)
        print(json.dumps({"family": family, "rounds": rounds, "median_ms": {b: round(m, 1) for b, m in medians.items()},
                          "fixed_ms": round(fixed, 1), "per_sample_ms": round(per_sample, 2),
                          "fixed_share_at_32": round(fixed / medians[32], 3)}), flush=True)
    print(json.dumps({"load_start": str(start), "load_end": str(Load.now())}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15, sys.argv[2:] or ["mtnet-32", "r3d-18"])
