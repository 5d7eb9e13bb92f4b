"""``nas bench throughput``: how close proxy training runs to the machine's speed, per catalog family.

A search's wall time is its trials' training time, so this benchmark asks, per family of the catalog
(:data:`FAMILIES`), how many multiply-accumulates per second a proxy training step reaches compared with
what the same machine reaches on a large dense op at the same thread count:

* **training GMAC/s** = 3 x forward MACs of the proxy model at the proxy batch / median step time. A step is
  what :mod:`runners.proxy` does per batch: forward, cross-entropy (+ SRTG auxiliary loss), backward,
  SGD + Nesterov step, in the memory layout the proxy trains in (:mod:`runners.layout`; families trained
  channels-last also get a "(contiguous)" row). "3 x forward" is the usual forward + two backward products
  convention;
* **roofs**, measured in the same run: a 64->64 3x3x3 ``conv3d`` forward on 8 x 64 x 8 x 28 x 28 and a
  2048 x 2048 x 2048 ``matmul``. The share of the conv3d roof is the headline;
* **forward latency** at the deployment shape (batch 1, full width, eval mode), as the latency objective
  measures it, with its GMAC/s share of the same roof;
* a **per-op profile** (``torch.profiler``, self CPU time) of every family's training step; the slowest
  family's is the headline and explains what keeps it from the roof.

Load on a shared machine moves every timing, so the benchmark runs in *rounds*: each round times both
roofs and one step of every family back to back, a share is computed within its round, and the median
over rounds is reported with its min-max. The machine's load average is recorded at start and end.

On CUDA (when a GPU is present) the same table runs on GPU 0 with float16 autocast as proxy trials on a
GPU do (``amp``), timed with a synchronise around every step; then ``k`` proxy trials share the GPU as
``--gpus-per-trial 1/k`` would let Ray place them (k processes, each training for the same wall time),
reporting the aggregate steps per second against one trial alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import Tensor, nn

from runners.costs import count_macs_meta
from runners.latency import torch_threads
from runners.layout import to_training_layout, training_memory_format
from runners.trainstep import OptimisationStep
from space import CATALOG, ArchSpec, build_model

__all__ = [
    "FAMILIES",
    "ProxyShape",
    "Roofs",
    "run_throughput_benchmark",
    "proxy_macs",
    "training_step",
    "measure_roofs",
    "op_profile",
]

# One representative per family of the catalog: the smallest depth, SRTG at the placement the papers report.
FAMILIES = ("r3d-18", "r2plus1d-18", "srtg-r3d-18-final", "srtg-r2plus1d-18-final", "mtnet-32")
GOALS = {"r3d-18": 0.70, "r2plus1d-18": 0.45, "mtnet-32": 0.35}  # share of the conv3d roof, 1 thread (issue 16)
ROOF_CONV_INPUT = (8, 64, 8, 28, 28)
ROOF_MATMUL_N = 2048


@dataclass(frozen=True)
class ProxyShape:
    """The search's proxy: batch x 3 x frames x size x size at ``width`` (the demo search's settings)."""

    batch: int = 32
    frames: int = 8
    size: int = 32
    width: float = 0.25
    num_classes: int = 12  # the synthetic data's default class count
    deploy_shape: tuple[int, int, int] = (16, 112, 112)  # the demo's deployment shape, batch 1, full width

    @property
    def label(self) -> str:
        return f"{self.batch}x3x{self.frames}x{self.size}x{self.size} @ width {self.width}"


# --------------------------------------------------------------------------------------------
# Work and timing
# --------------------------------------------------------------------------------------------


def proxy_macs(spec: ArchSpec, shape: ProxyShape) -> int:
    """Forward MACs of the proxy model at the proxy batch (meta device, SPEC 3 counting)."""
    with torch.device("meta"):
        model = build_model(spec, num_classes=shape.num_classes, width_mult=shape.width)
    return count_macs_meta(model, torch.empty(shape.batch, 3, shape.frames, shape.size, shape.size, device="meta"))


def deploy_macs(spec: ArchSpec, shape: ProxyShape) -> int:
    with torch.device("meta"):
        model = build_model(spec, num_classes=shape.num_classes)
    return count_macs_meta(model, torch.empty(1, 3, *shape.deploy_shape, device="meta"))


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes; on CUDA the queue is drained before and after."""
    _synchronise(device)
    begin = time.perf_counter()
    fn()
    _synchronise(device)
    return time.perf_counter() - begin


