"""``nas bench exports``: which architectures export to which format (the matrix in docs/export.md).

One representative spec per building block of the catalog (basic and bottleneck ResNets, r3d and
r(2+1)d convs, SRTG with LSTM / GRU, every gate mode, both fusions, a reduction; MTNet with one and two
streams, 1 and 8 substreams, GRU / LSTM / no SR cells), each exported in every format by
:func:`runners.export.export_model` (so each cell is a real export, loaded back in its runtime and
checked against eager PyTorch at batch 1 and 3). Proxies at width 1/4 on 8 x 32 x 32 clips: the width
changes channel counts only, never which operators run, and the export then takes seconds.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from runners.export import FORMATS, ExportError, export_model
from space import CATALOG, build_model
from space.spec import ArchSpec, MTNetSpec, ResNet3DSpec, SRTGSpec

SHAPE = (8, 32, 32)
WIDTH = 0.25


def representative_specs(quick: bool = False) -> dict[str, ArchSpec]:
    specs: dict[str, ArchSpec] = {
        "r3d-18": CATALOG["r3d-18"],
        "r2plus1d-18": CATALOG["r2plus1d-18"],
        "r3d-50 (bottleneck)": CATALOG["r3d-50"],
        "srtg-r3d-18-final (LSTM, cyclic)": CATALOG["srtg-r3d-18-final"],
        "srtg r2plus1d-50 res (GRU, warmup, residual, reduction 4)": ResNet3DSpec(
            conv="r2plus1d", depth=50, bottleneck_expansion=1,
            srtg=SRTGSpec(placement="res", recurrent="gru", gate="warmup", warmup=0.5, fusion="residual", reduction=4),
        ),  # fmt: skip
        "mtnet-32 (two streams, GRU)": CATALOG["mtnet-32"],
        "mtnet-64-g8 (8 substreams)": CATALOG["mtnet-64-g8"],
        "mtnet-32 r=1.0 (one stream, LSTM)": MTNetSpec(depth=32, ratio=1.0, recurrent="lstm"),
        "mtnet-32 (no SR cells)": MTNetSpec(depth=32, recurrent="none"),
    }
    if quick:
        return {k: specs[k] for k in ("r3d-18", "mtnet-32 (two streams, GRU)")}
    return specs


def export_cell(spec: ArchSpec, fmt: str) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_model(spec, num_classes=10, width_mult=WIDTH)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            report = export_model(model, fmt=fmt, out_dir=Path(tmp) / "out", shape=SHAPE)
        except ExportError as exc:
            return {"ok": False, "detail": str(exc), "seconds": round(time.perf_counter() - started, 1)}
    detail = f"max diff {report.max_abs_diff:.2g} (scale {report.output_scale:.2g})"
    return {"ok": True, "detail": detail, "seconds": round(time.perf_counter() - started, 1)}


def run_exports_benchmark(out_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Export every representative spec in every format; write ``exports.md``; returns the matrix."""
    from rich.progress import Progress

    specs = representative_specs(quick)
    matrix: dict[str, dict[str, Any]] = {}
    with Progress() as progress:
        task = progress.add_task("exports", total=len(specs) * len(FORMATS))
        for name, spec in specs.items():
            matrix[name] = {}
            for fmt in FORMATS:
                matrix[name][fmt] = export_cell(spec, fmt)
                progress.advance(task)
    header = "| architecture | " + " | ".join(FORMATS) + " |\n|---|" + "---|" * len(FORMATS)
    lines = [header]
    for name, cells in matrix.items():
        marks = [("yes: " if c["ok"] else "NO: ") + c["detail"] + f" ({c['seconds']} s)" for c in cells.values()]
        lines.append(f"| {name} | " + " | ".join(marks) + " |")
    md = (
        f"# Export matrix (`nas bench exports`)\n\nWidth {WIDTH}, clips N x 3 x {' x '.join(map(str, SHAPE))}, "
        f"exported at batch 2, checked at batch 1 and 3; seconds include the check. torch {torch.__version__}.\n\n"
        + "\n".join(lines) + "\n"
    )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "exports.md").write_text(md)
    return {name: {fmt: c["ok"] for fmt, c in cells.items()} for name, cells in matrix.items()}
