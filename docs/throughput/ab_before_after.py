"""Interleaved A/B of proxy training steps before and after issue 16, in one process (robust to machine load).

"Before" = the three replaced implementations, restored for the A side only: SoftPool by gathering windows
(``tests/space/reference_ops.soft_pool3d_gather``), SRTG's fuse-then-``torch.where`` forward
(``tests/space/reference_ops.srtg_forward_where``) and the contiguous layout. "After" = the code as it is.
Each pair runs one A and one B step (order alternating); ratio = A / B per pair (> 1: after is faster);
median with a percentile bootstrap 95% interval. One thread, proxy 32x3x8x32x32 at width 0.25, seed 0.

    .venv/bin/python docs/throughput/ab_before_after.py [PAIRS]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import space.softpool as softpool  # noqa: E402
from nas.bench.costs import bootstrap_median_ci  # noqa: E402
from nas.bench.throughput import FAMILIES, ProxyShape, training_step  # noqa: E402
from runners.layout import to_training_layout  # noqa: E402
from space import CATALOG, build_model  # noqa: E402
from space.srtg import SRTG  # noqa: E402
from tests.space.reference_ops import soft_pool3d_gather, srtg_forward_where  # noqa: E402

FAST = {"pool": softpool.soft_pool3d, "srtg": SRTG.forward}


def use(before: bool) -> None:
    softpool.soft_pool3d = soft_pool3d_gather if before else FAST["pool"]
    SRTG.forward = srtg_forward_where if before else FAST["srtg"]


def main(pairs: int) -> None:
    torch.set_num_threads(1)
    shape = ProxyShape()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape.batch, 3, shape.frames, shape.size, shape.size, generator=generator)
    y = torch.randint(0, shape.num_classes, (shape.batch,), generator=generator)
    print(json.dumps({"load_start": os.getloadavg()}), flush=True)
    for family in FAMILIES:
        spec = CATALOG[family]
        steps = {}
        for side in ("before", "after"):
            torch.manual_seed(0)
            model = build_model(spec, num_classes=shape.num_classes, width_mult=shape.width)
            if side == "after":
                model = to_training_layout(model, spec, torch.device("cpu"))
            steps[side] = training_step(model, x, y)
        times: dict[str, list[float]] = {"before": [], "after": []}
        for side in ("before", "after"):
            use(side == "before")
            steps[side]()
        for i in range(pairs):
            for side in ("before", "after") if i % 2 == 0 else ("after", "before"):
                use(side == "before")
                begin = time.perf_counter()
                steps[side]()
                times[side].append(time.perf_counter() - begin)
        use(False)
        ratios = [a / b for a, b in zip(times["before"], times["after"])]
        low, high = bootstrap_median_ci(ratios)
        print(json.dumps({
            "family": family, "pairs": pairs,
            "before_ms_median": round(1e3 * statistics.median(times["before"]), 1),
            "after_ms_median": round(1e3 * statistics.median(times["after"]), 1),
            "speedup_median": round(statistics.median(ratios), 3), "ci95": [round(low, 3), round(high, 3)],
        }), flush=True)
    print(json.dumps({"load_end": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
