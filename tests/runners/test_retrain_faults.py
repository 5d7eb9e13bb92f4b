"""A worker killed in a two-worker Ray Train retrain (docs/reliability.md, retraining faults).

Real Ray Train (DDP over gloo on CPU, the session's Ray head), a real SIGKILL of rank 1's process in the middle
of epoch 2, after the epoch-1 checkpoint: Ray Train's ``FailureConfig`` restarts the worker group, which
continues from that checkpoint and ends with the same weights and metrics as a run nobody killed.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from runners.retrain import RetrainConfig, retrain
from runners.synthetic import SyntheticConfig, synthetic_splits
from space import catalog_spec
from tests.runners.retrain_faults import kill_rank_after

pytestmark = pytest.mark.slow


def _run(tmp_path, name, **kwargs):
    data = synthetic_splits(train=16, val=0, test=8, config=SyntheticConfig(num_classes=4, frames=8, size=32), seed=3)
    config = RetrainConfig(epochs=2, batch_size=4, workers=2, width_mult=0.125, test_clips=1, test_crops=1,
                           warmup_epochs=0.0)
    events = []
    result = retrain(catalog_spec("r3d-18"), config, train=data["train"], test=data["test"],
                     out_dir=tmp_path / name, on_event=events.append, **kwargs)
    return result, events


def test_a_killed_worker_is_restarted_and_training_continues_from_the_last_checkpoint(ray_address, tmp_path):
    marker = tmp_path / "fired"
    snapshot = tmp_path / "killed" / "ray" / "train" / "checkpoint_manager_snapshot.json"
    killed, events = _run(tmp_path, "killed", max_failures=1,
                          after_step=kill_rank_after(rank=1, epoch=1, step=1, marker=marker, snapshot=snapshot))
    assert marker.read_text().startswith("rank 1 killed after step 2 of epoch 2")  # the kill happened
    assert sum(1 for e in events if e["kind"] == "started") == 2  # the worker group ran twice
    assert killed.resumed_from_epoch == 1 and killed.epochs == 2
    steps_of_epoch_2 = [e["step"] for e in events if e["kind"] == "step" and e["epoch"] == 1]
    assert steps_of_epoch_2[:2] == [1, 2] and 1 in steps_of_epoch_2[2:]  # epoch 2 started over, from its checkpoint
    uninterrupted, _ = _run(tmp_path, "whole")
    ours, theirs = (pd.read_csv(tmp_path / n / "metrics.csv") for n in ("killed", "whole"))
    pd.testing.assert_frame_equal(ours.drop(columns=["seconds"], errors="ignore"),
                                  theirs.drop(columns=["seconds"], errors="ignore"))
    a, b = (torch.load(tmp_path / n / "model.pt", weights_only=True)["model"] for n in ("killed", "whole"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_without_failures_allowed_a_killed_worker_ends_the_retrain_with_an_error(ray_address, tmp_path):
    """The contrast: ``max_failures=0`` turns the same kill into the end of the run (so the option is live)."""
    with pytest.raises(Exception) as error:
        _run(tmp_path, "fragile", max_failures=0,
             after_step=kill_rank_after(rank=1, epoch=0, step=0, marker=tmp_path / "fired"))
    assert (tmp_path / "fired").exists() and not (tmp_path / "fragile" / "model.pt").exists()
    assert "Training failed due to worker errors" in str(error.value)  # Ray Train's WorkerGroupError
