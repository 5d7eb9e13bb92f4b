"""The output folder's files: ``metrics.csv``, ``model.pt``, and :func:`load_model` to use a trained model."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch
import yaml
from torch import nn

from runners.checkpoint import load_checkpoint
from space import build_model, spec_from_dict
from space.errors import UserInputError
from space.files import atomic_write
from space.srtg import set_gate_epoch
from runners.retrain.config import METRICS_COLUMNS


CHECKPOINT_FILE = "checkpoint.pt"


def checkpoints_newest_first(latest: Path) -> list[Path]:
    """Ray's latest checkpoint file, then the older ones it kept beside it (``checkpoint_<time>`` sorts by time).

    Resuming walks this list so a damaged newest checkpoint falls back to the previous one.
    """
    older = sorted(
        (d for d in latest.parent.glob("checkpoint_*") if d.is_dir() and d.name < latest.name), reverse=True
    )
    return [latest / CHECKPOINT_FILE, *(d / CHECKPOINT_FILE for d in older)]


def write_metrics_csv(path: Path, history: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METRICS_COLUMNS)
    for row in history:
        writer.writerow([repr(row[c]) if isinstance(row[c], float) else row[c] for c in METRICS_COLUMNS])
    atomic_write(path, buffer.getvalue())


def load_model(folder: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The trained model of a ``nas retrain`` output folder, in eval mode, in one call."""
    folder = Path(folder)
    spec_file, weights = folder / "spec.yaml", folder / "model.pt"
    if not spec_file.is_file() or not weights.is_file():
        raise UserInputError(f"{folder} is not a finished retraining folder (needs spec.yaml and model.pt)")
    spec = spec_from_dict(yaml.safe_load(spec_file.read_text()))
    state = load_checkpoint(weights, map_location=map_location)
    model = build_model(spec, num_classes=int(state["num_classes"]), width_mult=float(state["width_mult"]))
    model.load_state_dict(state["model"])
    epochs = state.get("epochs")
    if epochs is None:  # a folder written before the epoch count was saved: metrics.csv has one row per epoch
        with open(folder / "metrics.csv", newline="") as handle:
            epochs = sum(1 for _ in csv.DictReader(handle))
    set_last_epoch_gates(model, int(epochs))
    return model.eval()


def set_last_epoch_gates(model: nn.Module, epochs: int) -> None:
    """Switch ``warmup`` gates to their state in the last of ``epochs`` epochs (gate state is not a weight).

    A ``warmup`` model is built with inactive gates; without this a loaded or resumed model would always
    fuse and its outputs would differ from the trained model's.
    """
    set_gate_epoch(model, max(epochs - 1, 0), max(epochs, 1))