def warm_up(fn: Callable[[], Any], device: torch.device, seconds: float, min_calls: int = 2) -> None:
    begin = time.perf_counter()
    calls = 0
    while calls < min_calls or time.perf_counter() - begin < seconds:
        timed(fn, device)
        calls += 1


def training_step(model: nn.Module, x: Tensor, y: Tensor, *, amp: bool = False) -> Callable[[], float]:
    """One proxy training step, the very one :mod:`runners.proxy` runs (:class:`runners.trainstep.OptimisationStep`,
    loss sync included); returns the loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
    trainer = OptimisationStep(model, optimizer, amp=amp)
    model.train()

    def step() -> float:
        return trainer(x, y, epoch=0, step=0).loss

    return step


def forward_step(model: nn.Module, x: Tensor, *, amp: bool = False) -> Callable[[], None]:
    model.eval()

    def step() -> None:
        with torch.no_grad(), torch.autocast(device_type=x.device.type, dtype=torch.float16, enabled=amp):
            model(x)

    return step


# --------------------------------------------------------------------------------------------
# Roofs
# --------------------------------------------------------------------------------------------


@dataclass
class Roofs:
    """The two reference ops and their MACs; call them inside the same rounds as the models."""

    conv: Callable[[], Any]
    matmul: Callable[[], Any]
    conv_macs: int
    matmul_macs: int
    conv_label: str
    matmul_label: str


def measure_roofs(device: torch.device, *, half: bool = False) -> Roofs:
    """A large conv3d forward and a large matmul (float16 when ``half``, as autocast would run them)."""
    generator = torch.Generator().manual_seed(0)
    dtype = torch.float16 if half else torch.float32
    n, c, t, h, w = ROOF_CONV_INPUT
    x = torch.randn(n, c, t, h, w, generator=generator).to(device, dtype)
    weight = torch.randn(64, c, 3, 3, 3, generator=generator).to(device, dtype) * 0.05
    a = torch.randn(ROOF_MATMUL_N, ROOF_MATMUL_N, generator=generator).to(device, dtype)
    b = torch.randn(ROOF_MATMUL_N, ROOF_MATMUL_N, generator=generator).to(device, dtype)

    def conv() -> None:
        with torch.no_grad():
            F.conv3d(x, weight, padding=1)

    def matmul() -> None:
        torch.mm(a, b)

    return Roofs(
        conv=conv,
        matmul=matmul,
        conv_macs=n * 64 * t * h * w * c * 27,
        matmul_macs=ROOF_MATMUL_N**3,
        conv_label=f"conv3d 64->64 3x3x3 on {'x'.join(map(str, ROOF_CONV_INPUT))} (forward)",
        matmul_label=f"matmul {ROOF_MATMUL_N}x{ROOF_MATMUL_N}x{ROOF_MATMUL_N}",
    )


# --------------------------------------------------------------------------------------------
# Rounds
# --------------------------------------------------------------------------------------------


@dataclass
class _Subject:
    """One timed thing: a family's training step or its deployment forward."""

    family: str
    kind: str  # "train" or "forward"
    step: Callable[[], Any]
    macs: int  # work per call: 3 x forward MACs for training, forward MACs for a forward
    seconds: list[float] = dataclasses.field(default_factory=list)
    conv_share: list[float] = dataclasses.field(default_factory=list)
    matmul_share: list[float] = dataclasses.field(default_factory=list)


def _subjects(families: tuple[str, ...], shape: ProxyShape, device: torch.device, *, amp: bool,
              forward: bool) -> list[_Subject]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape.batch, 3, shape.frames, shape.size, shape.size, generator=generator).to(device)
    y = torch.randint(0, shape.num_classes, (shape.batch,), generator=generator).to(device)
    clip = torch.randn(1, 3, *shape.deploy_shape, generator=generator).to(device)
    subjects = []
    for family in families:
        spec = CATALOG[family]
        macs = 3 * proxy_macs(spec, shape)
        torch.manual_seed(0)
        model = to_training_layout(build_model(spec, num_classes=shape.num_classes, width_mult=shape.width), spec,
                                   device)
        subjects.append(_Subject(family, "train", training_step(model, x, y, amp=amp), macs))
        if training_memory_format(spec, device) != torch.contiguous_format:  # what the layout choice gains
            torch.manual_seed(0)
            plain = build_model(spec, num_classes=shape.num_classes, width_mult=shape.width).to(device)
            subjects.append(_Subject(f"{family} (contiguous)", "train", training_step(plain, x, y, amp=amp), macs))
        if forward:
            deployed = build_model(spec, num_classes=shape.num_classes).to(device)
            subjects.append(_Subject(family, "forward", forward_step(deployed, clip, amp=amp), deploy_macs(spec, shape)))
    return subjects


