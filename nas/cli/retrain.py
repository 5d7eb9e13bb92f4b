"""``nas retrain``: train one architecture at full scale with Ray Train (``docs/retrain.md``).

A thin layer over the library function :func:`nas.retrain.retrain` (which resolves the architecture,
prepares the data, warns, trains and, without ``--out``, writes the result back into the run): parse the
options, draw a progress bar.
The library loads inside the command, so ``nas --help`` stays quick (docs/architecture.md, "Startup").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nas.cli.output import plural


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
        max_failures: int = typer.Option(2, min=0, help="Restarts of the worker group after a worker dies; each continues from the last checkpoint."),
        out: Optional[Path] = typer.Option(None, help="Output folder (default: RUN_DIR/retrain/ID, which the run's report reads, or retrains/NAME); "
                                                 "a folder elsewhere leaves the run untouched."),
        seed: int = typer.Option(0, help="Seed of the model, the data order and the synthetic data."),
        width_mult: float = typer.Option(1.0, help="Channel width multiplier (1.0 = the real model)."),
        num_clips: int = typer.Option(1000, min=1, help="Synthetic only: training clips."),
        num_test_clips: Optional[int] = typer.Option(None, min=1, help="Synthetic only: test clips (default: a quarter)."),
        num_classes: Optional[int] = typer.Option(None, min=2, help="Synthetic only: classes (default: the run's or 12)."),
        test_clips: int = typer.Option(3, min=1, help="Multi-view test: temporal clips per video."),
        test_crops: int = typer.Option(3, help="Multi-view test: spatial crops per clip (1 or 3)."),
    ) -> None:
        """Re-train an architecture at full scale (Ray Train DDP); checkpoints every epoch; `--resume` continues."""
        from nas.retrain import RetrainData, retrain
        from runners.retrain import RetrainConfig

        config = RetrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, frames=frames, size=size,
            warmup_epochs=warmup_epochs, grad_clip_norm=grad_clip,
            multigrid=multigrid, workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
            amp=amp, seed=seed, width_mult=width_mult, test_clips=test_clips, test_crops=test_crops,
            init=str(init.resolve()) if init else None,
        )  # fmt: skip
        source = RetrainData(
            data=data, root=root, split=split, cache=cache, frames=frames, size=size, num_clips=num_clips,
            num_test_clips=num_test_clips, num_classes=num_classes, seed=seed,
        )  # fmt: skip
        console = Console(stderr=True)
        bar = _Bar(console, epochs)
        try:
            result = retrain(arch, source, config, out_dir=out, resume=resume, on_event=bar, address=address,
                             console=console, max_failures=max_failures)
        finally:
            bar.stop()
        typer.echo(_summary(result))


def _summary(result: Any) -> str:
    """The line printed when the retraining ends: single- and multi-view accuracy, epochs, where the output is."""
    return (
        f"test top-1 {100 * result.test_top1:.2f}% top-5 {100 * result.test_top5:.2f}% (single view); "
        f"multi-view ({result.multiview}) top-1 {100 * result.multiview_top1:.2f}% "
        f"top-5 {100 * result.multiview_top5:.2f}%; {plural(result.epochs, 'epoch')}; output in {result.out_dir}"
    )
