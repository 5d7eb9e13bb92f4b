"""``nas retrain``: train one architecture at full scale with Ray Train (SPEC 7).

A thin layer over :func:`runners.retrain.retrain`: resolve the architecture (catalog name, spec file or
``RUN_DIR:TRIAL_ID``), load the data, draw a progress bar, and, when the architecture came from a run,
write the result back into ``RUN_DIR/retrain/<trial_id>/`` so the run's report shows proxy vs full accuracy.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nas.arch import resolve_arch
from nas.cli.output import plural
from nas.runmodel import parse_run_trial
from space.errors import UserInputError

SYNTHETIC_DEFAULT_FRAMES = 16
SYNTHETIC_DEFAULT_SIZE = 64
REAL_DEFAULT_FRAMES = 16  # torchvision's r3d / r(2+1)d protocol: 16 x 112 x 112
REAL_DEFAULT_SIZE = 112


def full_scale_cache_dir(data: str, root: Path, split: int, frames: int, size: int) -> Path:
    """Where ``--root`` videos are decoded once at the full-scale shape, shared by every retrain of them.

    ``$VIDEONAS_CACHE`` or ``$XDG_CACHE_HOME/videonas`` (default ``~/.cache/videonas``), one folder per
    (dataset, root, split, frames, size).
    """
    import hashlib
    import os

    base = os.environ.get("VIDEONAS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "videonas"
    key = hashlib.sha256(f"{data}|{root.resolve()}|{split}|{frames}|{size}".encode()).hexdigest()[:12]
    return Path(base) / f"{data}-split{split}-{frames}x{size}-{key}"


def decode_once(data: str, root: Path, split: int, frames: int, size: int, console: Console) -> Path:
    """Decode ``root`` into the full-scale cache unless it is already there (a progress bar while decoding)."""
    from runners.cache import MANIFEST_NAME, prepare_dataset

    folder = full_scale_cache_dir(data, root, split, frames, size)
    if (folder / MANIFEST_NAME).is_file():
        return folder
    with Progress(
        TextColumn("[bold]decoding {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"{data} at {frames}x{size}x{size}", total=None)
        prepare_dataset(
            data, out=folder, frames=frames, size=size, root=root, split=split,
            progress=lambda done, total, _path: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    return folder


def load_retrain_data(
    *, data: str, root: Path | None, cache: Path | None, frames: int | None, size: int | None,
    num_clips: int, num_test_clips: int | None, num_classes: int | None, seed: int,
) -> tuple[Any, Any, dict[str, Any]]:
    """(train, test, description): the train / test splits of a prepared cache, or fresh synthetic clips."""
    if cache is not None:
        from runners.cache import open_cache, read_manifest

        if not cache.is_dir():
            raise UserInputError(f"--cache {cache} does not exist; prepare it with `nas data prepare --out {cache}`")
        manifest = read_manifest(cache)
        if manifest.get("dataset") != data:
            raise UserInputError(f"--cache {cache} holds {manifest.get('dataset')!r}, not --data {data!r}")
        prepared = open_cache(cache)
        if "test" not in prepared or len(prepared["test"]) == 0:
            raise UserInputError(f"--cache {cache} has no test split; allowed: a cache prepared with a test split")
        # the search's validation clips stay held out: retraining learns from the training split only
        return prepared["train"], prepared["test"], {"name": data, "cache": str(cache.resolve())}
    if data != "synthetic":
        raise UserInputError(f"--data {data} needs --root PATH (its videos) or --cache DIR (`nas data prepare`)")
    from runners.synthetic import SyntheticConfig, synthetic_splits

    synthetic = SyntheticConfig(
        frames=frames or SYNTHETIC_DEFAULT_FRAMES,
        size=size or SYNTHETIC_DEFAULT_SIZE,
        **({"num_classes": num_classes} if num_classes else {}),
    )
    test_count = num_test_clips or max(synthetic.num_classes, num_clips // 4)
    # seed + 1000: a draw of its own, never the clips a search with the same seed trained on
    splits = synthetic_splits(train=num_clips, val=0, test=test_count, config=synthetic, seed=seed + 1000)
    info = {"name": "synthetic", "num_clips": num_clips, "num_test_clips": test_count, "seed": seed,
            "num_classes": synthetic.num_classes, "frames": synthetic.frames, "size": synthetic.size}  # fmt: skip
    return splits["train"], splits["test"], info


def write_back(run_dir: Path, trial_id: int, arch: str, result: Any, out_dir: Path) -> Path:
    """``RUN_DIR/retrain/<trial_id>/result.json`` (+ metrics.csv): what the run's report compares."""
    from nas.runmodel import trial_row

    row = trial_row(run_dir, trial_id)
    proxy = row.get("accuracy")
    proxy = None if proxy is None or (isinstance(proxy, float) and math.isnan(proxy)) else float(proxy)
    target = run_dir / "retrain" / str(trial_id)
    target.mkdir(parents=True, exist_ok=True)
    payload = {
        "arch": arch,
        "trial_id": trial_id,
        "spec_key": result.spec.key(),
        "proxy_accuracy": proxy,
        **{k: v for k, v in result.to_json().items() if k not in ("spec_key",)},
        "out_dir": str(out_dir),
    }
    if (out_dir / "metrics.csv").resolve() != (target / "metrics.csv").resolve():
        shutil.copyfile(out_dir / "metrics.csv", target / "metrics.csv")
    (target / "result.json").write_text(json.dumps(payload, indent=2))
    return target / "result.json"


