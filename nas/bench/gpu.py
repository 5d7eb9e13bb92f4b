"""The GPU check: one prepared script that tells, in about eight minutes on one GPU, how proxy training uses it.

Run it wherever a CUDA GPU is lent (``make gpu-check``, or ``nas bench gpu`` in a full install); it writes
``docs/gpu.md``. Sections, each skipped with its reason when it cannot run (or when the time budget is spent):

1. **the CUDA tests**: the suite's tests whose names mention cuda (they skip on a CPU), run by pytest;
2. **proxy steps per family** in fp32 and under bf16 and fp16 autocast, each as a share of a large matmul and a
   large conv3d of the same precision timed in the same run (the roofs), training MACs = 3 x forward MACs;
3. **trials sharing the GPU**: aggregate proxy steps/s of 1, 2, 4 and 8 processes on GPU 0, the way
   ``--gpus-per-trial 1/k`` packs trials: is packing worth it, and where does it stop paying?

It needs only torch (and PyYAML, which ``space`` reads specs with); no Ray, no Optuna, no numpy on its path, so a
bare GPU machine runs it as ``PYTHONPATH=. python nas/bench/gpu.py``. For that reason it imports nothing from
the ``nas`` package, and it is where the timing primitives that ``nas bench throughput`` shares live. On a
machine without CUDA every section skips with one clear message and ``docs/gpu.md`` is left as it is.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if __package__ in (None, ""):  # run as a script: the repository root holds ``space`` and ``runners``
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from runners.costs import count_macs_meta  # noqa: E402  (torch-only, like everything imported here)
from runners.trainstep import OptimisationStep  # noqa: E402
from space import CATALOG, ArchSpec, build_model  # noqa: E402

__all__ = ["ProxyShape", "Roofs", "measure_roofs", "training_step", "timed", "warm_up", "proxy_macs",
           "trials_per_gpu", "markdown_table", "run_gpu_benchmark", "GPU_FAMILIES", "PRECISIONS"]

GPU_FAMILIES = ("r3d-18", "r2plus1d-18", "srtg-r3d-18-final", "srtg-r2plus1d-18-final", "mtnet-32")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
SHARING = (1, 2, 4, 8)
BUDGET_S = 8 * 60  # the whole check, on one lent GPU
# Every test file with a CUDA test (named *cuda*); a file whose imports are missing here (Ray, scipy) is reported.
CUDA_TEST_FILES = ("tests/space/test_softpool.py", "tests/runners/test_trainstep.py", "tests/runners/test_latency.py",
                   "tests/runners/test_layout.py", "tests/runners/test_proxy.py", "tests/runners/test_latency_ort.py",
                   "tests/runners/test_retrain.py")
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
# Timing primitives (shared with nas bench throughput)
# --------------------------------------------------------------------------------------------


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


def proxy_macs(spec: ArchSpec, shape: ProxyShape) -> int:
    """Forward MACs of the proxy model at the proxy batch (meta device, the cost model's counting)."""
    with torch.device("meta"):
        model = build_model(spec, num_classes=shape.num_classes, width_mult=shape.width)
    return count_macs_meta(model, torch.empty(shape.batch, 3, shape.frames, shape.size, shape.size, device="meta"))


def training_step(model: nn.Module, x: Tensor, y: Tensor, *, amp: bool = False,
                  dtype: torch.dtype | None = None) -> Callable[[], float]:
    """One proxy training step as :mod:`runners.proxy` runs it (:class:`runners.trainstep.OptimisationStep`: float16
    autocast and a gradient scaler when ``amp``, loss sync included); returns the loss.

    ``dtype=torch.bfloat16`` runs the same step under bfloat16 autocast, which needs no gradient scaler (the
    proxy loop itself has no bf16 option; this measures what one would gain).
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
    model.train()
    if dtype != torch.bfloat16:
        trainer = OptimisationStep(model, optimizer, amp=amp or dtype == torch.float16)
        return lambda: trainer(x, y, epoch=0, step=0).loss

    def bf16_step() -> float:
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return bf16_step


@dataclass
class Roofs:
    """The two reference ops and their MACs; call them inside the same rounds as the models."""

    conv: Callable[[], Any]
    matmul: Callable[[], Any]
    conv_macs: int
    matmul_macs: int
    conv_label: str
    matmul_label: str
    conv_channels_last: Callable[[], Any]  # the same conv on a channels-last input (the layout most proxies train in)


def measure_roofs(device: torch.device, *, half: bool = False, dtype: torch.dtype | None = None) -> Roofs:
    """A large conv3d forward and a large matmul in ``dtype`` (float16 when ``half``, as autocast runs them)."""
    generator = torch.Generator().manual_seed(0)
    dtype = dtype or (torch.float16 if half else torch.float32)
    n, c, t, h, w = ROOF_CONV_INPUT
    x = torch.randn(n, c, t, h, w, generator=generator).to(device, dtype)
    weight = torch.randn(64, c, 3, 3, 3, generator=generator).to(device, dtype) * 0.05
    a = torch.randn(ROOF_MATMUL_N, ROOF_MATMUL_N, generator=generator).to(device, dtype)
    b = torch.randn(ROOF_MATMUL_N, ROOF_MATMUL_N, generator=generator).to(device, dtype)

    x_channels_last = x.contiguous(memory_format=torch.channels_last_3d)

    def conv() -> None:
        with torch.no_grad():
            F.conv3d(x, weight, padding=1)

    def conv_channels_last() -> None:
        with torch.no_grad():
            F.conv3d(x_channels_last, weight, padding=1)

    def matmul() -> None:
        torch.mm(a, b)

    return Roofs(
        conv=conv,
        matmul=matmul,
        conv_macs=n * 64 * t * h * w * c * 27,
        matmul_macs=ROOF_MATMUL_N**3,
        conv_label=f"conv3d 64->64 3x3x3 on {'x'.join(map(str, ROOF_CONV_INPUT))} (forward)",
        matmul_label=f"matmul {ROOF_MATMUL_N}x{ROOF_MATMUL_N}x{ROOF_MATMUL_N}",
        conv_channels_last=conv_channels_last,
    )


def _batch(shape: ProxyShape, device: torch.device) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape.batch, 3, shape.frames, shape.size, shape.size, generator=generator).to(device)
    return x, torch.randint(0, shape.num_classes, (shape.batch,), generator=generator).to(device)


# --------------------------------------------------------------------------------------------
# Trials sharing one GPU
# --------------------------------------------------------------------------------------------


def _shared_gpu_worker(family: str, shape: ProxyShape, seconds: float, barrier: Any, results: Any) -> None:
    """One proxy trial on GPU 0 (float16 autocast, as GPU trials train): warm up, wait, train ``seconds``."""
    device = torch.device("cuda:0")
    x, y = _batch(shape, device)
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


def trials_per_gpu(family: str, shape: ProxyShape, *, sharing: tuple[int, ...] = SHARING,
                   seconds: float = 10.0) -> list[dict[str, Any]]:
    """Aggregate training steps/s when ``k`` trials share GPU 0 (``--gpus-per-trial 1/k``), for each k."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # CUDA cannot be re-initialised in a forked child
    rows: list[dict[str, Any]] = []
    single_rate = None
    for k in sharing:
        barrier, results = context.Barrier(k), context.Queue()
        workers = [context.Process(target=_shared_gpu_worker, args=(family, shape, seconds, barrier, results))
                   for _ in range(k)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=300) for _ in workers]
        for worker in workers:
            worker.join()
        rate = sum(steps / wall for steps, wall in outcomes)
        single_rate = single_rate or rate
        rows.append({"family": family, "trials_sharing_gpu": k, "gpus_per_trial": round(1 / k, 3),
                     "steps_per_s_total": round(rate, 2), "steps_per_s_per_trial": round(rate / k, 2),
                     "speedup_vs_one_trial": round(rate / single_rate, 2)})
    return rows


