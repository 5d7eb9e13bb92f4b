"""``nas space show|list``: print a search space as a tree with its size and valid share (thin over space.searchspace).

The valid share comes from building specs on the meta device (shapes only, no values: docs/search-space.md,
"Size, enumeration and valid share"): every spec of a small space, else a seeded sample whose figure is printed
with its 95% interval, so an estimate never reads as exact.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import typer
from rich.console import Console

from nas.cli.output import console as output_console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.tree import Tree

from space.errors import UserInputError
from space.searchspace import Dimension, SearchSpace, load_space, preset_names

EXACT_UP_TO = 100  # a space of at most this many specs is built in full (the demo's 72 specs are 24 structures)
DEFAULT_SAMPLE = 50  # specs built per width when the space is larger: seconds, not tens (docs/search-space.md)


def space_tree(space: SearchSpace) -> Tree:
    """The space as a rich Tree: one leaf per dimension with its choices, sampler name and condition."""
    tree = Tree(f"[bold]{space.name}[/bold]  ({space.source})" + (f"\n{space.description}" if space.description else ""))
    _add_leaf(tree, "family", space.dimensions["family"])
    for family in space.families:
        _add_branch(tree.add(f"[bold]{family}[/bold]  (when family = {family})"), space.dimensions[family])
    return tree


def _add_branch(node: Tree, dims: Mapping[str, Any]) -> None:
    for key, value in dims.items():
        if isinstance(value, Dimension):
            _add_leaf(node, key, value)
        elif key == "placement":  # split by block kind: one parameter per kind
            branch = node.add("placement  (choices depend on the block kind)")
            for kind, dim in value.items():
                _add_leaf(branch, kind, dim)
        else:  # the srtg options
            _add_branch(node.add(f"[bold]{key}[/bold]  (options used when placement != none)"), value)


def _add_leaf(node: Tree, key: str, dim: Dimension) -> None:
    choices = " | ".join(str(c if not isinstance(c, tuple) else list(c)) for c in dim.choices)
    if dim.fixed:
        node.add(f"{key}: {choices}  [dim](fixed)[/dim]")
        return
    when = f", when {dim.when}" if dim.when and dim.when != "placement != none" else ""
    node.add(f"{key}: [cyan]{choices}[/cyan]  [dim]({len(dim.choices)} choices; parameter {dim.name}{when})[/dim]")


def valid_share_with_progress(space: SearchSpace, width_mult: float, sample: int | None, console: Console) -> float:
    """:meth:`SearchSpace.valid_share` behind a transient progress bar."""
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(f"building on the meta device at width {width_mult:g}", total=None)
        return space.valid_share(
            width_mult, sample=sample, progress=lambda done, total: progress.update(task, completed=done, total=total)
        )


def share_interval(valid: int, sampled: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share ``valid / sampled`` (95% at ``z = 1.96``); never outside [0, 1].

    Specs are drawn without replacement from a finite space, so the interval is slightly wider than it need be.
    """
    share = valid / sampled
    centre = (share + z * z / (2 * sampled)) / (1 + z * z / sampled)
    half = z * math.sqrt(share * (1 - share) / sampled + z * z / (4 * sampled * sampled)) / (1 + z * z / sampled)
    return max(0.0, centre - half), min(1.0, centre + half)


def how_obtained(size: int, sampled: int | None, share: float) -> str:
    """How a valid share was obtained, as printed after it: every spec built, or the sample and its interval."""
    if sampled is None:
        return "every spec built, meta device"
    low, high = share_interval(round(share * sampled), sampled)
    return f"estimated from {sampled} random specs of {size:,}, 95% interval {low:.1%}-{high:.1%}; meta device"


def register(app: typer.Typer) -> None:
    space_app = typer.Typer(help="Search spaces: list the presets, show one as a tree.", no_args_is_help=True)
    app.add_typer(space_app, name="space")

    @space_app.command("list")
    def list_command() -> None:
        """List the preset spaces with their sizes."""
        for name in preset_names():
            space = load_space(name)
            typer.echo(f"{name:8s} {space.size():>6d} architectures  {space.description}")

    @space_app.command("show")
    def show_command(
        space_name: str = typer.Argument("joint", metavar="[SPACE]", help="A preset (srtg, mtnet, joint, demo) or a YAML file."),
        proxy_width: float = typer.Option(0.25, help="Channel multiplier of the proxy models (as `nas search --proxy-width`)."),
        sample: Optional[int] = typer.Option(
            None, help=f"Build N random specs per width to estimate the valid share (default: every spec up to "
                       f"{EXACT_UP_TO}, else {DEFAULT_SAMPLE}; 0 = every spec, exact)."),
    ) -> None:
        """Print a search space as a tree, its size and the share of valid architectures at full and proxy width."""
        if not 0 < proxy_width <= 1:
            raise UserInputError(f"--proxy-width {proxy_width} is not allowed; allowed: 0 < w <= 1")
        if sample is not None and sample < 0:
            raise UserInputError(f"--sample {sample} is not allowed; allowed: 0 (every spec) or a positive count")
        space = load_space(space_name)
        console = output_console()  # piped: wide, so the tree's lines are never cut
        console.print(space_tree(space))
        size = space.size()
        console.print(f"size: {size:,} architectures (distinct spec keys); {len(space.parameters())} sampler parameters")
        if sample is None:
            sample = 0 if size <= EXACT_UP_TO else DEFAULT_SAMPLE
        sampled = sample if 0 < sample < size else None
        for label, width in (("full width (1.0)", 1.0), (f"full and proxy width ({proxy_width:g})", proxy_width)):
            share = valid_share_with_progress(space, width, sampled, console)
            console.print(f"valid at {label}: {share:.1%}  ({how_obtained(size, sampled, share)})")
