"""Latency of an architecture under a named, frozen protocol (``docs/costs.md``), cached on disk.

A :class:`LatencyProfile` fixes everything that changes the number: device, batch, clip shape, dtype,
thread count, warm-up and number of runs. The protocol (:func:`time_model`):

1. forward in eval mode (no grad), then, unless the profile is forward-only, forward + backward in train
   mode (loss = mean of the logits; gradients dropped after each step; no optimiser step);
2. each mode warms up *by time* (until ``warmup_s`` seconds have passed, at least one call), then is timed
   ``runs`` times: ``time.perf_counter`` on CPU with a fixed ``torch.set_num_threads``, CUDA events with a
   synchronise on GPU;
3. reported: median, p90 and coefficient of variation (sample std / mean) in milliseconds.

:func:`measure_latency` caches results on disk keyed by (spec key, number of classes, the profile's every
field, hardware fingerprint = CPU model and thread count or GPU name, plus the torch version): a second call
reads the file, and other hardware or another torch misses it.

Profiles with ``runtime="onnxruntime"`` (``ort-cpu``, ``ort-cpu-quick``, ``ort-cuda``) time the deployed
model instead: the architecture is exported to ONNX (:mod:`runners.export`) and its forward pass timed
under ONNX Runtime with the same warm-up, runs and statistics (forward only: ONNX Runtime does not train).
Their fingerprint also names the ONNX Runtime version, so upgrading it misses the cache.

Where the parts live: :mod:`runners.latencyprofile` (the profiles and the hardware fingerprint),
:mod:`runners.latencytiming` (the timing protocol), :mod:`runners.latencycache` (results and their disk
cache); this module measures one architecture through them, and its names are the public ones.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from runners.latencycache import CACHE_FORMAT, LatencyCache, LatencyResult, default_cache_dir
from runners.latencyprofile import (
    DTYPES,
    PROFILES,
    RUNTIMES,
    HardwareFingerprint,
    LatencyProfile,
    get_profile,
    hardware_fingerprint,
)
from runners.latencytiming import (
    TimingStats,
    forward_step,
    time_model,
    time_onnx_model,
    time_step,
    timing_stats,
    torch_threads,
    train_step,
)
from space import ArchSpec, build_model

NOISY_CV = 0.15  # forward-latency coefficient of variation above which a median is a busy machine's (docs/costs.md)
REMEASURES = 2  # further measurements of a noisy reading before it is kept as it is, flagged by its CV

__all__ = [
    "CACHE_FORMAT",
    "DTYPES",
    "PROFILES",
    "RUNTIMES",
    "HardwareFingerprint",
    "LatencyCache",
    "LatencyProfile",
    "LatencyResult",
    "TimingStats",
    "default_cache_dir",
    "forward_step",
    "get_profile",
    "hardware_fingerprint",
    "measure_latency",
    "measure_steady_latency",
    "steadiest",
    "time_model",
    "time_onnx_model",
    "time_step",
    "timing_stats",
    "torch_threads",
    "train_step",
]


def measure_latency(
    spec: ArchSpec,
    profile: LatencyProfile | str = "cpu",
    *,
    num_classes: int = 400,
    cache: LatencyCache | Path | str | None = None,
    fingerprint: HardwareFingerprint | None = None,
    refresh: bool = False,
) -> LatencyResult:
    """Latency of ``spec`` (width 1) under ``profile``, from the disk cache when this machine measured it before.

    ``cache`` is a :class:`LatencyCache` or its folder (default :func:`default_cache_dir`); ``fingerprint``
    defaults to this machine's; ``refresh`` re-measures and overwrites the cache entry.
    """
    profile = get_profile(profile) if isinstance(profile, str) else profile
    fp = fingerprint or hardware_fingerprint(profile)
    cache = cache if isinstance(cache, LatencyCache) else LatencyCache(cache)
    key = cache.cache_key(spec.key(), num_classes, profile, fp)
    if not refresh:
        hit = cache.load(key, profile, fp)
        if hit is not None:
            return hit
    torch.manual_seed(0)
    model = build_model(spec, num_classes=num_classes)
    if profile.runtime == "onnxruntime":
        forward, train = time_onnx_model(model, profile), None
    else:
        forward, train = time_model(model, profile)
    result = LatencyResult(
        spec_key=spec.key(),
        profile=profile,
        fingerprint=fp,
        forward=forward,
        train=train,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    cache.save(key, result)
    return result


def steadiest(measure: Callable[[bool], LatencyResult], *, noisy_cv: float = NOISY_CV,
              remeasures: int = REMEASURES) -> tuple[LatencyResult, int]:
    """The steadiest of up to ``1 + remeasures`` readings: ``measure(refresh)`` again (``refresh=True``) while the
    best so far has a CV over ``noisy_cv``. Returns it and how many readings were taken (a cache hit counts one).
    A reading still over ``noisy_cv`` after that is returned as it is: its CV travels with it (docs/costs.md)."""
    best, taken = measure(False), 1
    while best.cv > noisy_cv and taken <= remeasures:
        again = measure(True)
        taken += 1
        if again.cv < best.cv:
            best = again
    return best, taken


def measure_steady_latency(spec: ArchSpec, profile: LatencyProfile | str, *, cache: LatencyCache,
                           num_classes: int = 400) -> tuple[LatencyResult, int]:
    """:func:`measure_latency`, re-measured while noisy (:func:`steadiest`); the reading kept is the one cached."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    result, taken = steadiest(lambda refresh: measure_latency(spec, profile, num_classes=num_classes, cache=cache,
                                                              refresh=refresh))
    if taken > 1:  # the last refresh cached its own reading: keep the steadiest instead
        fp = hardware_fingerprint(profile)
        cache.save(cache.cache_key(spec.key(), num_classes, profile, fp), result)
    return result, taken
