"""Checkpoints that hold state dicts and tensors only, and fine-tuning initialisation from them.

Every checkpoint is read with ``torch.load(weights_only=True)``: a file that smuggles an arbitrary pickled
object (a class instance, a function, a lambda) is refused with a :class:`CheckpointError` instead of being
executed. That is why random-number-generator states are stored as tensors here (python's ``random`` and
numpy's legacy ``RandomState`` would otherwise pickle tuples of ints and strings in forms not all loaders
allow) and why configs are stored as plain dicts of numbers and strings.
"""

from __future__ import annotations

import pickle
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from space.errors import UserInputError
from space.files import atomic_write

__all__ = [
    "CheckpointError",
    "UnreadableCheckpointError",
    "load_newest_readable",
    "InitReport",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "model_state_dict",
    "load_matching",
    "init_from_checkpoint",
]


class CheckpointError(UserInputError):
    """A checkpoint file that cannot be used: missing, truncated, or holding more than tensors and state dicts."""


class UnreadableCheckpointError(CheckpointError):
    """A checkpoint that is missing, truncated or corrupt (not one refused for what it holds)."""


# --------------------------------------------------------------------------------------------
# Save / load
# --------------------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + rename), so a kill never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: _torch_save(state, tmp))


def _torch_save(state: Mapping[str, Any], tmp: Path) -> None:
    """Through a Python file: a full disk is then an OSError (ENOSPC), not torch's opaque "iostream error"."""
    try:
        with open(tmp, "wb") as handle:
            torch.save(dict(state), handle)
    except RuntimeError as exc:  # torch's zip writer hides the OSError behind its own error on close
        cause = exc.__context__
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        if cause is None:
            raise
        raise cause from None


_DAMAGE = re.compile(r"Unsupported operand[^\n]*|invalid load key[^\n]*|[Rr]an out of input|truncated|EOF[^\n]*")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; anything that is not tensors/state dicts is refused."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableCheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        damage = _DAMAGE.search(str(exc))
        if damage:  # bytes that are no pickle at all: damage, not a smuggled object
            raise UnreadableCheckpointError(
                f"checkpoint {path} cannot be read (corrupt: {damage.group(0)}); is it truncated?"
            ) from None
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        culprit = f" such as {found.group(1)}" if found else ""
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds a pickled object{culprit}, not only tensors and state dicts "
            "(checkpoints are loaded with weights_only=True); allowed: torch.save of tensors, dicts, lists, numbers, strings"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).split(". ")[0]  # torch's reader explains at length; the first sentence says what
        raise UnreadableCheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {first}); is it truncated?") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}; allowed: a dict (a state dict)")
    return state


def load_newest_readable(
    newest_first: Sequence[str | Path], map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], Path, list[str]]:
    """The first checkpoint of ``newest_first`` that reads: (state, its path, why each newer one was skipped).

    A kill or a full disk can leave the newest checkpoint truncated or corrupt even with atomic writes (a
    copy, a broken disk); resuming then falls back to the previous one and says so, instead of failing or
    starting over. A checkpoint *refused* for holding pickled objects is not skipped: that is an attack or
    a foreign file, not damage, and stays an error.
    """
    skipped: list[str] = []
    for path in newest_first:
        try:
            return load_checkpoint(path, map_location=map_location), Path(path), skipped
        except UnreadableCheckpointError as exc:
            skipped.append(str(exc))
    raise UnreadableCheckpointError(
        f"no readable checkpoint among {len(skipped)}: " + "; ".join(skipped) if skipped else "no checkpoint given"
    )


# --------------------------------------------------------------------------------------------
# RNG states as tensors
# --------------------------------------------------------------------------------------------


def rng_state() -> dict[str, Tensor]:
    """torch (CPU and every CUDA device), numpy's global RandomState and python's ``random``, all as tensors."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    assert kind == "MT19937"
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_extra": torch.tensor([pos, has_gauss], dtype=torch.int64),
        "numpy_cached_gaussian": torch.tensor(cached, dtype=torch.float64),
        "python_version": torch.tensor(version, dtype=torch.int64),
        "python_words": torch.tensor(words, dtype=torch.int64),
        "python_gauss": torch.tensor([0.0 if gauss is None else 1.0, gauss or 0.0], dtype=torch.float64),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Mapping[str, Tensor]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    pos, has_gauss = (int(v) for v in state["numpy_extra"].tolist())
    np.random.set_state(("MT19937", keys, pos, has_gauss, float(state["numpy_cached_gaussian"])))
    has, value = state["python_gauss"].tolist()
    words = tuple(int(v) for v in state["python_words"].tolist())
    random.setstate((int(state["python_version"]), words, value if has else None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


# --------------------------------------------------------------------------------------------
# Fine-tuning initialisation
# --------------------------------------------------------------------------------------------

_NESTED_KEYS = ("model", "state_dict", "model_state", "model_state_dict", "model_sdict", "weights")


def model_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """The model weights inside a checkpoint: a bare state dict, or one nested under a usual key.

    Accepts our checkpoints (``model``), torchvision / plain ``torch.save(model.state_dict())`` files, and
    the ``state_dict`` / ``model_state`` wrappers of PySlowFast, Lightning and others. A ``module.`` prefix
    (DDP / DataParallel) is stripped.
    """
    found: Mapping[str, Any] = checkpoint
    for key in _NESTED_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            found = checkpoint[key]
            break
    tensors = {k: v for k, v in found.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(f"no tensors found in the checkpoint (top-level keys: {sorted(checkpoint)[:8]})")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


@dataclass(frozen=True)
class InitReport:
    """What :func:`load_matching` did: names loaded, skipped (with the reason) and left at their init."""

    loaded: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    missing: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        if self.skipped:
            lines.append("skipped: " + ", ".join(f"{name} ({why})" for name, why in self.skipped))
        if self.missing:
            lines.append(f"not in the checkpoint (left at initialisation): {', '.join(self.missing)}")
        return "; ".join(lines)


def load_matching(model: nn.Module, source: Mapping[str, Tensor]) -> InitReport:
    """Copy every tensor of ``source`` whose name and shape match one of ``model``'s; report the rest.

    A different head (another number of classes) is the usual skip: its shape differs.
    """
    target = model.state_dict()
    loaded, skipped = [], []
    update = {}
    for name, tensor in source.items():
        if name not in target:
            skipped.append((name, "not in the model"))
        elif tuple(tensor.shape) != tuple(target[name].shape):
            skipped.append((name, f"shape {tuple(tensor.shape)} != {tuple(target[name].shape)}"))
        else:
            update[name] = tensor.to(dtype=target[name].dtype)
            loaded.append(name)
    missing = tuple(name for name in target if name not in source)
    model.load_state_dict(update, strict=False)
    return InitReport(loaded=tuple(loaded), skipped=tuple(skipped), missing=missing)


def init_from_checkpoint(model: nn.Module, path: str | Path) -> InitReport:
    """``--init CHECKPOINT``: load every matching tensor of the file into ``model``."""
    report = load_matching(model, model_state_dict(load_checkpoint(path)))
    if not report.loaded:
        raise CheckpointError(
            f"--init {path}: no tensor matches the model by name and shape "
            f"(first skipped: {report.skipped[:3]}); allowed: a checkpoint of the same family and depth"
        )
    return report
