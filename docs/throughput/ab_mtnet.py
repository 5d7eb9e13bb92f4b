"""MTNet's proxy training step before and after its rewrite into fewer, larger operations: an interleaved A/B.

"Before" is the frozen copy of the old implementation beside this script (docs/throughput/reference/, copied from
commit 7a5fbd2, imported only here); "after" is ``space.mtnet`` as it is. Both sides get the same parameters (the
new model's state dict loads into the old one: the rewrite kept every name and shape), the same batch and the
same step (:func:`nas.bench.gpu.training_step`, what ``runners.proxy`` runs). :func:`nas.bench.throughput.
interleaved_ab` alternates them pair by pair in this one process and reports the median speed-up with a
bootstrap 95% interval and the load average before and after.

A second A/B measures what a multi-tensor (``foreach=True``) SGD step would add on top of the new model (the
proxy loop builds its optimiser with PyTorch's default, a per-parameter loop on CPU).

    .venv/bin/python docs/throughput/ab_mtnet.py [PAIRS] [FAMILY ...]    # default: 20 pairs, mtnet-32

Pause other work first (docs/throughput.md, "quiet measurement protocol"). One thread, proxy 32x3x8x32x32 at
width 0.25, seed 0. Prints one JSON line per comparison.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE / "reference"))  # the frozen old implementation, importable from this script only

import mtnet_before  # noqa: E402
from nas.bench.gpu import ProxyShape, training_step  # noqa: E402
from nas.bench.throughput import interleaved_ab  # noqa: E402
from runners.trainstep import OptimisationStep  # noqa: E402
from space import CATALOG, build_model  # noqa: E402


def _models(family: str, shape: ProxyShape) -> tuple[torch.nn.Module, torch.nn.Module]:
    spec = CATALOG[family]
    torch.manual_seed(0)
    after = build_model(spec, num_classes=shape.num_classes, width_mult=shape.width)
    before = mtnet_before.build_mtnet(spec, num_classes=shape.num_classes, width_mult=shape.width)
    before.load_state_dict(after.state_dict())  # strict: the same names and shapes
    return before, after


def _foreach_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True,
                                foreach=True)
    trainer = OptimisationStep(model.train(), optimizer, amp=False)
    return lambda: trainer(x, y, epoch=0, step=0).loss


def main(pairs: int, families: list[str]) -> None:
    torch.set_num_threads(1)
    shape = ProxyShape()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape.batch, 3, shape.frames, shape.size, shape.size, generator=generator)
    y = torch.randint(0, shape.num_classes, (shape.batch,), generator=generator)
    cpu = torch.device("cpu")
    for family in families:
        before, after = _models(family, shape)
        result = interleaved_ab(training_step(before, x, y), training_step(after, x, y), pairs=pairs, device=cpu)
        print(json.dumps({"family": family, "a": "before (7a5fbd2)", "b": "after", **result}), flush=True)
        _, plain = _models(family, shape)
        _, fused = _models(family, shape)
        result = interleaved_ab(training_step(plain, x, y), _foreach_step(fused, x, y), pairs=pairs, device=cpu)
        print(json.dumps({"family": family, "a": "after, SGD per parameter", "b": "after, SGD foreach=True",
                          **result}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, sys.argv[2:] or ["mtnet-32"])
