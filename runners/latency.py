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
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from space import ArchSpec, build_model
from space.errors import UserInputError
from space.files import atomic_write

__all__ = [
    "PROFILES",
    "HardwareFingerprint",
    "LatencyCache",
    "LatencyProfile",
    "LatencyResult",
    "TimingStats",
    "default_cache_dir",
    "get_profile",
    "hardware_fingerprint",
    "measure_latency",
    "time_model",
    "timing_stats",
]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
RUNTIMES = ("torch", "onnxruntime")
CACHE_FORMAT = 1


@dataclass(frozen=True)
class LatencyProfile:
    """How to measure: one named, immutable protocol. Every figure says which profile produced it."""

    name: str
    device: str = "cpu"  # "cpu" or "cuda" (GPU 0)
    batch: int = 1
    shape: tuple[int, int, int] = (16, 112, 112)  # T x H x W
    dtype: str = "float32"  # float16 / bfloat16 run under torch.autocast (mixed precision, as trained)
    threads: int | None = 2  # CPU: torch.set_num_threads during the measurement; None on CUDA
    train: bool = True  # also time forward + backward
    warmup_s: float = 1.0
    runs: int = 20
    note: str = ""
    runtime: str = "torch"  # "torch": eager PyTorch; "onnxruntime": the exported ONNX model

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise UserInputError(f"profile {self.name!r}: runtime={self.runtime!r}; allowed: {', '.join(RUNTIMES)}")
        if self.runtime == "onnxruntime" and (self.train or self.dtype != "float32"):
            raise UserInputError(f"profile {self.name!r}: an ONNX Runtime profile is forward-only float32")
        if self.device not in ("cpu", "cuda"):
            raise UserInputError(f"profile {self.name!r}: device={self.device!r}; allowed: cpu, cuda")
        if self.dtype not in DTYPES:
            raise UserInputError(f"profile {self.name!r}: dtype={self.dtype!r}; allowed: {', '.join(DTYPES)}")
        if self.device == "cpu" and (self.threads is None or self.threads < 1):
            raise UserInputError(f"profile {self.name!r}: a CPU profile needs a fixed thread count >= 1")
        if self.runs < 10:
            raise UserInputError(f"profile {self.name!r}: runs={self.runs}; allowed: >= 10 timed runs")

    @property
    def input_label(self) -> str:
        return "x".join(str(v) for v in (self.batch, 3, *self.shape))

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        if self.runtime == "torch":  # keeps the cache keys of eager profiles what they were before runtimes
            del d["runtime"]
        return d


PROFILES: dict[str, LatencyProfile] = {
    p.name: p
    for p in (
        LatencyProfile(
            name="cpu",
            note="batch 1, fp32, 2 threads, forward and forward+backward, 1 s warm-up, 20 runs",
        ),
        LatencyProfile(
            name="cpu-quick",
            shape=(8, 112, 112),
            threads=1,
            train=False,
            warmup_s=0.5,
            runs=10,
            note="what a search on a small CPU machine uses: forward only, 0.5 s warm-up (shorter than the "
            "1 s of the full protocol, to save time), 10 runs, 1 thread (the measurer's own core)",
        ),
        LatencyProfile(name="cuda", device="cuda", threads=None, note="GPU 0, fp32, CUDA events"),
        LatencyProfile(
            name="cuda-fp16", device="cuda", dtype="float16", threads=None, note="GPU 0, fp16 autocast, CUDA events"
        ),
        LatencyProfile(
            name="cuda-bf16", device="cuda", dtype="bfloat16", threads=None, note="GPU 0, bf16 autocast, CUDA events"
        ),
        LatencyProfile(
            name="ort-cpu",
            runtime="onnxruntime",
            train=False,
            note="the exported ONNX model under ONNX Runtime (CPU provider): batch 1, fp32, 2 intra-op threads, "
            "1 s warm-up, 20 runs (the cpu profile's forward protocol)",
        ),
        LatencyProfile(
            name="ort-cpu-quick",
            runtime="onnxruntime",
            shape=(8, 112, 112),
            threads=1,
            train=False,
            warmup_s=0.5,
            runs=10,
            note="ONNX Runtime twin of cpu-quick: 1 thread (the measurer's own core), 0.5 s warm-up, 10 runs",
        ),
        LatencyProfile(
            name="ort-cuda",
            device="cuda",
            runtime="onnxruntime",
            threads=None,
            train=False,
            note="the exported ONNX model under ONNX Runtime's CUDA provider (onnxruntime-gpu), GPU 0, fp32, "
            "inputs and outputs bound on the GPU",
        ),
    )
}


def get_profile(name: str) -> LatencyProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UserInputError(f"unknown latency profile {name!r}; allowed: {', '.join(PROFILES)}") from None


