"""``nas bench throughput``: how close proxy training runs to the machine's speed, per catalog family.

A search's wall time is its trials' training time, so this benchmark asks, per family of the catalog
(:data:`FAMILIES`), how many multiply-accumulates per second a proxy training step reaches compared with
what the same machine reaches on a large dense op at the same thread count:

* **training GMAC/s** = 3 x forward MACs of the proxy model at the proxy batch / median step time. A step is
  what :mod:`runners.proxy` does per batch: forward, cross-entropy (+ SRTG auxiliary loss), backward,
  SGD + Nesterov step, in the memory layout the proxy trains in (:mod:`runners.layout`; families trained
  channels-last also get a "(contiguous)" row). "3 x forward" is the usual forward + two backward products
  convention;
* **roofs**, measured in the same run: a 64->64 3x3x3 ``conv3d`` forward on 8 x 64 x 8 x 28 x 28, contiguous
  and channels-last, and a 2048 x 2048 x 2048 ``matmul``. The share of the conv3d roof in the layout the
  family's convolutions read is the headline;
* **forward latency** at the deployment shape (batch 1, full width, eval mode), as the latency objective
  measures it, with its GMAC/s share of the same roof;
* a **per-op profile** (``torch.profiler``, self CPU time) of every family's training step; the slowest
  family's is the headline and explains what keeps it from the roof.

Load on a shared machine moves every timing, so the benchmark runs in *rounds*: each round times the
roofs and one step of every family back to back, a share is computed within its round, and the median
over rounds is reported with its min-max. The quiet measurement protocol (docs/throughput.md): the load
average is recorded at start and end and the report warns when other work shared the machine
(:func:`busy_warning`); a before / after comparison of two implementations runs as an interleaved A/B in one
process (:func:`interleaved_ab`), never as two runs at two moments.

On CUDA the same table runs on GPU 0 under float16 autocast (``amp``, as GPU trials train), then k = 1, 2, 4
trials share the GPU (:func:`nas.bench.gpu.trials_per_gpu`; the fuller GPU check is nas/bench/gpu.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from rich.progress import Progress
from torch import Tensor, nn

from nas.bench.costs import bootstrap_median_ci
from nas.bench.gpu import (ProxyShape, Roofs, markdown_table, measure_roofs, proxy_macs, timed, training_step,
                           trials_per_gpu, warm_up)
from runners.costs import count_macs_meta
from runners.latency import torch_threads
from runners.layout import to_training_layout, training_memory_format
from space import CATALOG, ArchSpec, build_model

__all__ = ["FAMILIES", "ProxyShape", "Roofs", "Load", "busy_warning", "interleaved_ab", "run_throughput_benchmark",
           "proxy_macs", "training_step", "measure_roofs", "op_profile", "conv_layout"]

# One representative per family of the catalog: the smallest depth, SRTG at the placement the papers report.
FAMILIES = ("r3d-18", "r2plus1d-18", "srtg-r3d-18-final", "srtg-r2plus1d-18-final", "mtnet-32")
GOALS = {"r3d-18": 0.70, "r2plus1d-18": 0.45, "mtnet-32": 0.35}  # share of the conv3d roof, 1 thread (docs/throughput.md)
BUSY_LOAD_PER_CPU = 0.5  # other work beyond this, per CPU, and the figures are not quiet-machine figures


# --------------------------------------------------------------------------------------------
# The quiet measurement protocol: load before and after, interleaved A/B
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """The machine's 1 / 5 / 15-minute load averages at one moment (``os.getloadavg``) and its CPU count."""

    one: float
    five: float
    fifteen: float
    cpus: int

    @classmethod
    def now(cls) -> Load:
        return cls(*os.getloadavg(), cpus=os.cpu_count() or 1)

    def __str__(self) -> str:
        return f"{self.one:.2f} / {self.five:.2f} / {self.fifteen:.2f} (1 / 5 / 15 min, {self.cpus} CPUs)"


def busy_warning(start: Load, end: Load, *, own_threads: int) -> str | None:
    """Why the figures may not be quiet-machine figures, or None when the machine was quiet.

    The 1-minute load beside the benchmark: at the start, all of it (the benchmark has not run yet); at the
    end, all but the benchmark's own threads. Above 0.5 per CPU, something else shared the cores: timings of
    many small ops suffer most (docs/throughput.md), so shares and A/B ratios then read pessimistic.
    """
    others = max(start.one, end.one - own_threads)
    if others <= BUSY_LOAD_PER_CPU * start.cpus:
        return None
    return (f"machine busy: about {others:.1f} runnable tasks beside this benchmark ({start.cpus} CPUs, load "
            f"{start} at start, {end} at end); rerun on a quiet machine for figures to quote")