class _Bar:
    """A rich progress bar fed by the workers' events: one bar over the steps of the current epoch."""

    def __init__(self, console: Console, epochs_hint: int) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("starting Ray Train workers", total=None, status="")
        self.console = console
        self.epochs = epochs_hint
        self.started = False

    def stop(self) -> None:
        if self.started:
            self.progress.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.started:  # only once workers run: input errors stay a single line
            self.progress.start()
            self.started = True
        kind = event["kind"]
        if kind == "started":
            self.progress.update(self.task, description=f"training on {plural(event['workers'], 'worker')}")
        elif kind == "step":
            self.progress.update(
                self.task,
                description=f"epoch {event['epoch'] + 1}",
                total=event["steps"],
                completed=event["step"],
                status=f"loss {event['loss']:.3f}",
            )
        elif kind == "epoch":
            row = event["row"]
            self.progress.console.print(
                f"epoch {row['epoch']}/{event['epochs']}: lr {row['lr']:.4g}  "
                f"{row['frames']}x{row['size']}x{row['size']} batch {row['batch_size']}  "
                f"train loss {row['train_loss']:.3f}  test top-1 {100 * row['test_top1']:.1f}% "
                f"top-5 {100 * row['test_top5']:.1f}% ({row['test_clips']} clips, single view)"
            )
            self.progress.update(self.task, description="evaluating" if row["epoch"] == event["epochs"] else "next epoch")
        elif kind == "checkpoint-skipped":  # its own line, so a log (stderr piped) has it too
            self.progress.console.print(f"warning: {event['reason']}; resuming from the previous one, {event['used']}")
        elif kind == "multiview":
            requested, views = tuple(event["requested"]), tuple(event["views"])
            if views != requested:  # said on its own line, so a log (stderr piped) has it too
                self.progress.console.print(
                    f"multi-view test: the {requested[0]} x {requested[1]} requested views of these clips repeat "
                    f"identical views (clips as long as the sampled span or exactly the crop size); evaluating "
                    f"{views[0]} x {views[1]} instead, same result"
                )
            else:
                self.progress.console.print(f"multi-view test: {views[0]} x {views[1]} views per test clip")
            self.progress.update(self.task, description=f"multi-view test ({views[0]} x {views[1]} views)",
                                 total=None, completed=0, status="")
        elif kind == "test":
            self.progress.update(self.task, total=event["total"], completed=event["done"], status="test clips")
        elif kind == "resumed":
            self.progress.console.print(f"resumed after epoch {event['epoch']}")
        elif kind == "init":
            self.progress.console.print(f"--init: {event['summary']}")


