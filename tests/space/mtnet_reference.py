"""Frozen reference outputs and gradients of MTNet, so a faster implementation cannot change the model.

``python -m tests.space.mtnet_reference`` (from the repository root) rebuilt ``mtnet_reference.pt`` once, from
the MTNet of commit 7a5fbd2 (before MTNet was rewritten into fewer, larger operations; docs/throughput.md).
It is not meant to be run again: the file is the frozen truth that tests/space/test_mtnet_reference.py checks
today's code against. The same helpers below compute what the test compares, from today's code.

Each case is a small MTNet (several ratios, sub-stream counts and recurrent cells) in float64 with parameters set
from a seeded generator by name (not by the model's own initialisation, which a rewrite may reorder), an odd-sized
input, and a loss that weighs every logit differently. What is stored per case, compact enough to stay a few KB:

* the logits in train mode (batch statistics) and in eval mode (running statistics after that one step);
* the input's gradient as a projection on a fixed random probe plus its norm;
* per parameter, the gradient's projection on a probe and its norm (a wrong or missing gradient moves both);
* per BatchNorm, the running mean and variance after the step, as a projection on a probe.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import torch
from torch import Tensor, nn

from space.mtnet import MTNet

REFERENCE_FILE = Path(__file__).with_name("mtnet_reference.pt")
NUM_CLASSES = 5

# (name, MTNet keyword arguments, input shape): odd T, H, W throughout; g = 1 and g > 1; gru, lstm and none.
CASES: tuple[tuple[str, dict, tuple[int, ...]], ...] = (
    ("r0.875-g1-gru", dict(depth=32, ratio=0.875, substreams=1, recurrent="gru", width_mult=0.125), (2, 3, 5, 9, 7)),
    ("r0.75-g4-lstm", dict(depth=32, ratio=0.75, substreams=4, recurrent="lstm", width_mult=0.25), (3, 3, 7, 11, 13)),
    ("r0.5-g2-none", dict(depth=32, ratio=0.5, substreams=2, recurrent="none", width_mult=0.125), (2, 3, 3, 15, 9)),
    ("r1.0-g1-gru", dict(depth=32, ratio=1.0, substreams=1, recurrent="gru", width_mult=0.125), (2, 3, 4, 10, 10)),
    ("r0.625-g8-gru", dict(depth=32, ratio=0.625, substreams=8, recurrent="gru", width_mult=0.25), (2, 3, 9, 7, 17)),
)


def _generator(name: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(name.encode()))


def _probe(name: str, like: Tensor) -> Tensor:
    return torch.randn(like.shape, generator=_generator("probe:" + name), dtype=torch.float64)


def build_case(kwargs: dict) -> MTNet:
    """The case's model in float64 with every parameter drawn from a generator seeded by its name."""
    model = MTNet(num_classes=NUM_CLASSES, **kwargs).double()
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=_generator(name), dtype=torch.float64)
            if name.endswith("bias"):
                param.copy_(0.1 * noise)
            elif param.dim() == 1:  # BatchNorm weights
                param.copy_(1.0 + 0.1 * noise)
            else:  # conv, linear and recurrent weights: unit-variance activations, roughly
                param.copy_(noise / param[0].numel() ** 0.5)
    return model


def case_input(name: str, shape: tuple[int, ...]) -> Tensor:
    return torch.randn(shape, generator=_generator("input:" + name), dtype=torch.float64)


def fingerprint(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """One train-mode forward and backward, then an eval forward; everything the reference records."""
    x = x.clone().requires_grad_(True)
    model.train()
    logits = model(x)
    weights = torch.randn(logits.shape, generator=_generator("loss"), dtype=logits.dtype)
    (logits * weights).sum().backward()
    model.eval()
    with torch.no_grad():
        eval_logits = model(x.detach())
    out = {"train_logits": logits.detach(), "eval_logits": eval_logits}
    out["input_grad"] = torch.stack([(x.grad.double() * _probe("input", x)).sum(), x.grad.double().norm()])
    for name, param in model.named_parameters():
        grad = param.grad.double()
        out["grad:" + name] = torch.stack([(grad * _probe(name, grad)).sum(), grad.norm()])
    for name, buffer in model.named_buffers():
        if buffer.is_floating_point():
            out["buffer:" + name] = (buffer.double() * _probe(name, buffer)).sum()
    return out


def compute_case(name: str) -> dict[str, Tensor]:
    _, kwargs, shape = next(case for case in CASES if case[0] == name)
    return fingerprint(build_case(kwargs), case_input(name, shape))


def flatten(values: dict[str, Tensor]) -> tuple[list[str], Tensor]:
    """The keys in sorted order and their values as one flat float64 vector (one storage keeps the file small)."""
    keys = sorted(values)
    return keys, torch.cat([values[key].double().reshape(-1) for key in keys])


def keys_checksum(keys: list[str]) -> int:
    """The stored vectors hold no names: a checksum of the sorted keys (parameter names included) stands for them."""
    return zlib.crc32("\n".join(keys).encode())


if __name__ == "__main__":
    frozen = {}
    for case_name, _, _ in CASES:
        keys, flat = flatten(compute_case(case_name))
        frozen[case_name] = {"keys_checksum": keys_checksum(keys), "values": flat}
    torch.save(frozen, REFERENCE_FILE)
    print(f"wrote {REFERENCE_FILE} ({REFERENCE_FILE.stat().st_size} bytes)")