def interleaved_ab(a: Callable[[], Any], b: Callable[[], Any], *, pairs: int, device: torch.device,
                   warmup_s: float = 1.0, own_threads: int = 1) -> dict[str, Any]:
    """Two implementations of one step timed in interleaved pairs in one process: how much faster is ``b``?

    Pairs alternate AB / BA, so drift in the machine's load hits both sides alike; each pair gives one ratio
    a / b (> 1: ``b`` is faster). Reported: both medians, the median ratio with a percentile-bootstrap 95%
    interval, and the load before and after with :func:`busy_warning`.
    """
    start = Load.now()
    for step in (a, b):
        warm_up(step, device, warmup_s)
    times: dict[str, list[float]] = {"a": [], "b": []}
    for index in range(pairs):
        for side in ("a", "b") if index % 2 == 0 else ("b", "a"):
            times[side].append(timed(a if side == "a" else b, device))
    end = Load.now()
    ratios = [ta / tb for ta, tb in zip(times["a"], times["b"])]
    low, high = bootstrap_median_ci(ratios)
    return {
        "pairs": pairs,
        "a_ms_median": round(1e3 * statistics.median(times["a"]), 2),
        "b_ms_median": round(1e3 * statistics.median(times["b"]), 2),
        "speedup_median": round(statistics.median(ratios), 3),
        "speedup_ci95": [round(low, 3), round(high, 3)],
        "load_start": str(start),
        "load_end": str(end),
        "warning": busy_warning(start, end, own_threads=own_threads),
    }


# --------------------------------------------------------------------------------------------
# Work and timing
# --------------------------------------------------------------------------------------------


def deploy_macs(spec: ArchSpec, shape: ProxyShape) -> int:
    with torch.device("meta"):
        model = build_model(spec, num_classes=shape.num_classes)
    return count_macs_meta(model, torch.empty(1, 3, *shape.deploy_shape, device="meta"))


def forward_step(model: nn.Module, x: Tensor, *, amp: bool = False) -> Callable[[], None]:
    model.eval()

    def step() -> None:
        with torch.no_grad(), torch.autocast(device_type=x.device.type, dtype=torch.float16, enabled=amp):
            model(x)

    return step


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
    layout: str  # what its convolutions read: "contiguous" or "channels-last" (its roof is timed in that layout)
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
        subjects.append(_Subject(family, "train", training_step(model, x, y, amp=amp), macs, conv_layout(model, x)))
        if training_memory_format(spec, device) != torch.contiguous_format:  # what the layout choice gains
            torch.manual_seed(0)
            plain = build_model(spec, num_classes=shape.num_classes, width_mult=shape.width).to(device)
            subjects.append(_Subject(f"{family} (contiguous)", "train", training_step(plain, x, y, amp=amp), macs,
                                     conv_layout(plain, x)))
        if forward:
            deployed = build_model(spec, num_classes=shape.num_classes).to(device)
            subjects.append(_Subject(family, "forward", forward_step(deployed, clip, amp=amp), deploy_macs(spec, shape),
                                     conv_layout(deployed, clip)))
    return subjects


def conv_layout(model: nn.Module, x: Tensor) -> str:
    """The memory layout the model's second 3D convolution reads ("contiguous" or "channels-last").

    Not the weights' format: MTNet keeps contiguous weights and turns its activations channels-last itself
    (space/mtnet.py). The second conv, because the first reads the input clip as given.
    """
    seen: list[Tensor] = []
    hooks = [m.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
             for m in model.modules() if isinstance(m, nn.Conv3d)]
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(x[:1])  # eval: batch statistics of one clip may be undefined
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    probe = seen[min(1, len(seen) - 1)]
    channels_last = not probe.is_contiguous() and probe.is_contiguous(memory_format=torch.channels_last_3d)
    return "channels-last" if channels_last else "contiguous"