def _run_rounds(subjects: list[_Subject], roofs: Roofs, device: torch.device, *, rounds: int, warmup_s: float,
                progress: Progress | None) -> dict[str, list[float]]:
    roof_seconds: dict[str, list[float]] = {"conv": [], "matmul": []}
    for fn in (roofs.conv, roofs.matmul, *(s.step for s in subjects)):
        warm_up(fn, device, warmup_s)
    task = progress.add_task("throughput rounds", total=rounds) if progress else None
    for index in range(rounds):
        order = subjects if index % 2 == 0 else list(reversed(subjects))  # drift hits both ends alike
        conv_s, matmul_s = timed(roofs.conv, device), timed(roofs.matmul, device)
        for subject in order:
            subject.seconds.append(timed(subject.step, device))
        conv_s = min(conv_s, timed(roofs.conv, device))  # roof: the faster of its two timings in the round
        conv_rate, matmul_rate = roofs.conv_macs / conv_s, roofs.matmul_macs / matmul_s
        roof_seconds["conv"].append(conv_s)
        roof_seconds["matmul"].append(matmul_s)
        for subject in subjects:
            rate = subject.macs / subject.seconds[-1]
            subject.conv_share.append(rate / conv_rate)
            subject.matmul_share.append(rate / matmul_rate)
        if progress is not None:
            progress.advance(task)
    return roof_seconds


# --------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------


def op_profile(step: Callable[[], Any], *, steps: int = 3, top: int = 15) -> dict[str, Any]:
    """Self CPU time per operator over ``steps`` calls of ``step`` (after one untimed call)."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    rows = [
        {
            "op": e.key,
            "calls_per_step": round(e.count / steps, 1),
            "self_ms_per_step": round(e.self_cpu_time_total / 1e3 / steps, 3),
            "share_pct": round(100 * e.self_cpu_time_total / total, 1),
        }
        for e in events[:top]
    ]
    conv_us = sum(e.self_cpu_time_total for e in events if "conv" in e.key or "mkldnn" in e.key)
    return {
        "steps": steps,
        "self_ms_per_step": round(total / 1e3 / steps, 2),
        "op_calls_per_step": round(sum(e.count for e in events) / steps, 1),
        "conv_share_pct": round(100 * conv_us / total, 1),
        "copy_calls_per_step": round(sum(e.count for e in events if e.key == "aten::copy_") / steps, 1),
        "top": rows,
    }


# --------------------------------------------------------------------------------------------
# CUDA: trials sharing one GPU
# --------------------------------------------------------------------------------------------


def _shared_gpu_worker(family: str, shape: ProxyShape, seconds: float, barrier: Any, results: Any) -> None:
    """One proxy trial on GPU 0: warm up, wait for the others, train for ``seconds``, report steps done."""
    device = torch.device("cuda:0")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape.batch, 3, shape.frames, shape.size, shape.size, generator=generator).to(device)
    y = torch.randint(0, shape.num_classes, (shape.batch,), generator=generator).to(device)
    torch.manual_seed(0)
    model = build_model(CATALOG[family], num_classes=shape.num_classes, width_mult=shape.width).to(device)
    step = training_step(model, x, y, amp=True)
    warm_up(step, device, 2.0)
    barrier.wait()
    begin = time.perf_counter()
    steps = 0
    while time.perf_counter() - begin < seconds:
        step()
        steps += 1
    torch.cuda.synchronize(device)
    results.put((steps, time.perf_counter() - begin))


def trials_per_gpu(family: str, shape: ProxyShape, *, sharing: tuple[int, ...] = (1, 2, 4),
                   seconds: float = 10.0) -> list[dict[str, Any]]:
    """Aggregate training steps/s when ``k`` trials share GPU 0 (``--gpus-per-trial 1/k``), for each k."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # CUDA cannot be re-initialised in a forked child
    rows = []
    single_rate = None
    for k in sharing:
        barrier, results = context.Barrier(k), context.Queue()
        workers = [context.Process(target=_shared_gpu_worker, args=(family, shape, seconds, barrier, results))
                   for _ in range(k)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=600) for _ in workers]
        for worker in workers:
            worker.join()
        rate = sum(steps / wall for steps, wall in outcomes)
        single_rate = single_rate or rate
        rows.append({
            "family": family,
            "trials_sharing_gpu": k,
            "gpus_per_trial": round(1 / k, 3),
            "steps_per_s_total": round(rate, 2),
            "steps_per_s_per_trial": round(rate / k, 2),
            "speedup_vs_one_trial": round(rate / single_rate, 2),
        })
    return rows


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min, {os.cpu_count()} CPUs)"


