"""Rank agreement and noise figures of a benchmark table (nas/sim/curvestats.py), on hand-made tables."""

from __future__ import annotations

import numpy as np
import pytest

from nas.sim.curvestats import bootstrap_tau, noise_shares, rank_figures, stats_markdown
from tests.nas.sim.test_curvetable import CLIPS, hand_made_table, reversing


def pick(figures, comparison, signal, budget, clips=CLIPS):
    return next(t for t in figures if (t.comparison, t.signal, t.budget, t.val_clips) == (comparison, signal, budget, clips))


def test_early_ranks_reversed_against_truth_are_tau_minus_one() -> None:
    table = hand_made_table(reversing)
    figures = rank_figures(table, resamples=200)
    assert pick(figures, "truth", "accuracy", 1.0).tau == pytest.approx(-1.0)
    assert pick(figures, "truth", "accuracy", 2.0).tau == pytest.approx(1.0)
    assert pick(figures, "held-out truth", "accuracy", 0.5).tau == pytest.approx(-1.0)
    assert pick(figures, "seed to seed", "accuracy", 2.0).tau == pytest.approx(1.0)
    assert pick(figures, "truth", "accuracy", 2.0).n == 4
    markdown = stats_markdown(table, figures, noise_shares(table))
    assert "| accuracy | 20 | 4 | -1.00" in markdown


def test_noise_shares_match_an_independent_computation() -> None:
    table = hand_made_table(reversing)
    share = noise_shares(table)[-1]
    assert share.val_clips == CLIPS and share.pairs == 4
    final = np.array([[(4 + 3 * i + s) / CLIPS for s in (0, 1)] for i in range(4)])
    p = final.mean(axis=1)
    assert share.val_variance == pytest.approx(np.mean(p * (1 - p) / CLIPS))
    # the seeds differ by exactly one clip everywhere: the difference has no spread beyond clip sampling
    clip_noise = np.var(np.r_[np.zeros(CLIPS - 1), 1.0]) / CLIPS
    assert share.seed_variance == pytest.approx((0.0 - clip_noise) / 2)


def test_bootstrap_interval_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = x + rng.normal(scale=0.5, size=60)
    tau, low, high = bootstrap_tau(x, y, resamples=300)
    assert low < tau < high and 0.4 < tau < 0.9
    assert bootstrap_tau(x[:2], y[:2]) == (None, None, None)
