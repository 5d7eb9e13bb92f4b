"""``nas catalog``: list the named architectures, or show one resolved spec."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from nas.arch import resolve_arch
from space import CATALOG, build_model
from space.spec import ResNet3DSpec


def catalog_rows() -> list[dict[str, object]]:
    """One row per catalog entry: name, family, depth, conv, placement, recurrent."""
    rows = []
    for name, spec in CATALOG.items():
        is_resnet = isinstance(spec, ResNet3DSpec)
        rows.append(
            {
                "name": name,
                "family": spec.family,
                "depth": spec.depth,
                "conv": spec.conv if is_resnet else "mtconv",
                "placement": spec.srtg.placement if is_resnet else "-",
                "recurrent": spec.recurrent_type,
            }
        )
    return rows


def register(app: typer.Typer) -> None:
    @app.command("catalog")
    def catalog_command(
        arch: str = typer.Argument(None, help="A catalog name, a spec file or RUN_DIR:TRIAL_ID to show in full."),
    ) -> None:
        """List the catalog, or print one architecture's resolved spec (YAML) and its parameter count."""
        console = Console()
        if arch is None:
            table = Table(title=f"videonas catalog ({len(CATALOG)} architectures)")
            for column in ("name", "family", "depth", "conv", "placement", "recurrent"):
                table.add_column(column, justify="right" if column == "depth" else "left", no_wrap=column == "name")
            for row in catalog_rows():
                table.add_row(*(str(v) for v in row.values()))
            console.print(table)
            return
        spec = resolve_arch(arch)
        import torch

        with torch.device("meta"):
            params = sum(p.numel() for p in build_model(spec, num_classes=400).parameters())
        typer.echo(f"# {arch}  key={spec.key()}")
        typer.echo(spec.to_yaml().rstrip())
        typer.echo(f"# parameters @ 400 classes: {params:,} ({params / 1e6:.2f}M)")
