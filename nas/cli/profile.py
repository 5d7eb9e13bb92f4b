"""``nas profile ARCH...``: parameters, GMACs and latency of architectures, side by side (``docs/costs.md``).

A thin layer over :func:`profile_rows`. GMACs come from the fast meta-device count at ``--shape``
(default: the latency profile's clip), latency from :func:`runners.latency.measure_latency` (disk-cached).
Both import torch and load inside :func:`profile_rows`, so ``nas --help`` stays quick (docs/architecture.md,
"Startup").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import Progress
from rich.table import Table

from nas.cli.output import LineProgress, print_table, progress_bar
from nas.cli.output import console as output_console

from runners.latencyprofile import PROFILES, LatencyProfile, get_profile
from runners.shape import Shape, parse_shape, shape_label
from space.errors import UserInputError

JSON_KEYS = ("arch", "key", "params", "recurrent_params", "gmacs", "shape", "latency")
NOISY_CV = 0.15  # forward-latency coefficient of variation above which the machine was too busy to trust a median


def profile_rows(
    archs: list[str],
    *,
    shape: Shape | None = None,
    num_classes: int = 400,
    profile: LatencyProfile | str = "cpu",
    latency: bool = True,
    cache_dir: Path | str | None = None,
    progress: Progress | LineProgress | None = None,
) -> list[dict[str, Any]]:
    """One dict per architecture with exactly :data:`JSON_KEYS`; ``latency`` is None when not measured.

    ``shape`` (T, H, W) is where GMACs are counted; it defaults to the latency profile's clip.
    """
    from nas.arch import resolve_arch
    from runners.costs import model_costs
    from runners.latency import LatencyCache, measure_latency

    profile = get_profile(profile) if isinstance(profile, str) else profile
    if num_classes < 1:
        raise UserInputError(f"--num-classes {num_classes} is not allowed; allowed: an integer >= 1")
    shape = shape or profile.shape
    specs = [(arch, resolve_arch(arch)) for arch in archs]  # resolve all first: a typo fails before any work
    cache = LatencyCache(cache_dir)
    task = progress.add_task("profiling", total=len(specs)) if progress else None
    rows = []
    for arch, spec in specs:
        if progress is not None:
            what = "counting GMACs" + (f", measuring latency ({profile.name})" if latency else "")
            progress.update(task, description=f"profiling {arch}: {what}")
        costs = model_costs(spec, shape=shape, num_classes=num_classes)
        result = measure_latency(spec, profile, num_classes=num_classes, cache=cache) if latency else None
        rows.append(
            {
                "arch": arch,
                "key": costs.key,
                "params": costs.params,
                "recurrent_params": costs.recurrent_params,
                "gmacs": costs.gmacs,
                "shape": shape_label(shape),
                "latency": result.summary() if result else None,
                "_cached": bool(result and result.cached),
            }
        )
        if progress is not None:
            progress.advance(task)
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def rows_table(rows: list[dict[str, Any]], profile: LatencyProfile, latency: bool = True) -> Table:
    """Params in millions, GMACs labelled with their input, latency columns only when measured."""
    shape = rows[0]["shape"] if rows else ""
    title = f"GMACs @ {shape}"
    if latency:
        title += f"; latency profile {profile.name!r} @ {profile.input_label} ({profile.note})"
    table = Table(title=title)
    table.add_column("arch")
    table.add_column("key")
    table.add_column("params (M)", justify="right")
    table.add_column("recurrent (M)", justify="right")
    table.add_column(f"GMACs @ {shape}", justify="right")
    latency_labels = ("fwd ms median", "fwd ms p90", "fwd+bwd ms median", "fwd+bwd ms p90", "fwd CV")
    if latency and noisy_rows(rows):
        table.caption = (f"NOISY: CV above {NOISY_CV:.0%}; the machine was busy while measuring, so these medians "
                         "can be far off: re-run on a quiet machine (the cache keeps quiet measurements)")
    for label in latency_labels if latency else ():
        table.add_column(label, justify="right")
    for row in rows:
        cells = [
            row["arch"],
            row["key"],
            f"{row['params'] / 1e6:.2f}",
            f"{row['recurrent_params'] / 1e6:.2f}",
            f"{row['gmacs']:.2f}",
        ]
        if latency:
            lat = row["latency"]
            cached = " (cached)" if row.get("_cached") else ""
            cells += [
                _ms(lat["fwd_ms_median"]) + cached,
                _ms(lat["fwd_ms_p90"]),
                _ms(lat["train_ms_median"]),
                _ms(lat["train_ms_p90"]),
                f"{lat['cv']:.1%}" + (" NOISY" if lat["cv"] > NOISY_CV else ""),
            ]
        table.add_row(*cells)
    return table


def noisy_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose latency was measured with a coefficient of variation above :data:`NOISY_CV`."""
    return [r for r in rows if r["latency"] and r["latency"].get("cv") is not None and r["latency"]["cv"] > NOISY_CV]


def register(app: typer.Typer) -> None:
    @app.command("profile")
    def profile_command(
        archs: list[str] = typer.Argument(..., help="Catalog names, spec files or RUN_DIR:TRIAL_ID."),
        shape: Optional[str] = typer.Option(
            None, "--shape", help="T x H x W for the GMACs, e.g. 16x224x224 (default: the latency profile's clip)."
        ),
        num_classes: int = typer.Option(400, "--num-classes", help="Classifier outputs (400: the papers' tables)."),
        profile: str = typer.Option("cpu", "--profile", help=f"Latency profile: {', '.join(PROFILES)}."),
        no_latency: bool = typer.Option(False, "--no-latency", help="Only parameters and GMACs (fast)."),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
        cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Latency cache folder."),
    ) -> None:
        """Parameters, recurrent parameters, GMACs and latency (median / p90, fwd and fwd+bwd)."""
        latency_profile = get_profile(profile)
        parsed_shape = parse_shape(shape) if shape else None
        if not no_latency:  # a profile this machine cannot run is bad input: one line before any progress line
            from runners.latency import hardware_fingerprint

            hardware_fingerprint(latency_profile)
        with progress_bar() as progress:  # a bar on a terminal, plain lines on stderr when piped
            rows = profile_rows(
                archs,
                shape=parsed_shape,
                num_classes=num_classes,
                profile=latency_profile,
                latency=not no_latency,
                cache_dir=cache_dir,
                progress=progress,
            )
        for row in noisy_rows(rows):
            print(f"warning: {row['arch']}: latency CV {row['latency']['cv']:.0%} > {NOISY_CV:.0%}: noisy "
                  "(the machine was busy); re-run on a quiet machine", file=sys.stderr)
        if as_json:
            typer.echo(json.dumps([{k: row[k] for k in JSON_KEYS} for row in rows], indent=2))
            return
        console = output_console()
        print_table(rows_table(rows, latency_profile, latency=not no_latency), out=console)
        if not no_latency:
            from runners.latency import hardware_fingerprint

            console.print(f"hardware: {hardware_fingerprint(latency_profile).label()}")