def _summary(subject: _Subject) -> dict[str, Any]:
    median_s = statistics.median(subject.seconds)
    row = {
        "family": subject.family,
        "ms_median": round(1e3 * median_s, 2),
        "GMAC_per_s": round(subject.macs / median_s / 1e9, 2),
        "conv_roof_pct": round(100 * statistics.median(subject.conv_share), 1),
        "conv_roof_pct_min": round(100 * min(subject.conv_share), 1),
        "conv_roof_pct_max": round(100 * max(subject.conv_share), 1),
        "matmul_roof_pct": round(100 * statistics.median(subject.matmul_share), 1),
        "GMACs_per_call": round(subject.macs / 1e9, 4),
    }
    if subject.kind == "train" and subject.family in GOALS:
        row["goal_pct"] = round(100 * GOALS[subject.family])
    return row


def device_table(device: torch.device, families: tuple[str, ...], shape: ProxyShape, *, rounds: int,
                 warmup_s: float, forward: bool, profile_steps: int, progress: Progress | None) -> dict[str, Any]:
    """Roofs, training and forward shares, and op profiles on one device at the current thread count."""
    amp = device.type == "cuda"
    roofs = measure_roofs(device, half=amp)
    subjects = _subjects(families, shape, device, amp=amp, forward=forward)
    roof_seconds = _run_rounds(subjects, roofs, device, rounds=rounds, warmup_s=warmup_s, progress=progress)
    train = [_summary(s) for s in subjects if s.kind == "train"]
    slowest = min((r for r in train if r["family"] in families), key=lambda r: r["conv_roof_pct"])["family"]
    profiles = {}
    if device.type == "cpu" and profile_steps:
        profiles = {s.family: op_profile(s.step, steps=profile_steps) for s in subjects
                    if s.kind == "train" and s.family in families}
    return {
        "device": str(device),
        "amp": amp,
        "roofs": {
            "conv3d": {"label": roofs.conv_label, "ms_median": round(1e3 * statistics.median(roof_seconds["conv"]), 2),
                       "GMAC_per_s": round(roofs.conv_macs / statistics.median(roof_seconds["conv"]) / 1e9, 2)},
            "matmul": {"label": roofs.matmul_label,
                       "ms_median": round(1e3 * statistics.median(roof_seconds["matmul"]), 2),
                       "GMAC_per_s": round(roofs.matmul_macs / statistics.median(roof_seconds["matmul"]) / 1e9, 2)},
        },
        "train": train,
        "forward": [_summary(s) for s in subjects if s.kind == "forward"],
        "slowest_family": slowest,
        "profiles": profiles,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)"
    header = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("-" if r.get(h) is None else str(r.get(h)) for h in header) + " |" for r in rows]
    return "\n".join(lines)


