"""Weights-only checkpoints: refusal of pickled objects, RNG states as tensors, --init from depth-18 weights."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from runners.checkpoint import (
    CheckpointError,
    init_from_checkpoint,
    load_checkpoint,
    model_state_dict,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from space import build_model, catalog_spec


class _Payload:
    """Unpickling this would run code: it must never happen."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_holding_a_pickled_object_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(2)}, "extra": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused: it holds a pickled object"):
        load_checkpoint(path)
    assert not marker.exists()


def test_missing_and_truncated_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    path = tmp_path / "cut.pt"
    save_checkpoint(path, {"w": torch.arange(1000.0)})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_rng_states_round_trip_as_tensors_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(3).tolist())
    state = load_checkpoint(tmp_path / "rng.pt")["rng"]
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    set_rng_state(state)
    assert (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(3).tolist()) == expected


@pytest.fixture(scope="module")
def depth18_checkpoint(tmp_path_factory):
    """A torchvision-style r3d_18 file: a bare state dict with torchvision's key names (400-class head)."""
    torch.manual_seed(0)
    source = build_model(catalog_spec("r3d-18"), num_classes=400)
    path = tmp_path_factory.mktemp("init") / "r3d_18.pth"
    torch.save(source.state_dict(), path)
    return path, source.state_dict()


def test_init_loads_every_matching_tensor_and_reports_the_skipped_head(depth18_checkpoint):
    path, source = depth18_checkpoint
    model = build_model(catalog_spec("r3d-18"), num_classes=7)
    report = init_from_checkpoint(model, path)
    assert set(report.loaded) == set(source) - {"fc.weight", "fc.bias"}
    assert [name for name, _ in report.skipped] == ["fc.weight", "fc.bias"]
    assert "fc.weight (shape (400, 512) != (7, 512))" in report.summary()
    target = model.state_dict()
    assert all(torch.equal(target[name], source[name]) for name in report.loaded)
    assert report.missing == ()  # the head is in the file (skipped for its shape), not missing


def test_init_into_an_srtg_model_reports_the_new_blocks_as_not_in_the_checkpoint(depth18_checkpoint):
    path, source = depth18_checkpoint
    model = build_model(catalog_spec("srtg-r3d-18-final"), num_classes=400)
    report = init_from_checkpoint(model, path)
    assert set(report.loaded) == set(source)
    assert report.missing and all(".srtg." in name for name in report.missing)


def test_nested_and_ddp_prefixed_state_dicts_are_understood():
    weights = {"module.fc.weight": torch.ones(2, 2)}
    assert set(model_state_dict({"state_dict": weights})) == {"fc.weight"}
    assert set(model_state_dict({"model": {"fc.weight": torch.ones(1)}, "epoch": 3})) == {"fc.weight"}


def test_init_with_nothing_matching_is_a_user_error(tmp_path):
    path = tmp_path / "other.pt"
    save_checkpoint(path, {"something.else": torch.ones(3)})
    with pytest.raises(CheckpointError, match="no tensor matches"):
        init_from_checkpoint(build_model(catalog_spec("r3d-18"), num_classes=3, width_mult=0.125), path)


def _ray_like_checkpoints(root, count):
    """``checkpoint_<time>/checkpoint.pt`` folders as Ray Train writes them, oldest first."""
    paths = []
    for epoch in range(1, count + 1):
        paths.append(save_checkpoint(root / f"checkpoint_2026-12-01_10-00-0{epoch}.000000" / "checkpoint.pt",
                                     {"epoch": epoch, "w": torch.full((64,), float(epoch))}))
    return paths


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "missing"])
def test_a_damaged_newest_checkpoint_is_named_and_the_previous_one_is_used(tmp_path, damage):
    from runners.checkpoint import UnreadableCheckpointError, load_newest_readable
    from runners.retrain.artifacts import checkpoints_newest_first

    paths = _ray_like_checkpoints(tmp_path, 3)
    newest = paths[-1]
    if damage == "truncated":
        newest.write_bytes(newest.read_bytes()[:200])
    elif damage == "garbage":
        newest.write_bytes(bytes(range(256)) * 4)
    elif damage == "empty":
        newest.write_bytes(b"")
    else:
        newest.unlink()
    candidates = checkpoints_newest_first(newest.parent)
    assert candidates == paths[::-1]
    state, used, skipped = load_newest_readable(candidates)
    assert used == paths[1] and state["epoch"] == 2 and torch.equal(state["w"], torch.full((64,), 2.0))
    assert len(skipped) == 1 and str(newest) in skipped[0]
    for path in paths:
        path.write_bytes(b"\0" * 10)
    with pytest.raises(UnreadableCheckpointError, match="no readable checkpoint among 3"):
        load_newest_readable(candidates)


def test_a_refused_newest_checkpoint_is_not_skipped(tmp_path):
    """Pickled objects are an attack or a foreign file, not damage: no silent fallback."""
    from runners.checkpoint import load_newest_readable

    paths = _ray_like_checkpoints(tmp_path, 2)
    torch.save({"epoch": 2, "x": _Payload(tmp_path / "code-ran")}, paths[-1])
    with pytest.raises(CheckpointError, match="refused"):
        load_newest_readable(paths[::-1])
    assert not (tmp_path / "code-ran").exists()
