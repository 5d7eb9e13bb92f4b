"""Benchmarks: ``nas bench NAME`` (README, Benchmarks). One module per benchmark, one registry below.

Every benchmark is a documented function ``run_NAME_benchmark(out_dir: Path, *, quick: bool = False) -> dict``
that writes its Markdown (and CSV/JSON) report into ``out_dir`` and returns its headline figures.
It states its seeds, spreads and the machine in that report.

How to add a benchmark ``NAME``:

1. write ``nas/bench/NAME.py`` with ``run_NAME_benchmark(out_dir, *, quick=False) -> dict``; keep
   heavy or optional imports (Ray, ONNX, ...) inside the function, so running it loads only what it needs;
2. add one line ``"NAME": "NAME.run_NAME_benchmark"`` to :data:`BENCHMARKS` (module and function, imported when
   the benchmark is first looked up, so ``nas --help`` loads no benchmark: docs/architecture.md, "Startup");
3. put its figures in ``docs/`` and, for the headline, in the README.

A benchmark that runs searches or retraining lives here too (``nas`` may import ``runners``, never the
other way round).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

Benchmark = Callable[..., dict[str, Any]]


class _Registry(Mapping[str, Benchmark]):
    """Benchmark name -> its function, given as ``"module.function"`` under ``nas.bench``; the module is imported
    on the first lookup of its name, so listing the names imports nothing."""

    def __init__(self, entries: dict[str, str]) -> None:
        self._entries = entries

    def __getitem__(self, name: str) -> Benchmark:
        module, function = self._entries[name].split(".")
        return getattr(importlib.import_module(f"nas.bench.{module}"), function)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


BENCHMARKS: Mapping[str, Benchmark] = _Registry({
    "costs": "costs.run_costs_benchmark",
    "curves": "curves.run_curves_benchmark",
    "data": "data.run_data_benchmark",
    "export-syne": "synetune.run_export_syne_benchmark",
    "exports": "exports.run_exports_benchmark",
    "fidelity": "fidelity.run_fidelity_benchmark",
    "gpu": "gpu.run_gpu_benchmark",
    "mtnet": "mtnet.run_mtnet_benchmark",
    "noise": "noise.run_noise_benchmark",
    "overhead": "overhead.run_overhead_benchmark",
    "proxy": "proxy.run_proxy_benchmark",
    "record": "record.run_record_benchmark",
    "retrain": "retrain.run_retrain_benchmark",
    "search": "search.run_search_benchmark",
    "srtg": "srtg.run_srtg_benchmark",
    "srtg-gate": "srtg_gate.run_srtg_gate_benchmark",
    "throughput": "throughput.run_throughput_benchmark",
    "warm-start": "warmstart.run_warm_start_benchmark",
})


# The options beyond ``--quick`` a benchmark takes (``nas bench record SPACE --seeds 2 --workers 1``).
EXTRA_OPTIONS: dict[str, tuple[str, ...]] = {
    "record": ("space", "seeds", "workers"),
    "curves": ("space", "seeds", "workers"),
    "search": ("table", "seeds", "workers", "strategies"),
    "fidelity": ("run", "table"),
    "noise": ("table",),
    "export-syne": ("table",),
    "warm-start": ("table", "seeds"),
}


def run_benchmark(name: str, out_dir: Path, **options: Any) -> dict[str, Any]:
    """Run benchmark ``name`` writing into ``out_dir``; returns its figures."""
    from space.errors import UserInputError

    if name not in BENCHMARKS:
        raise UserInputError(f"unknown benchmark {name!r}; allowed: {', '.join(BENCHMARKS)}")
    given = {k for k, v in options.items() if v is not None and k != "quick"}
    unknown = sorted(given - set(EXTRA_OPTIONS.get(name, ())))
    if unknown:
        flags = ", ".join("SPACE" if k == "space" else f"--{k.replace('_', '-')}" for k in unknown)
        raise UserInputError(f"nas bench {name} takes no {flags}")
    options = {k: v for k, v in options.items() if v is not None}
    if name not in EXTRA_OPTIONS:  # those validate their input (a space, a table) first and create it themselves
        out_dir.mkdir(parents=True, exist_ok=True)
    return BENCHMARKS[name](out_dir, **options)
