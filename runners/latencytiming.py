"""Timing a model under a latency profile: warm up by time, time a fixed number of calls, summarise.

:func:`time_model` is the eager-PyTorch protocol (forward in eval mode, then forward + backward in train mode
unless the profile is forward-only), :func:`time_onnx_model` the deployed one (the ONNX export under ONNX
Runtime, forward only); both report a :class:`TimingStats` (median, p90, coefficient of variation). The
protocol is described in :mod:`runners.latency` and ``docs/costs.md``.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from runners.latencyprofile import LatencyProfile


@dataclass(frozen=True)
class TimingStats:
    """Summary of ``runs`` timed calls, in milliseconds."""

    median_ms: float
    p90_ms: float
    cv: float  # sample standard deviation / mean
    samples_ms: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"median_ms": self.median_ms, "p90_ms": self.p90_ms, "cv": self.cv, "samples_ms": list(self.samples_ms)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TimingStats":
        return cls(d["median_ms"], d["p90_ms"], d["cv"], tuple(d["samples_ms"]))


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def timing_stats(samples_ms: list[float]) -> TimingStats:
    mean = statistics.fmean(samples_ms)
    std = statistics.stdev(samples_ms) if len(samples_ms) > 1 else 0.0
    return TimingStats(
        median_ms=statistics.median(samples_ms),
        p90_ms=_percentile(samples_ms, 90),
        cv=std / mean if mean > 0 else 0.0,
        samples_ms=tuple(samples_ms),
    )


def _timed_call_ms(step: Callable[[], None], device: str) -> float:
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))
    begin = time.perf_counter()
    step()
    return (time.perf_counter() - begin) * 1e3


def time_step(step: Callable[[], None], *, device: str, warmup_s: float, runs: int) -> TimingStats:
    """Warm up for ``warmup_s`` seconds (at least one call), then time ``runs`` calls."""
    begin = time.perf_counter()
    while True:
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        if time.perf_counter() - begin >= warmup_s:
            break
    return timing_stats([_timed_call_ms(step, device) for _ in range(runs)])


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with a fixed intra-op thread count, then restore the previous one."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _autocast(profile: LatencyProfile) -> contextlib.AbstractContextManager:
    if profile.dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=profile.device, dtype=getattr(torch, profile.dtype))


def forward_step(model: nn.Module, x: Tensor, profile: LatencyProfile) -> Callable[[], None]:
    """One eval-mode forward without autograd."""

    def step() -> None:
        with torch.no_grad(), _autocast(profile):
            model(x)

    return step


def train_step(model: nn.Module, x: Tensor, profile: LatencyProfile) -> Callable[[], None]:
    """One train-mode forward + backward (gradients dropped, no optimiser step)."""

    def step() -> None:
        with _autocast(profile):
            loss = model(x).float().mean()
        loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def time_model(model: nn.Module, profile: LatencyProfile) -> tuple[TimingStats, TimingStats | None]:
    """(forward, forward+backward or None) for ``model`` under ``profile``; the model is moved to its device."""
    device = "cuda:0" if profile.device == "cuda" else "cpu"
    model = model.to(device)
    x = torch.randn(profile.batch, 3, *profile.shape, generator=torch.Generator().manual_seed(0)).to(device)
    timing = dict(device=profile.device, warmup_s=profile.warmup_s, runs=profile.runs)
    with torch_threads(profile.threads):
        model.eval()
        forward = time_step(forward_step(model, x, profile), **timing)
        train = None
        if profile.train:
            model.train()
            train = time_step(train_step(model, x, profile), **timing)
            model.eval()
    return forward, train


def time_onnx_model(model: nn.Module, profile: LatencyProfile) -> TimingStats:
    """Forward latency of ``model`` exported to ONNX and run by ONNX Runtime under ``profile``.

    The export is the one ``nas export --format onnx`` writes (dynamic batch, deployed gate state), kept
    in a temporary folder. ``Session.run`` returns only when the outputs are ready (on CUDA, after the
    stream is synchronised), so each call is timed with ``time.perf_counter`` on both devices.
    """
    import tempfile

    from runners.export import EXPORT_BATCH, OnnxRunner, deployed, export_artifact, random_clips

    model = deployed(model)
    with tempfile.TemporaryDirectory(prefix="videonas-ort-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_artifact(model, "onnx", random_clips(EXPORT_BATCH, profile.shape, seed=0), path)
        runner = OnnxRunner(path, device=profile.device, threads=profile.threads)
    x = torch.randn(profile.batch, 3, *profile.shape, generator=torch.Generator().manual_seed(0)).numpy()
    return time_step(runner.bound_step(x), device="cpu", warmup_s=profile.warmup_s, runs=profile.runs)
