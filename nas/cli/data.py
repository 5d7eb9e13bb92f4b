"""``nas data prepare`` and ``nas data inspect``: thin layers over ``runners.cache`` and ``runners.inspect_data``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from nas.cli.output import console as output_console
from nas.cli.output import print_table
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from space.errors import UserInputError

_SKIPPED_SHOWN = 20
data_app = typer.Typer(help="Prepare (decode once into a clip cache) and inspect datasets.", no_args_is_help=True)


def _synthetic_config(classes: int | None, frames: int, size: int):
    from runners.synthetic import SyntheticConfig

    base = SyntheticConfig()
    return SyntheticConfig(**{**base.__dict__, "frames": frames, "size": size,
                              "num_classes": classes if classes is not None else base.num_classes})


@data_app.command("prepare")
def prepare_command(
    data: str = typer.Option(..., "--data", help="synthetic, ucf101, hmdb51, kinetics, hacs, mit, folder or csv."),
    out: Path = typer.Option(..., "--out", help="Folder to write the cache (manifest.json + .npy arrays) into."),
    frames: int = typer.Option(16, "--frames", help="Frames per clip (T), evenly spaced over each video."),
    size: int = typer.Option(64, "--size", help="Clip height and width in pixels (shorter side, centre crop)."),
    root: Path = typer.Option(None, "--root", help="Dataset folder (or CSV file for --data csv)."),
    split: int = typer.Option(1, "--split", help="Official split number (ucf101/hmdb51: 1-3)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of each training class held out for validation."),
    seed: int = typer.Option(0, "--seed", help="Seed of the validation split (and of synthetic data)."),
    max_skipped: float = typer.Option(0.05, "--max-skipped", help="Error when more than this share of videos is unreadable."),
    clips: int = typer.Option(3000, "--num-clips", "--clips", help="synthetic only: training clips (validation and test get a quarter each); as `nas search --num-clips`."),
    classes: int = typer.Option(None, "--num-classes", "--classes", help="synthetic only: number of classes (2-12); as `nas retrain --num-classes`."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing cache in --out."),
) -> None:
    """Decode a dataset once into a uint8 memory-mappable cache that proxy training reads."""
    from runners.cache import prepare_dataset

    console = Console(stderr=True)
    synthetic = _synthetic_config(classes, frames, size) if data == "synthetic" else None
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console,
    )  # fmt: skip
    task = bar.add_task(f"preparing {data}", total=None)

    def progress(done: int, total: int, current: str) -> None:
        if not bar.live.is_started:  # start on the first video, so input errors print one clean line
            bar.start()
        bar.update(task, completed=done, total=total)

    warned = []
    report = output_console()  # stdout: stderr holds the progress bar and, on failure, only the one `error:` line

    def warn(path: str, reason: str) -> None:  # printed live, above the progress bar
        warned.append(path)
        if len(warned) <= _SKIPPED_SHOWN:
            report.print(f"[yellow]warning:[/] skipped {path} ({reason})", highlight=False, soft_wrap=True)
        elif len(warned) == _SKIPPED_SHOWN + 1:
            report.print("[yellow]warning:[/] more videos skipped; manifest.json lists them all")

    try:
        manifest = prepare_dataset(
            data, out=out, frames=frames, size=size, root=root, split=split, val_fraction=val_fraction, seed=seed,
            max_skipped=max_skipped, synthetic=synthetic, synthetic_clips=clips, overwrite=overwrite, progress=progress,
            warn=warn,
        )  # fmt: skip
    finally:
        bar.stop()
    counts = ", ".join(f"{name} {info['count']}" for name, info in manifest["splits"].items())
    shape = "x".join(str(v) for v in manifest["clip_shape"])
    typer.echo(f"prepared {data} into {out}: {counts} clips of {shape} (T x H x W x C), "
               f"{len(manifest['classes'])} classes, {manifest['skipped_count']} skipped")


@data_app.command("inspect")
def inspect_command(
    cache: Path = typer.Argument(None, help="A prepared cache folder (instead of --data)."),
    data: str = typer.Option(None, "--data", help="Inspect a dataset in place instead of a cache."),
    root: Path = typer.Option(None, "--root", help="Dataset folder (with --data)."),
    split: int = typer.Option(1, "--split", help="Official split number (with --data)."),
    frames: int = typer.Option(8, "--frames", help="Frames decoded per example clip (with --data)."),
    size: int = typer.Option(64, "--size", help="Example clip size in pixels (with --data)."),
    per_class: int = typer.Option(3, "--per-class", help="Example clips per class in the grid."),
    png: Path = typer.Option(None, "--png", help="Where to write the grid (default: CACHE/inspect.png or ./inspect-NAME.png)."),
) -> None:
    """Print class counts per split and write a PNG grid of a few clips per class."""
    from runners.inspect_data import summarize_cache, summarize_dataset, write_clip_grid

    if (cache is None) == (data is None):
        raise UserInputError("give either a cache folder or --data NAME (not both, not neither)")
    if per_class < 1:
        raise UserInputError(f"--per-class {per_class} is not allowed; allowed: >= 1")
    if cache is not None:
        summary = summarize_cache(cache, per_class=per_class)
        target = png or cache / "inspect.png"
    else:
        summary = summarize_dataset(data, root=root, split=split, frames=frames, size=size, per_class=per_class)
        target = png or Path(f"inspect-{data}.png")
    table = Table(title=f"{summary.name}: clips per class")
    table.add_column("class")
    for split_name in summary.counts:
        table.add_column(split_name, justify="right")
    for c in summary.classes:
        table.add_row(c, *(str(summary.counts[s][c]) for s in summary.counts))
    table.add_row("[bold]total", *(f"[bold]{sum(summary.counts[s].values())}" for s in summary.counts))
    print_table(table)
    if summary.skipped:
        typer.echo(f"skipped (unreadable) files: {summary.skipped}")
    if len(summary.examples):
        write_clip_grid(summary.examples, target)
        typer.echo(f"wrote {target}")
    else:
        typer.echo("no readable example clip: no grid written")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
