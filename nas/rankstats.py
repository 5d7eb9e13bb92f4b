"""Rank agreement between a predictor and a reference: Kendall tau-b, Spearman rho, bootstrap intervals, top-k.

The bootstrap resamples architectures (rows) with replacement and recomputes both coefficients on every
resample at once: tau-b from the sign matrices of all pairs (``sum sx*sy / sqrt(sum sx^2 * sum sy^2)``, so
the ties a resample creates by repeating an architecture are handled as tau-b handles ties), rho as the
Pearson correlation of average ranks. The interval is the percentile interval of the resamples that are
defined (a resample where one side is constant has no correlation and is left out).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = ["RankAgreement", "rank_agreement", "kendall_tau_b", "spearman_rho", "top_k_overlap"]


@dataclass(frozen=True)
class RankAgreement:
    """``n`` architectures with both values; None where a coefficient is undefined (a constant side)."""

    n: int
    tau: float | None
    tau_low: float | None
    tau_high: float | None
    rho: float | None
    rho_low: float | None
    rho_high: float | None
    top_k: int
    top_k_overlap: float | None  # |top-k by predictor & top-k by reference| / k

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair of ``x`` and ``y`` (R x n arrays); NaN where a row is constant."""
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    upper = np.triu_indices(x.shape[1], k=1)
    sx = np.sign(x[:, :, None] - x[:, None, :])[:, upper[0], upper[1]]
    sy = np.sign(y[:, :, None] - y[:, None, :])[:, upper[0], upper[1]]
    denominator = np.sqrt((sx * sx).sum(1) * (sy * sy).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (sx * sy).sum(1) / denominator, np.nan)


def spearman_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho (Pearson of average ranks) of each row pair; NaN where a row is constant."""
    rx = stats.rankdata(np.atleast_2d(x), axis=1)
    ry = stats.rankdata(np.atleast_2d(y), axis=1)
    rx = rx - rx.mean(1, keepdims=True)
    ry = ry - ry.mean(1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(1) / denominator, np.nan)


def top_k_overlap(predicted: np.ndarray, reference: np.ndarray, k: int) -> float:
    """Share of the reference's k best (highest) that are among the predictor's k best (ties: stable order)."""
    best_predicted = set(np.argsort(-predicted, kind="stable")[:k].tolist())
    best_reference = set(np.argsort(-reference, kind="stable")[:k].tolist())
    return len(best_predicted & best_reference) / k


def _interval(values: np.ndarray) -> tuple[float | None, float | None]:
    defined = values[np.isfinite(values)]
    if defined.size == 0:
        return None, None
    low, high = np.percentile(defined, [2.5, 97.5])
    return float(low), float(high)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def rank_agreement(
    predicted: np.ndarray, reference: np.ndarray, *, top_k: int, resamples: int = 2000, seed: int = 0
) -> RankAgreement:
    """Agreement of ``predicted`` with ``reference`` over the architectures where both are finite."""
    predicted, reference = np.asarray(predicted, float), np.asarray(reference, float)
    keep = np.isfinite(predicted) & np.isfinite(reference)
    predicted, reference = predicted[keep], reference[keep]
    n = int(keep.sum())
    k = min(top_k, n)
    if n < 3:
        return RankAgreement(n, None, None, None, None, None, None, k, None)
    rows = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    tau_low, tau_high = _interval(kendall_tau_b(predicted[rows], reference[rows]))
    rho_low, rho_high = _interval(spearman_rho(predicted[rows], reference[rows]))
    return RankAgreement(
        n=n,
        tau=_finite(kendall_tau_b(predicted, reference)[0]),
        tau_low=tau_low,
        tau_high=tau_high,
        rho=_finite(spearman_rho(predicted, reference)[0]),
        rho_low=rho_low,
        rho_high=rho_high,
        top_k=k,
        top_k_overlap=top_k_overlap(predicted, reference, k),
    )