def register(app: typer.Typer) -> None:
    @app.command("retrain")
    def retrain_command(
        arch: str = typer.Argument(..., help="A catalog name, a spec file or RUN_DIR:TRIAL_ID."),
        data: str = typer.Option("synthetic", help="Dataset: synthetic (embedded) or a prepared real dataset."),
        root: Optional[Path] = typer.Option(
            None, help="Root folder of a real dataset: decoded once at --frames x --size (default 16x112) and cached."
        ),
        split: int = typer.Option(1, min=1, help="Official split number (ucf101, hmdb51)."),
        cache: Optional[Path] = typer.Option(None, help="A dataset prepared with `nas data prepare`."),
        epochs: int = typer.Option(10, min=1, help="Training epochs (multigrid trains ~1.5x as many, cheaper ones)."),
        batch_size: int = typer.Option(32, min=1, help="Global batch size (split over the workers)."),
        lr: float = typer.Option(0.1, help="Learning rate at batch 32; scaled linearly with the global batch."),
        weight_decay: float = typer.Option(1e-6, help="SGD weight decay."),
        warmup_epochs: float = typer.Option(1.0, min=0.0, help="Linear lr warm-up length in epochs."),
        grad_clip: float = typer.Option(5.0, help="Gradient clipping: maximal global L2 norm."),
        frames: Optional[int] = typer.Option(None, help="Frames per clip (default: the data's clip length)."),
        size: Optional[int] = typer.Option(None, help="Crop size in pixels (default: the data's short side)."),
        workers: int = typer.Option(1, min=1, help="Ray Train workers (DDP ranks)."),
        cpus_per_worker: int = typer.Option(1, min=1, help="CPU cores per worker."),
        gpus_per_worker: float = typer.Option(0.0, min=0.0, help="GPUs per worker (0: CPU training with gloo)."),
        multigrid: bool = typer.Option(False, help="PySlowFast multigrid (long + short cycles)."),
        amp: bool = typer.Option(False, help="Mixed precision (CUDA only; ignored on CPU)."),
        init: Optional[Path] = typer.Option(None, help="Fine-tune from this checkpoint (matching tensors are loaded)."),
        resume: bool = typer.Option(False, help="Continue the run in --out from its last checkpoint."),
        address: Optional[str] = typer.Option(None, help="Ray cluster address (default: a private local Ray)."),
        out: Optional[Path] = typer.Option(None, help="Output folder (default: RUN_DIR/retrain/ID or retrains/NAME)."),
        seed: int = typer.Option(0, help="Seed of the model, the data order and the synthetic data."),
        width_mult: float = typer.Option(1.0, help="Channel width multiplier (1.0 = the real model)."),
        num_clips: int = typer.Option(1000, min=1, help="Synthetic only: training clips."),
        num_test_clips: Optional[int] = typer.Option(None, min=1, help="Synthetic only: test clips (default: a quarter)."),
        num_classes: Optional[int] = typer.Option(None, min=2, help="Synthetic only: classes (default: the run's or 12)."),
        test_clips: int = typer.Option(3, min=1, help="Multi-view test: temporal clips per video."),
        test_crops: int = typer.Option(3, help="Multi-view test: spatial crops per clip (1 or 3)."),
    ) -> None:
        """Re-train an architecture at full scale (Ray Train DDP); checkpoints every epoch; `--resume` continues."""
        from runners.retrain import RetrainConfig, retrain

        spec = resolve_arch(arch)
        from_run = parse_run_trial(arch)
        if root is not None and not root.exists():
            raise UserInputError(f"--root {root} does not exist")
        if num_classes is None and from_run is not None and data == "synthetic":
            num_classes = _run_num_classes(from_run[0])
        config = RetrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, frames=frames, size=size,
            warmup_epochs=warmup_epochs, grad_clip_norm=grad_clip,
            multigrid=multigrid, workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
            amp=amp, seed=seed, width_mult=width_mult, test_clips=test_clips, test_crops=test_crops,
            init=str(init.resolve()) if init else None,
        )  # fmt: skip
        if out is None:
            out = from_run[0] / "retrain" / str(from_run[1]) if from_run else Path("retrains") / _safe_name(arch, spec)
        console = Console(stderr=True)
        if root is not None and cache is None and data != "synthetic":
            cache = decode_once(data, root, split, frames or REAL_DEFAULT_FRAMES, size or REAL_DEFAULT_SIZE, console)
        train, test, info = load_retrain_data(
            data=data, root=root, cache=cache, frames=frames, size=size, num_clips=num_clips,
            num_test_clips=num_test_clips, num_classes=num_classes, seed=seed,
        )  # fmt: skip
        bar = _Bar(console, epochs)
        try:
            result = retrain(spec, config, train=train, test=test, out_dir=out, resume=resume, on_event=bar, data_info=info,
                             address=address)
        finally:
            bar.stop()
        if from_run is not None:
            write_back(from_run[0], from_run[1], arch, result, Path(out).resolve())
        typer.echo(
            f"test top-1 {100 * result.test_top1:.2f}% top-5 {100 * result.test_top5:.2f}% (single view); "
            f"multi-view ({result.multiview}) top-1 {100 * result.multiview_top1:.2f}% "
            f"top-5 {100 * result.multiview_top5:.2f}%; {plural(result.epochs, 'epoch')}; output in {result.out_dir}"
        )


def _safe_name(arch: str, spec: Any) -> str:
    name = Path(arch).stem if arch.endswith((".yaml", ".yml", ".json")) else arch
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or spec.key()


def _run_num_classes(run_dir: Path) -> int | None:
    """The synthetic class count the search used, so the full model learns the same task."""
    import yaml

    search = run_dir / "search.yaml"
    if not search.is_file():
        return None
    try:
        config = yaml.safe_load(search.read_text()) or {}
    except yaml.YAMLError:
        return None
    value = config.get("num_classes") if isinstance(config, dict) else None
    if value is None and isinstance(config.get("config"), dict):
        value = config["config"].get("num_classes")
    return int(value) if isinstance(value, int) else None
