"""What a retraining run is asked to do (:class:`RetrainConfig`) and what it measured (:class:`RetrainResult`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from space import ArchSpec
from space.errors import UserInputError


METRICS_COLUMNS = (
    "epoch",
    "lr",
    "frames",
    "size",
    "batch_size",
    "train_loss",
    "train_top1",
    "train_clips",
    "train_unique_clips",
    "test_loss",
    "test_top1",
    "test_top5",
    "test_clips",
    "test_unique_clips",
    "gate_open_rate",
)


@dataclass(frozen=True)
class RetrainConfig:
    """Everything that decides a retraining run (defaults: ``docs/retrain.md``). ``batch_size`` is the global batch.

    ``lr`` is the learning rate at ``lr_reference_batch`` clips; the run uses ``lr * batch_size /
    lr_reference_batch``. ``lr_milestones`` are fractions of ``epochs`` at which the lr is multiplied by
    ``lr_gamma``. ``frames`` / ``size`` default to the data's clip length and short side.
    With ``multigrid`` the run lasts about ``MultigridConfig.epoch_factor`` x ``epochs`` epochs (PySlowFast).
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.1
    lr_reference_batch: int = 32
    momentum: float = 0.9
    weight_decay: float = 1e-6
    warmup_epochs: float = 1.0
    warmup_start_factor: float = 0.1
    lr_milestones: tuple[float, ...] = (0.5, 0.8)
    lr_gamma: float = 0.1
    grad_clip_norm: float = 5.0
    frames: int | None = None
    size: int | None = None
    multigrid: bool = False
    workers: int = 1
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    amp: bool = False
    seed: int = 0
    width_mult: float = 1.0
    max_stride: int = 2
    test_clips: int = 3
    test_crops: int = 3
    eval_batch_size: int = 16
    init: str | None = None

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("workers", self.workers >= 1, ">= 1"),
            ("batch_size", self.batch_size % self.workers == 0, f"a multiple of workers ({self.workers})"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("warmup_epochs", self.warmup_epochs >= 0, ">= 0"),
            ("grad_clip_norm", self.grad_clip_norm > 0, "> 0"),
            ("frames", self.frames is None or self.frames >= 1, ">= 1"),
            ("size", self.size is None or self.size >= 8, ">= 8"),
            ("cpus_per_worker", self.cpus_per_worker >= 1, ">= 1"),
            ("gpus_per_worker", self.gpus_per_worker >= 0, ">= 0"),
            ("width_mult", 0 < self.width_mult <= 1, "in (0, 1]"),
            ("test_clips", self.test_clips >= 1, ">= 1"),
            ("test_crops", self.test_crops in (1, 3), "1 or 3"),
            ("max_stride", self.max_stride >= 1, ">= 1"),
            ("lr_milestones", all(0 < m < 1 for m in self.lr_milestones), "fractions in (0, 1)"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise UserInputError(f"retrain {name}={getattr(self, name)!r} is not allowed; allowed: {allowed}")

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0

    @property
    def scaled_lr(self) -> float:
        """lr at the global batch: linear scaling from ``lr_reference_batch``."""
        return self.lr * self.batch_size / self.lr_reference_batch

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        return d


@dataclass(frozen=True)
class RetrainResult:
    """What a finished run measured. ``history`` holds the rows of ``metrics.csv``."""

    out_dir: Path
    spec: ArchSpec
    epochs: int
    history: tuple[dict[str, float], ...]
    test_top1: float
    test_top5: float
    multiview_top1: float
    multiview_top5: float
    multiview: str
    gate_open_rates: dict[str, float | None] = field(default_factory=dict)
    resumed_from_epoch: int | None = None
    init_report: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "spec_key": self.spec.key(),
            "epochs": self.epochs,
            "test_top1": self.test_top1,
            "test_top5": self.test_top5,
            "multiview_top1": self.multiview_top1,
            "multiview_top5": self.multiview_top5,
            "multiview": self.multiview,
            "gate_open_rates": self.gate_open_rates,
            "resumed_from_epoch": self.resumed_from_epoch,
            "init_report": self.init_report,
            "seconds": self.seconds,
        }
