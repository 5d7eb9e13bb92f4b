"""runners.retrain: shards, schedules, sampling, and one Ray Train run (multigrid + SRTG warm-up gates)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from runners.cache import open_cache, prepare_dataset
from runners.multigrid import EpochPlan, IterShape
from runners.retrain import (
    RetrainConfig,
    epoch_plans,
    eval_shard,
    learning_rate,
    load_model,
    retrain,
    train_batch,
    train_shard,
)
from runners.sampling import ViewConfig, sample_training_batch, to_model_input
from runners.synthetic import SyntheticConfig, synthetic_splits
from space import ResNet3DSpec, SRTGSpec, catalog_spec
from space.errors import UserInputError
from space.srtg import srtg_modules


@pytest.mark.parametrize("num_clips, world", [(41, 2), (23, 3), (7, 2)])
def test_training_shards_are_disjoint_equal_and_reshuffled_each_epoch(num_clips, world):
    for epoch in range(3):
        shards = [train_shard(num_clips, rank=r, world_size=world, seed=1, epoch=epoch) for r in range(world)]
        together = np.concatenate(shards)
        assert len(set(together.tolist())) == len(together) == num_clips // world * world
        assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    assert not np.array_equal(
        train_shard(num_clips, rank=0, world_size=world, seed=1, epoch=0),
        train_shard(num_clips, rank=0, world_size=world, seed=1, epoch=1),
    )


def test_evaluation_shards_cover_every_clip_exactly_once_without_padding():
    shards = [eval_shard(23, rank=r, world_size=2) for r in range(2)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(23))
    assert [len(s) for s in shards] == [12, 11]


def test_config_scales_lr_with_the_global_batch_and_rejects_bad_values():
    assert RetrainConfig(batch_size=64).scaled_lr == pytest.approx(0.2)
    assert RetrainConfig(batch_size=8, lr=0.2).scaled_lr == pytest.approx(0.05)
    with pytest.raises(UserInputError, match="multiple of workers"):
        RetrainConfig(batch_size=5, workers=2)
    with pytest.raises(UserInputError, match="test_crops"):
        RetrainConfig(test_crops=2)


def test_warm_up_is_linear_then_the_epoch_lr():
    config = RetrainConfig(warmup_epochs=2.0, warmup_start_factor=0.1)
    plan = EpochPlan(0, 8, 32, 4, 0.4, 1, (IterShape(8, 32, 4),))
    assert learning_rate(plan, 0.0, config) == pytest.approx(0.04)
    assert learning_rate(plan, 1.0, config) == pytest.approx(0.22)
    assert learning_rate(plan, 2.0, config) == pytest.approx(0.4)


def test_step_decay_milestones_are_fractions_of_the_epochs():
    plans = epoch_plans(RetrainConfig(epochs=10, batch_size=64), catalog_spec("r3d-18"), 8, 32)
    assert [round(p.lr, 6) for p in plans] == [0.2] * 5 + [0.02] * 3 + [0.002] * 2


def test_plain_training_batches_are_the_shared_sampler_and_multigrid_ones_are_resized():
    clips = synthetic_splits(train=6, val=0, config=SyntheticConfig(num_classes=4, frames=16, size=32))["train"]
    view = ViewConfig(frames=8, size=32)
    indices = np.arange(4)
    ours = train_batch(clips.videos, indices, view=view, frames=8, size=32, stride_factor=1, rng=np.random.default_rng(0))
    theirs = to_model_input(sample_training_batch(clips.videos, indices, view, np.random.default_rng(0)))
    assert torch.equal(ours, theirs)
    coarse = train_batch(clips.videos, indices, view=view, frames=2, size=16, stride_factor=4, rng=np.random.default_rng(0))
    assert coarse.shape == (4, 3, 2, 16, 16)


@pytest.mark.slow
def test_multigrid_run_with_warmup_gates_follows_its_plan(ray_address, tmp_path):
    """Two workers reading a memory-mapped cache, multigrid (2 baseline epochs -> 3), SRTG `warmup` gates
    inactive for the first epoch."""
    spec = ResNet3DSpec(conv="r3d", depth=18, srtg=SRTGSpec(placement="final", gate="warmup", warmup=1, stages=(1, 2)))
    prepare_dataset(
        "synthetic", out=tmp_path / "cache", frames=8, size=32, synthetic=SyntheticConfig(num_classes=4),
        synthetic_clips=36, seed=2,
    )  # fmt: skip
    data = open_cache(tmp_path / "cache")  # train 36, test 9: memory maps the workers reopen by path
    assert isinstance(data["train"].videos, np.memmap)
    config = RetrainConfig(epochs=2, batch_size=4, workers=2, multigrid=True, width_mult=0.125, test_clips=1, test_crops=1)
    result = retrain(spec, config, train=data["train"], test=data["test"], out_dir=tmp_path / "mg")
    metrics = pd.read_csv(tmp_path / "mg" / "metrics.csv")
    plans = epoch_plans(config, spec, 8, 32)
    assert len(plans) == 3 and len({(p.frames, p.size) for p in plans}) > 1  # the shape really changes
    assert list(zip(metrics["frames"], metrics["size"], metrics["batch_size"])) == [
        (p.frames, p.size, p.batch_size) for p in plans
    ]
    # the logged lr is the last step's: after warm-up (1 epoch) it is the plan's
    assert metrics["lr"].iloc[1:].tolist() == pytest.approx([p.lr for p in plans[1:]])
    # warm-up gate: always open (inactive) in epoch 1, deciding per sample afterwards
    assert metrics["gate_open_rate"].iloc[0] == 1.0
    assert all(0.0 <= r < 1.0 for r in metrics["gate_open_rate"].iloc[1:])
    assert set(result.gate_open_rates) == {f"layer{s}.{b}.srtg" for s in (1, 2) for b in (0, 1)}
    assert (metrics["test_clips"] == 9).all() and result.epochs == 3
    model = load_model(tmp_path / "mg")
    assert sum(p.numel() for p in model.parameters()) > 0 and not model.training
    # issue 11.3: the loaded model's warm-up gates are as at the last epoch (active), not as built (inactive)
    gates = srtg_modules(model)
    assert len(gates) == 4 and all(module.gate_active for module in gates.values())
    clips = torch.from_numpy(np.asarray(data["test"].videos[:4])).permute(0, 4, 1, 2, 3).float() / 255
    with torch.no_grad():
        loaded = model(clips)
        for module in gates.values():
            module.gate_active = False
        as_built = model(clips)
    assert not torch.allclose(loaded, as_built)  # the gate state matters for the outputs
    assert math.isfinite(result.multiview_top1)


def test_an_out_folder_in_use_is_refused_without_resume(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "something").write_text("x")
    data = synthetic_splits(train=4, val=0, test=4, config=SyntheticConfig(num_classes=4, frames=8, size=32))
    with pytest.raises(UserInputError, match="not empty"):
        retrain(catalog_spec("r3d-18"), RetrainConfig(), train=data["train"], test=data["test"], out_dir=tmp_path / "used")


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (AMP and NCCL paths)")
def test_amp_on_cuda_trains_with_finite_loss(ray_address, tmp_path):
    data = synthetic_splits(train=16, val=0, test=8, config=SyntheticConfig(num_classes=4, frames=8, size=32))
    config = RetrainConfig(epochs=1, batch_size=4, gpus_per_worker=1, amp=True, width_mult=0.25, test_clips=1, test_crops=1)
    result = retrain(catalog_spec("r3d-18"), config, train=data["train"], test=data["test"], out_dir=tmp_path / "amp")
    assert all(math.isfinite(row["train_loss"]) for row in result.history)