# --------------------------------------------------------------------------------------------
# The check's sections
# --------------------------------------------------------------------------------------------


def cuda_tests(repo: Path, timeout_s: float) -> dict[str, Any]:
    """The suite's CUDA tests (``-k cuda``) by pytest in a child process; skipped where pytest is missing."""
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"skipped": "pytest is not installed here (pip install pytest numpy to run the CUDA tests)"}
    files = [f for f in CUDA_TEST_FILES if (repo / f).exists()]
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-k", "cuda", "-p", "no:cacheprovider",
               "--continue-on-collection-errors", *files]
    try:
        done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "PYTHONPATH": str(repo)})
    except subprocess.TimeoutExpired:
        return {"skipped": f"the CUDA tests did not finish within {timeout_s:.0f} s"}
    lines = (done.stdout + done.stderr).strip().splitlines()
    return {"exit_code": done.returncode, "summary": lines[-1] if lines else "", "tail": lines[-30:]}


def precision_table(device: torch.device, shape: ProxyShape, families: tuple[str, ...], *, steps: int,
                    warmup_s: float, precisions: tuple[str, ...] = tuple(PRECISIONS)) -> list[dict[str, Any]]:
    """Per family and precision: median proxy step and its share of that precision's roofs, timed alongside."""
    x, y = _batch(shape, device)
    rows = []
    for precision in precisions:
        dtype = PRECISIONS[precision]
        roofs = measure_roofs(device, dtype=dtype or torch.float32)
        for fn in (roofs.conv, roofs.matmul):
            warm_up(fn, device, warmup_s)
        conv_s = statistics.median(timed(roofs.conv, device) for _ in range(steps))
        matmul_s = statistics.median(timed(roofs.matmul, device) for _ in range(steps))
        for family in families:
            spec = CATALOG[family]
            torch.manual_seed(0)
            model = build_model(spec, num_classes=shape.num_classes, width_mult=shape.width).to(device)
            step = training_step(model, x, y, dtype=dtype)
            warm_up(step, device, warmup_s)
            step_s = statistics.median(timed(step, device) for _ in range(steps))
            rate = 3 * proxy_macs(spec, shape) / step_s
            rows.append({"family": family, "precision": precision, "ms_median": round(1e3 * step_s, 2),
                         "GMAC_per_s": round(rate / 1e9, 1),
                         "conv_roof_pct": round(100 * rate * conv_s / roofs.conv_macs, 1),
                         "matmul_roof_pct": round(100 * rate * matmul_s / roofs.matmul_macs, 1),
                         "conv_roof_GMAC_per_s": round(roofs.conv_macs / conv_s / 1e9, 1),
                         "matmul_roof_GMAC_per_s": round(roofs.matmul_macs / matmul_s / 1e9, 1)})
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)"
    header = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(r.get(h, "-")) for h in header) + " |" for r in rows])


