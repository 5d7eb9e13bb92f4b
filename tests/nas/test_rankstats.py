"""Rank agreement: the vectorised coefficients equal scipy's, and the bootstrap interval behaves."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from nas.rankstats import kendall_tau_b, rank_agreement, spearman_rho, top_k_overlap


def test_vectorised_tau_b_and_rho_equal_scipy_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, size=(20, 15)).astype(float)  # many ties
    y = x + rng.normal(0, 2, size=x.shape)
    taus, rhos = kendall_tau_b(x, y), spearman_rho(x, y)
    for row in range(len(x)):
        assert taus[row] == pytest.approx(stats.kendalltau(x[row], y[row]).statistic, abs=1e-12)
        assert rhos[row] == pytest.approx(stats.spearmanr(x[row], y[row]).statistic, abs=1e-12)


def test_constant_side_has_no_correlation():
    assert np.isnan(kendall_tau_b(np.ones(5), np.arange(5.0))[0])
    agreement = rank_agreement(np.ones(6), np.arange(6.0), top_k=2)
    assert agreement.tau is None and agreement.rho is None and agreement.tau_low is None


def test_interval_surrounds_the_estimate_and_collapses_for_a_perfect_ranking():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=30)
    noisy = rank_agreement(reference + rng.normal(0, 0.7, size=30), reference, top_k=5)
    assert noisy.tau_low < noisy.tau < noisy.tau_high and noisy.rho_low < noisy.rho < noisy.rho_high
    perfect = rank_agreement(3 * reference + 1, reference, top_k=5)
    assert (perfect.tau, perfect.tau_low, perfect.tau_high, perfect.top_k_overlap) == (1.0, 1.0, 1.0, 1.0)
    assert rank_agreement(-reference, reference, top_k=5).tau == -1.0


def test_missing_values_are_left_out_and_top_k_counts_shared_members():
    assert top_k_overlap(np.array([5.0, 4, 3, 2, 1]), np.array([1.0, 5, 4, 3, 2]), 2) == 0.5
    predicted = np.array([1.0, 2, np.nan, 4, 5])
    assert rank_agreement(predicted, np.arange(5.0), top_k=2).n == 4
