"""``nas catalog``: list the named architectures, or show one resolved spec.

torch and the run model load inside the command, not here, so ``nas --help`` stays quick (docs/architecture.md,
"Startup").
"""

from __future__ import annotations

import typer
import yaml
from rich.table import Table

from nas.cli.output import print_table
from space import CATALOG
from space.spec import ArchSpec, MTNetSpec, ResNet3DSpec

COLUMNS = ("name", "family", "depth", "conv", "placement", "recurrent", "expansion", "ratio", "substreams")
NUMERIC = ("depth", "expansion", "ratio", "substreams")


def catalog_rows() -> list[dict[str, object]]:
    """One row per catalog entry with :data:`COLUMNS`; "-" where a field does not apply to the family or depth.

    MTNet rows carry their short/long ``ratio`` and ``substreams`` (else ``mtnet-64-r0.5`` ... ``r1.0`` look
    identical); ResNet rows carry the bottleneck ``expansion`` only at depths that have bottleneck blocks.
    """
    rows = []
    for name, spec in CATALOG.items():
        resnet = isinstance(spec, ResNet3DSpec)
        mtnet = isinstance(spec, MTNetSpec)
        rows.append(
            {
                "name": name,
                "family": spec.family,
                "depth": spec.depth,
                "conv": spec.conv if resnet else "mtconv",
                "placement": spec.srtg.placement if resnet else "-",
                "recurrent": spec.recurrent_type,
                "expansion": spec.bottleneck_expansion if resnet and not spec.is_simple else "-",
                "ratio": str(spec.ratio) if mtnet else "-",
                "substreams": spec.substreams if mtnet else "-",
            }
        )
    return rows


def shown_yaml(spec: ArchSpec) -> str:
    """The resolved spec as YAML, without fields the architecture does not use (said in a comment instead)."""
    fields = spec.to_dict()
    note = ""
    if isinstance(spec, ResNet3DSpec) and spec.is_simple:
        fields.pop("bottleneck_expansion")
        note = f"\n# bottleneck_expansion: not used (depth {spec.depth} has Simple blocks, no bottlenecks)"
    return yaml.safe_dump(fields, sort_keys=False).rstrip() + note


def register(app: typer.Typer) -> None:
    @app.command("catalog")
    def catalog_command(
        arch: str = typer.Argument(None, help="A catalog name, a spec file or RUN_DIR:TRIAL_ID to show in full."),
    ) -> None:
        """List the catalog, or print one architecture's resolved spec (YAML) and its parameter count."""
        if arch is None:
            table = Table(title=f"videonas catalog ({len(CATALOG)} architectures)")
            for column in COLUMNS:
                table.add_column(column, justify="right" if column in NUMERIC else "left")
            for row in catalog_rows():
                table.add_row(*(str(row[c]) for c in COLUMNS))
            print_table(table)
            return
        import torch

        from nas.arch import resolve_arch
        from space import build_model

        spec = resolve_arch(arch)
        with torch.device("meta"):
            params = sum(p.numel() for p in build_model(spec, num_classes=400).parameters())
        typer.echo(f"# {arch}  key={spec.key()}")
        typer.echo(shown_yaml(spec))
        typer.echo(f"# parameters @ 400 classes: {params:,} ({params / 1e6:.2f}M)")