def _markdown(result: dict[str, Any]) -> str:
    shape: ProxyShape = result["shape"]
    parts = [
        "# Proxy training throughput (`nas bench throughput`)",
        "",
        f"Proxy: {shape.label}, forward + cross-entropy + backward + SGD (Nesterov) per step; training GMAC/s = "
        "3 x forward MACs / median step time. Forward: batch 1 x 3 x "
        f"{'x'.join(map(str, shape.deploy_shape))}, full width, eval mode. Shares are taken within each round "
        f"against the roofs timed in the same round, median over {result['rounds']} rounds (min-max beside it).",
        "",
        f"Machine: {result['machine']}; torch {torch.__version__}; load average at start {result['load_start']}, "
        f"at end {result['load_end']}. Seeds: 0 (weights, inputs).",
    ]
    for table in result["tables"]:
        roofs = table["roofs"]
        parts += [
            "",
            f"## {table['device']}, {table['threads']} thread(s){' (float16 autocast)' if table['amp'] else ''}",
            "",
            f"Roofs: {roofs['conv3d']['label']}: {roofs['conv3d']['GMAC_per_s']} GMAC/s "
            f"({roofs['conv3d']['ms_median']} ms); {roofs['matmul']['label']}: {roofs['matmul']['GMAC_per_s']} GMAC/s "
            f"({roofs['matmul']['ms_median']} ms).",
            "",
            "### Training step at the proxy shape",
            "",
            _table(table["train"]),
            "",
            "### Forward at the deployment shape",
            "",
            _table(table["forward"]),
        ]
        for family, prof in table["profiles"].items():
            mark = " (slowest family)" if family == table["slowest_family"] else ""
            parts += [
                "",
                f"### Op profile: {family}{mark}",
                "",
                f"torch.profiler self CPU time over {prof['steps']} training steps: {prof['self_ms_per_step']} ms per "
                f"step, {prof['op_calls_per_step']} op calls per step ({prof['copy_calls_per_step']} `aten::copy_`); "
                f"convolution ops {prof['conv_share_pct']}% of self time.",
                "",
                _table(prof["top"]),
            ]
    if result.get("shared_gpu"):
        parts += ["", "## Proxy trials sharing one GPU (`--gpus-per-trial 1/k`)", "", _table(result["shared_gpu"])]
    return "\n".join(parts) + "\n"


def _machine() -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = f"; GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} CPUs{gpu}"


def run_throughput_benchmark(out_dir: Path, quick: bool = False, threads: tuple[int, ...] = (1,),
                             families: tuple[str, ...] = FAMILIES) -> dict[str, Any]:
    """Run the CPU table at each thread count (and the CUDA table when a GPU exists); write the report.

    ``quick``: 3 rounds, r3d-18 and mtnet-32 only, no deployment forward, a one-step profile (a smoke test).
    Writes ``throughput.md`` and ``throughput.json``; returns the headline shares.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = ProxyShape()
    rounds, warmup_s, profile_steps = (3, 0.2, 1) if quick else (15, 1.0, 3)
    if quick:
        families = tuple(f for f in families if f in ("r3d-18", "mtnet-32")) or families[:1]
    load_start = _load()
    tables = []
    shared = []
    with Progress() as progress:
        for count in threads:
            with torch_threads(count):
                table = device_table(torch.device("cpu"), families, shape, rounds=rounds, warmup_s=warmup_s,
                                     forward=not quick, profile_steps=profile_steps, progress=progress)
            tables.append({**table, "threads": count})
        if torch.cuda.is_available():
            table = device_table(torch.device("cuda:0"), families, shape, rounds=rounds, warmup_s=warmup_s,
                                 forward=not quick, profile_steps=0, progress=progress)
            tables.append({**table, "threads": torch.get_num_threads()})
            shared = trials_per_gpu("r3d-18", shape, sharing=(1, 2) if quick else (1, 2, 4),
                                    seconds=3.0 if quick else 10.0)
    result = {"shape": shape, "rounds": rounds, "machine": _machine(), "load_start": load_start, "load_end": _load(),
              "tables": tables, "shared_gpu": shared}
    (out_dir / "throughput.md").write_text(_markdown(result))
    (out_dir / "throughput.json").write_text(json.dumps({**result, "shape": dataclasses.asdict(shape)}, indent=2))
    return {
        "proxy": shape.label,
        "load_start": load_start,
        "load_end": result["load_end"],
        "train_conv_roof_pct": {f"{t['device']} x{t['threads']}": {r["family"]: r["conv_roof_pct"] for r in t["train"]}
                                for t in tables},
        "conv_roof_GMAC_per_s": {f"{t['device']} x{t['threads']}": t["roofs"]["conv3d"]["GMAC_per_s"] for t in tables},
        "slowest_family": {f"{t['device']} x{t['threads']}": t["slowest_family"] for t in tables},
        "shared_gpu": shared,
    }
