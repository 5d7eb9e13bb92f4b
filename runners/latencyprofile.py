"""Latency profiles: the named, frozen measurement protocols (``docs/costs.md``), and the hardware fingerprint.

A :class:`LatencyProfile` fixes everything that changes a latency figure (device, batch, clip shape, dtype,
thread count, warm-up, number of runs, runtime); :data:`PROFILES` are the ones a user may name. The
:class:`HardwareFingerprint` says on what the figure was measured (CPU model and threads or GPU name, torch and
ONNX Runtime versions): with the profile, it keys the disk cache (:mod:`runners.latencycache`), so other
hardware or another version never reads a figure it did not measure.

torch loads only to take a fingerprint, so ``nas profile --help`` can list the profiles without it
(docs/architecture.md, "Startup").
"""

from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from space.errors import UserInputError


DTYPES = ("float32", "float16", "bfloat16")  # names of torch dtypes (torch.float32, ...)
RUNTIMES = ("torch", "onnxruntime")


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
    import torch

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