def _markdown(result: dict[str, Any]) -> str:
    parts = ["# GPU check (`make gpu-check`, nas/bench/gpu.py)", "", f"Machine: {result['machine']}; "
             f"torch {torch.__version__}; proxy {result['proxy']}; wall {result['wall_s']} s.", ""]
    for title, section in result["sections"].items():
        parts += [f"## {title}", ""]
        if "skipped" in section:
            parts += [f"Skipped: {section['skipped']}", ""]
        elif "rows" in section:
            parts += [markdown_table(section["rows"]), ""]
        else:
            parts += [f"pytest exit code {section['exit_code']}: {section['summary']}", "", "```",
                      *section["tail"], "```", ""]
    return "\n".join(parts)


def _no_cuda_message() -> str | None:
    if torch.cuda.is_available():
        return None
    build = torch.version.cuda or "none (a CPU-only build)"
    return f"no CUDA device (torch {torch.__version__}, CUDA build {build}): every section skipped"


def run_gpu_benchmark(out_dir: Path, quick: bool = False, *, out_file: Path | None = None) -> dict[str, Any]:
    """Run the GPU check and write ``gpu.md`` into ``out_dir`` (or ``out_file``); returns the figures.

    Without CUDA nothing is measured: the returned dict holds ``skipped`` (the reason), and only a report in
    ``out_dir`` says so (an explicit ``out_file``, such as docs/gpu.md, is left as it is).
    ``quick``: two families, three timed steps each, sharing 1 and 2 (a smoke test of the GPU path).
    """
    target = Path(out_file) if out_file else Path(out_dir) / "gpu.md"
    reason = _no_cuda_message()
    if reason is not None:
        if out_file is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"# GPU check (`make gpu-check`, nas/bench/gpu.py)\n\nSkipped: {reason}.\n")
        return {"skipped": reason}
    begin, device, shape = time.perf_counter(), torch.device("cuda:0"), ProxyShape()
    families = GPU_FAMILIES[::4] if quick else GPU_FAMILIES
    left = lambda: BUDGET_S - (time.perf_counter() - begin)  # noqa: E731
    sections: dict[str, dict[str, Any]] = {}
    sections["CUDA tests"] = cuda_tests(Path(__file__).resolve().parents[2], timeout_s=min(150.0, left() / 3))
    sections["Proxy step per precision (share of the same-precision roofs)"] = {"rows": precision_table(
        device, shape, families, steps=3 if quick else 20, warmup_s=0.5 if quick else 2.0)}
    sharing, seconds = (SHARING[:2], 3.0) if quick else (SHARING, 8.0)
    shared: list[dict[str, Any]] = []
    for family in ("mtnet-32", "r3d-18"):  # the cheapest and the densest family
        if left() < len(sharing) * (seconds + 15.0):  # spawn, imports and warm-up: about 15 s per k
            break
        shared += trials_per_gpu(family, shape, sharing=sharing, seconds=seconds)
    sections["Trials sharing GPU 0 (fp16 autocast)"] = (
        {"rows": shared} if shared else {"skipped": f"{left():.0f} s of the {BUDGET_S} s budget left"})
    result = {"machine": torch.cuda.get_device_name(0), "proxy": shape.label, "sections": sections,
              "wall_s": round(time.perf_counter() - begin, 1)}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_markdown(result))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/gpu.md"), help="the Markdown report (on a GPU)")
    parser.add_argument("--quick", action="store_true", help="a smoke test of the GPU path")
    args = parser.parse_args(argv)
    result = run_gpu_benchmark(args.out.parent, quick=args.quick, out_file=args.out)
    print(f"GPU check skipped: {result['skipped']}." if "skipped" in result
          else f"GPU check done in {result['wall_s']} s: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
