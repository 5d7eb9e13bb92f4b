"""Every family's proxy training step as a share of the conv3d roof in its own layout, in a few minutes.

The training table of ``nas bench throughput`` (:func:`nas.bench.throughput.device_table`) without the
deployment forwards, which take most of its time, so a quiet window of a few minutes holds the whole run. One
thread, proxy 32x3x8x32x32 at width 0.25, seed 0; the report states the load average at start and end and warns
when the machine was busy (docs/throughput.md, "quiet measurement protocol").

    .venv/bin/python docs/throughput/quiet_shares.py OUT.md [ROUNDS]     # default: 10 rounds
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nas.bench.throughput import (  # noqa: E402
    FAMILIES,
    Load,
    ProxyShape,
    _machine,
    _markdown,
    busy_warning,
    device_table,
)


def main(out: Path, rounds: int) -> None:
    torch.set_num_threads(1)
    shape = ProxyShape()
    start = Load.now()
    table = device_table(torch.device("cpu"), FAMILIES, shape, rounds=rounds, warmup_s=1.0, forward=False,
                         profile_steps=1, progress=None)
    end = Load.now()
    result = {"shape": shape, "rounds": rounds, "machine": _machine(), "load_start": str(start),
              "load_end": str(end), "warning": busy_warning(start, end, own_threads=1),
              "tables": [{**table, "threads": 1}], "shared_gpu": []}
    out.write_text(_markdown(result))
    print(f"{out}: load {start} -> {end}; " + ", ".join(f"{r['family']} {r['conv_roof_pct']}%" for r in table["train"]))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10)
