"""``nas export ARCH|RETRAIN_DIR --format onnx|torchscript|exported-program --out DIR``.

A thin layer over :func:`runners.export.export_model`: a ``nas retrain`` output folder gives its trained
weights (:func:`runners.retrain.load_model`); a catalog name, spec file or ``RUN_DIR:TRIAL_ID`` gives a
freshly initialised model (seeded). The command prints the file, its size, the ONNX opset, the input
shape and how far the exported outputs were from eager PyTorch. The library loads inside the command, so
``nas --help`` stays quick (docs/architecture.md, "Startup").
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import typer
from rich.console import Console

from runners.shape import parse_shape
from space.errors import UserInputError

DEFAULT_SHAPE = "16x112x112"  # the latency profiles' clip


def resolve_source(arch: str) -> Path | Any:
    """A retraining folder (checked to hold spec.yaml and model.pt) or the spec of a name, file or trial."""
    from nas.arch import resolve_arch

    folder = Path(arch)
    if folder.is_dir():
        if not (folder / "spec.yaml").is_file() or not (folder / "model.pt").is_file():
            raise UserInputError(f"{folder} is not a finished retraining folder (needs spec.yaml and model.pt)")
        return folder
    return resolve_arch(arch)


def load_for_export(source: Path | Any, *, num_classes: int, seed: int) -> tuple[Any, dict[str, Any]]:
    """(model, what it is): trained weights from a retraining folder, else a seeded fresh build of the spec."""
    import torch

    from space import build_model

    if isinstance(source, Path):
        from runners.retrain import load_model

        return load_model(source), {"retrain_dir": str(source.resolve()), "weights": "trained"}
    torch.manual_seed(seed)
    model = build_model(source, num_classes=num_classes)
    return model, {"spec": source.to_dict(), "weights": f"fresh initialisation, seed {seed}"}


@contextlib.contextmanager
def stage_reporter(console: Console) -> Iterator[Callable[[str], None]]:
    """A spinner naming the current step on a terminal; one ``step ...`` line per step on stderr when piped."""
    if not console.is_terminal:
        yield lambda stage: console.print(f"{stage} ...", highlight=False)
        return
    with console.status("") as status:
        yield lambda stage: status.update(f"{stage} ...")


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.1f} MiB"


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_command(
        arch: str = typer.Argument(..., help="A `nas retrain` output folder, a catalog name, a spec file or RUN_DIR:TRIAL_ID."),
        fmt: str = typer.Option(..., "--format", help="onnx, torchscript or exported-program."),
        out: Path = typer.Option(..., "--out", help="Output folder (must be new or empty)."),
        shape: str = typer.Option(DEFAULT_SHAPE, "--shape", help="Clip T x H x W (the batch stays dynamic)."),
        num_classes: int = typer.Option(400, "--num-classes", help="Classifier outputs of a fresh model (a retrained one keeps its own)."),
        seed: int = typer.Option(0, "--seed", help="Seed of a fresh model's weights and of the check clips."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Export a model for deployment, checked against eager PyTorch before anything is written."""
        from runners.export import FORMATS, TOLERANCE, check_out_dir, export_model

        if fmt not in FORMATS:
            raise UserInputError(f"--format {fmt!r} is not allowed; allowed: {', '.join(FORMATS)}")
        if num_classes < 1:
            raise UserInputError(f"--num-classes {num_classes} is not allowed; allowed: an integer >= 1")
        clip = parse_shape(shape)
        check_out_dir(out)
        source = resolve_source(arch)  # every bad input fails here, before any work
        with stage_reporter(Console(stderr=True)) as on_stage:
            on_stage("loading the model")
            model, record = load_for_export(source, num_classes=num_classes, seed=seed)
            record["arch"] = arch
            report = export_model(model, fmt=fmt, out_dir=out, shape=clip, seed=seed, source=record, on_stage=on_stage)
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2))
            return
        opset = f"opset {report.opset}" if report.opset is not None else "opset n/a (not ONNX)"
        typer.echo(f"wrote {report.path} ({_size(report.size_bytes)}, {opset})")
        typer.echo(f"input: {report.input_shape} float32 (N dynamic); output: N x classes logits")
        typer.echo(
            f"checked at batch {', '.join(map(str, report.check_batches))}: max |exported - eager| = "
            f"{report.max_abs_diff:.3g} (largest |eager| {report.output_scale:.3g}; {TOLERANCE.label()})"
        )