# --------------------------------------------------------------------------------------------
# Hardware fingerprint
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HardwareFingerprint:
    """What the numbers depend on besides the model and the profile."""

    kind: str  # "cpu" or "cuda"
    device_name: str  # CPU model or GPU name
    threads: int | None
    torch_version: str
    onnxruntime_version: str | None = None  # set for ONNX Runtime profiles only

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["onnxruntime_version"] is None:  # eager fingerprints keep their pre-ONNX cache keys
            del d["onnxruntime_version"]
        return d

    def label(self) -> str:
        threads = f", {self.threads} threads" if self.threads else ""
        ort = f", onnxruntime {self.onnxruntime_version}" if self.onnxruntime_version else ""
        return f"{self.device_name}{threads}, torch {self.torch_version}{ort}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def hardware_fingerprint(profile: LatencyProfile) -> HardwareFingerprint:
    ort_version = _onnxruntime_version(profile) if profile.runtime == "onnxruntime" else None
    if profile.device == "cuda":
        if not torch.cuda.is_available():
            raise UserInputError(f"profile {profile.name!r} needs a CUDA GPU and none is available; try --profile cpu")
        return HardwareFingerprint("cuda", torch.cuda.get_device_name(0), None, torch.__version__, ort_version)
    return HardwareFingerprint("cpu", _cpu_model(), profile.threads, torch.__version__, ort_version)


def _onnxruntime_version(profile: LatencyProfile) -> str:
    """The installed ONNX Runtime's version; a CUDA profile also needs its CUDA provider (onnxruntime-gpu)."""
    import onnxruntime as ort

    if profile.device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise UserInputError(
            f"profile {profile.name!r} needs ONNX Runtime's CUDA provider (onnxruntime-gpu) and a CUDA GPU; "
            "try --profile ort-cpu"
        )
    return ort.__version__


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


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
    return torch.autocast(device_type=profile.device, dtype=DTYPES[profile.dtype])


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


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyResult:
    """The latency of one architecture under one profile on one machine."""

    spec_key: str
    profile: LatencyProfile
    fingerprint: HardwareFingerprint
    forward: TimingStats
    train: TimingStats | None
    measured_at: str
    cached: bool = field(default=False, compare=False)  # True when read back from the disk cache

    @property
    def fwd_ms_median(self) -> float:
        return self.forward.median_ms

    @property
    def fwd_ms_p90(self) -> float:
        return self.forward.p90_ms

    @property
    def train_ms_median(self) -> float | None:
        return self.train.median_ms if self.train else None

    @property
    def train_ms_p90(self) -> float | None:
        return self.train.p90_ms if self.train else None

    @property
    def cv(self) -> float:
        """Coefficient of variation of the forward timings (the figure a search ranks on)."""
        return self.forward.cv

    def summary(self) -> dict[str, Any]:
        """The flat view ``nas profile --json`` prints."""
        return {
            "profile": self.profile.name,
            "fwd_ms_median": self.fwd_ms_median,
            "fwd_ms_p90": self.fwd_ms_p90,
            "train_ms_median": self.train_ms_median,
            "train_ms_p90": self.train_ms_p90,
            "cv": self.cv,
        }


def default_cache_dir() -> Path:
    """``$VIDEONAS_CACHE/latency`` or ``$XDG_CACHE_HOME/videonas/latency`` (``~/.cache`` by default)."""
    if os.environ.get("VIDEONAS_CACHE"):
        return Path(os.environ["VIDEONAS_CACHE"]) / "latency"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "videonas" / "latency"


class LatencyCache:
    """One JSON file per (spec key, classes, profile, fingerprint), named by the hash of that key."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    @staticmethod
    def cache_key(spec_key: str, num_classes: int, profile: LatencyProfile, fp: HardwareFingerprint) -> dict:
        return {
            "format": CACHE_FORMAT,
            "spec_key": spec_key,
            "num_classes": num_classes,
            "profile": profile.as_dict(),
            "fingerprint": fp.as_dict(),
        }

    def path_for(self, key: dict) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return self.directory / f"{digest}.json"

    def load(self, key: dict, profile: LatencyProfile, fp: HardwareFingerprint) -> LatencyResult | None:
        path = self.path_for(key)
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if entry.get("key") != key:  # a hash collision or a hand-edited file: treat as a miss
            return None
        return LatencyResult(
            spec_key=key["spec_key"],
            profile=profile,
            fingerprint=fp,
            forward=TimingStats.from_dict(entry["forward"]),
            train=TimingStats.from_dict(entry["train"]) if entry["train"] else None,
            measured_at=entry["measured_at"],
            cached=True,
        )

    def save(self, key: dict, result: LatencyResult) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(key)
        entry = {
            "key": key,
            "forward": result.forward.as_dict(),
            "train": result.train.as_dict() if result.train else None,
            "measured_at": result.measured_at,
        }
        return atomic_write(path, json.dumps(entry, indent=1))  # a reader never sees half a file


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