def _run_rounds(subjects: list[_Subject], roofs: Roofs, device: torch.device, *, rounds: int, warmup_s: float,
                progress: Progress | None) -> dict[str, list[float]]:
    convs = {"contiguous": roofs.conv, "channels-last": roofs.conv_channels_last}
    roof_seconds: dict[str, list[float]] = {"contiguous": [], "channels-last": [], "matmul": []}
    for fn in (*convs.values(), roofs.matmul, *(s.step for s in subjects)):
        warm_up(fn, device, warmup_s)
    task = progress.add_task("throughput rounds", total=rounds) if progress else None
    for index in range(rounds):
        order = subjects if index % 2 == 0 else list(reversed(subjects))  # drift hits both ends alike
        conv_s = {layout: timed(fn, device) for layout, fn in convs.items()}
        matmul_s = timed(roofs.matmul, device)
        for subject in order:
            subject.seconds.append(timed(subject.step, device))
        for layout, fn in convs.items():  # roof: the faster of its two timings in the round
            conv_s[layout] = min(conv_s[layout], timed(fn, device))
            roof_seconds[layout].append(conv_s[layout])
        roof_seconds["matmul"].append(matmul_s)
        for subject in subjects:
            rate = subject.macs / subject.seconds[-1]
            subject.conv_share.append(rate * conv_s[subject.layout] / roofs.conv_macs)
            subject.matmul_share.append(rate * matmul_s / roofs.matmul_macs)
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
# The benchmark
# --------------------------------------------------------------------------------------------


def _summary(subject: _Subject) -> dict[str, Any]:
    median_s = statistics.median(subject.seconds)
    row = {
        "family": subject.family,
        "layout": subject.layout,
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


def _roof(label: str, macs: int, seconds: list[float]) -> dict[str, Any]:
    median_s = statistics.median(seconds)
    return {"label": label, "ms_median": round(1e3 * median_s, 2), "GMAC_per_s": round(macs / median_s / 1e9, 2)}


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
            "conv3d": _roof(roofs.conv_label, roofs.conv_macs, roof_seconds["contiguous"]),
            "conv3d channels-last": _roof(roofs.conv_label + ", channels-last", roofs.conv_macs,
                                          roof_seconds["channels-last"]),
            "matmul": _roof(roofs.matmul_label, roofs.matmul_macs, roof_seconds["matmul"]),
        },
        "train": train,
        "forward": [_summary(s) for s in subjects if s.kind == "forward"],
        "slowest_family": slowest,
        "profiles": profiles,
    }


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
    if result.get("warning"):
        parts += ["", f"**Warning: {result['warning']}.**"]
    for table in result["tables"]:
        roofs = table["roofs"]
        parts += [
            "",
            f"## {table['device']}, {table['threads']} thread(s){' (float16 autocast)' if table['amp'] else ''}",
            "",
            "Roofs: " + "; ".join(f"{roof['label']}: {roof['GMAC_per_s']} GMAC/s ({roof['ms_median']} ms)"
                                  for roof in roofs.values()) + ". Each row's conv share is against the conv3d "
            "roof in the layout its convolutions read (column `layout`).",
            "",
            "### Training step at the proxy shape",
            "",
            markdown_table(table["train"]),
            "",
            "### Forward at the deployment shape",
            "",
            markdown_table(table["forward"]),
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
                markdown_table(prof["top"]),
            ]
    if result.get("shared_gpu"):
        parts += ["", "## Proxy trials sharing one GPU (`--gpus-per-trial 1/k`)", "",
                  markdown_table(result["shared_gpu"])]
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
    load_start = Load.now()
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
    load_end = Load.now()
    warning = busy_warning(load_start, load_end, own_threads=max(threads))
    result = {"shape": shape, "rounds": rounds, "machine": _machine(), "load_start": str(load_start),
              "load_end": str(load_end), "warning": warning, "tables": tables, "shared_gpu": shared}
    (out_dir / "throughput.md").write_text(_markdown(result))
    (out_dir / "throughput.json").write_text(json.dumps({**result, "shape": dataclasses.asdict(shape)}, indent=2))
    return {
        "proxy": shape.label,
        "load_start": str(load_start),
        "load_end": str(load_end),
        "warning": warning,
        "train_conv_roof_pct": {f"{t['device']} x{t['threads']}": {r["family"]: r["conv_roof_pct"] for r in t["train"]}
                                for t in tables},
        "conv_roof_GMAC_per_s": {f"{t['device']} x{t['threads']}": t["roofs"]["conv3d"]["GMAC_per_s"] for t in tables},
        "slowest_family": {f"{t['device']} x{t['threads']}": t["slowest_family"] for t in tables},
        "shared_gpu": shared,
    }
