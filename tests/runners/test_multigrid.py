"""The multigrid schedule equals a hand computation from PySlowFast's formulas (small config)."""

from __future__ import annotations

import pytest

from runners.multigrid import (
    LONG_CYCLE_FACTORS,
    SHORT_CYCLE_FACTORS,
    MultigridConfig,
    multigrid_schedule,
    step_schedule,
)
from space.errors import UserInputError

# Hand computation for T x S = 8 x 32, batch 4, 10 baseline epochs decayed (x0.1) at 5 and 8, base lr 0.1.
# default size 8*32^2 = 8192. Long cycles (t, s) -> base (T, S) and short-cycle batch factors
#   round(8192 / (T * S'^2)) for S' in (16, 22.63, S):
#   (0.25, .707): (2, 23)  16, 8, 8 -> avg 32/3 | (0.5, .707): (4, 23) 8, 4, 4 -> 16/3
#   (0.5, 1):     (4, 32)   8, 4, 2 -> 14/3   | (1, 1):      (8, 32) 4, 2, 1 -> 7/3      sum avg = 23
# step 0 (5 epochs) splits 5*avg/23 = 2.319, 1.159, 1.014, 0.507; step 1 (3 epochs): 1.391, .696, .609, .304
# iterations = 4*5/23 + 4*3/23 = 32/23; saving = 8 / (32/23) = 5.75; fine-tune = 2 / 5.75 * 7/3 = 0.812
# x = 10 * 1.5 / 8.812 = 1.7023; rounded cumulative ends: 4 6 8 9 | 11 12 13 14 | 15
# relative lrs gamma^step * batch factor: 8 4 2 1 | .8 .4 .2 .1 | (fine-tune: first half .1, then .01);
# lr steps [0 4 6 8 9 11 12 13 14 (14+15)//2=14] -> epoch 14 uses .01.
HAND = [  # epoch: (frames, size, global batch, lr, stride factor)
    (2, 23, 32, 0.8, 4),
    (2, 23, 32, 0.8, 4),
    (2, 23, 32, 0.8, 4),
    (2, 23, 32, 0.8, 4),
    (4, 23, 16, 0.4, 2),
    (4, 23, 16, 0.4, 2),
    (4, 32, 8, 0.2, 2),
    (4, 32, 8, 0.2, 2),
    (8, 32, 4, 0.1, 1),
    (2, 23, 32, 0.08, 4),
    (2, 23, 32, 0.08, 4),
    (4, 23, 16, 0.04, 2),
    (4, 32, 8, 0.02, 2),
    (8, 32, 4, 0.01, 1),
    (8, 32, 4, 0.001, 1),
]
# short cycle (ShortCycleBatchSampler): crops round(.5*32) = 16 and round(.707*32) = 23, batch x
# round((S / (f * 32))^2): S = 23 -> x2, x1; S = 32 -> x4, x2.
HAND_SHORT = {23: ((16, 2), (23, 1)), 32: ((16, 4), (23, 2))}

SMALL = dict(epochs=10, milestones=(5, 8), frames=8, size=32, batch_size=4, base_lr=0.1, gamma=0.1)


def test_defaults_are_pyslowfasts():
    assert LONG_CYCLE_FACTORS == ((0.25, 0.5**0.5), (0.5, 0.5**0.5), (0.5, 1), (1, 1))
    assert SHORT_CYCLE_FACTORS == (0.5, 0.5**0.5)
    assert MultigridConfig().epoch_factor == 1.5


def test_long_and_short_cycle_schedule_matches_hand_computation():
    plans = multigrid_schedule(**SMALL)
    assert len(plans) == len(HAND)
    for plan, (frames, size, batch, lr, stride) in zip(plans, HAND):
        assert (plan.frames, plan.size, plan.batch_size, plan.stride_factor) == (frames, size, batch, stride), plan
        assert plan.lr == pytest.approx(lr, rel=1e-12), plan
        (s0, b0), (s1, b1) = HAND_SHORT[size]
        assert [(it.frames, it.size, it.batch_size) for it in plan.iterations] == [
            (frames, s0, batch * b0),
            (frames, s1, batch * b1),
            (frames, size, batch),
        ]


def test_shapes_snap_to_model_multiples_without_changing_batches_or_lrs():
    plans = multigrid_schedule(**SMALL, frames_multiple=4, size_multiple=16)
    for plan, (frames, size, batch, lr, _) in zip(plans, HAND):
        assert plan.frames == max(4, round(frames / 4) * 4)
        assert plan.size == {23: 16, 32: 32}[size]
        assert plan.batch_size == batch and plan.lr == pytest.approx(lr)
        assert all(it.size % 16 == 0 and it.frames % 4 == 0 for it in plan.iterations)


def test_short_cycle_only_stretches_epochs_and_steps():
    plans = multigrid_schedule(**SMALL, config=MultigridConfig(long_cycle=False))
    assert len(plans) == 15  # int(10 * 1.5)
    # steps 5, 8 -> 7, 12
    assert [round(p.lr, 6) for p in plans] == [0.1] * 7 + [0.01] * 5 + [0.001] * 3
    assert [(it.size, it.batch_size) for it in plans[0].iterations] == [(16, 16), (23, 8), (32, 4)]


def test_plain_step_schedule():
    plans = step_schedule(epochs=4, milestones=(2, 3), frames=8, size=32, batch_size=4, base_lr=0.2, gamma=0.5)
    assert [p.lr for p in plans] == [0.2, 0.2, 0.1, 0.05]
    assert {(p.frames, p.size, p.batch_size) for p in plans} == {(8, 32, 4)}


def test_long_cycle_without_an_lr_step_is_a_user_error():
    with pytest.raises(UserInputError, match="long cycle needs at least one lr step"):
        multigrid_schedule(**{**SMALL, "milestones": ()})
