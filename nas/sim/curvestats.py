"""How much a benchmark table's proxy readings can be trusted: rank agreement and noise (``docs/bench/bench-table.md``).

For every budget b of a table (:class:`~nas.sim.curvetable.CurveTable`) and every rank signal (validation top-1,
validation loss, training loss since the previous evaluation; losses ranked lower-is-better):

* **vs truth**: Kendall tau-b of seed 0's reading at b against truth (the seed-mean accuracy at the largest
  budget), over every architecture, with a bootstrap 95% interval (architectures resampled);
* **vs held-out truth**: on architectures with two seeds, seed 0's reading at b against seed 1's accuracy at the
  largest budget (no shared training noise: at the largest budget this is the seed-to-seed tau);
* **seed to seed**: seed 0's reading against seed 1's at the same budget;
* each again on 100, 250 and 500 validation clips (a fixed, seeded subset of the stored per-clip correctness
  and loss, the same clips for every architecture), so the value of a larger validation set is measured, not
  assumed;
* **noise shares** at the largest budget: the binomial variance of one reading's accuracy (validation set
  sampling, p(1-p)/n) beside the training-seed variance, estimated from seed pairs as
  (Var(a0 - a1) - mean over architectures of Var_clip(c0 - c1) / n) / 2 (the second term removes the clip
  sampling noise of the difference: both seeds are read on the same clips).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from nas.rankstats import kendall_tau_b
from nas.sim.curvetable import CurveTable, unpack_correct, unpack_loss

SIGNALS = ("accuracy", "val_loss", "train_loss")
CLIP_COUNTS = (100, 250, 500)


@dataclass(frozen=True)
class Tau:
    """One rank agreement: Kendall tau-b with its bootstrap 95% interval over ``n`` architectures."""

    comparison: str  # "truth", "held-out truth", "seed to seed"
    signal: str
    budget: float
    val_clips: int
    n: int
    tau: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class NoiseShare:
    """Variance of one accuracy reading at the largest budget, split into validation-set and training-seed parts."""

    val_clips: int
    val_variance: float
    seed_variance: float
    pairs: int

    @property
    def val_share(self) -> float:
        total = self.val_variance + max(self.seed_variance, 0.0)
        return self.val_variance / total if total > 0 else float("nan")


def bootstrap_tau(x: np.ndarray, y: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                  chunk: int = 50) -> tuple[float | None, float | None, float | None]:
    """Kendall tau-b of (x, y) and its percentile 95% interval; resampled in chunks (memory grows with n^2)."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return None, None, None
    tau = float(kendall_tau_b(x, y)[0])
    rows = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    values = np.concatenate([kendall_tau_b(x[rows[i:i + chunk]], y[rows[i:i + chunk]]) for i in range(0, resamples, chunk)])
    values = values[np.isfinite(values)]
    low, high = (np.percentile(values, [2.5, 97.5]) if values.size else (np.nan, np.nan))
    return tau, float(low), float(high)


class _Readings:
    """Per (architecture, seed, budget): the three signals on all clips or on a fixed subset of them."""

    def __init__(self, table: CurveTable, clips: np.ndarray | None) -> None:
        rows = table.ok_rows()
        n = table.val_clips
        self.values: dict[tuple[str, int, float], dict[str, float]] = {}
        for key, seed, budget, acc, vloss, tloss, blob, lblob in zip(
                rows["spec_key"], rows["seed"], rows["budget"], rows["accuracy"], rows["val_loss"], rows["train_loss"],
                rows["correct"], rows["clip_loss"]):
            if clips is not None:
                acc = float(unpack_correct(blob, n)[clips].mean())
                vloss = float(unpack_loss(lblob)[clips].mean())
            # every signal higher-is-better, so tau against accuracy is positive when a signal agrees
            self.values[(key, int(seed), float(budget))] = {"accuracy": acc, "val_loss": -vloss, "train_loss": -tloss}

    def vector(self, keys: list[str], seed: int, budget: float, signal: str) -> np.ndarray:
        return np.array([self.values.get((k, seed, budget), {}).get(signal, np.nan) for k in keys])


def rank_figures(table: CurveTable, *, resamples: int = 1000, seed: int = 0) -> list[Tau]:
    """Every comparison x signal x budget x validation-set size (see the module docstring)."""
    keys = table.architectures()
    truth = table.truth().reindex(keys).to_numpy()
    paired = [k for k in keys if {0, 1} <= set(table.seeds_of(k))]
    final = table.budgets[-1]
    figures: list[Tau] = []
    rng = np.random.default_rng(seed)
    subsets = [(n, np.sort(rng.choice(table.val_clips, size=n, replace=False))) for n in CLIP_COUNTS
               if n < table.val_clips] + [(table.val_clips, None)]
    for clips, subset in subsets:
        readings = _Readings(table, subset)
        held_out = readings.vector(paired, 1, final, "accuracy")
        for budget in table.budgets:
            for signal in SIGNALS:
                if signal == "train_loss" and subset is not None:
                    continue  # training loss does not depend on the validation set
                size = clips if signal != "train_loss" else 0
                reading = readings.vector(keys, 0, budget, signal)
                comparisons = [("truth", reading, truth, len(keys)),
                               ("held-out truth", readings.vector(paired, 0, budget, signal), held_out, len(paired)),
                               ("seed to seed", readings.vector(paired, 0, budget, signal),
                                readings.vector(paired, 1, budget, signal), len(paired))]
                for name, x, y, n in comparisons:
                    tau, low, high = bootstrap_tau(x, y, resamples=resamples, seed=seed)
                    figures.append(Tau(name, signal, budget, size, n, tau, low, high))
    return figures


def noise_shares(table: CurveTable) -> list[NoiseShare]:
    """Validation-set against training-seed variance of one accuracy reading at the largest budget."""
    final = table.budgets[-1]
    correct = table.correctness(final)
    pairs = [(correct[(k, 0)], correct[(k, 1)]) for k in table.architectures() if (k, 0) in correct and (k, 1) in correct]
    shares = []
    for n in CLIP_COUNTS + (table.val_clips,):
        if n > table.val_clips or not pairs:
            continue
        p = np.array([(a.mean() + b.mean()) / 2 for a, b in pairs])
        val_variance = float(np.mean(p * (1 - p) / n))
        differences = np.array([a.mean() - b.mean() for a, b in pairs])
        clip_noise = np.mean([np.var(a.astype(float) - b.astype(float)) / table.val_clips for a, b in pairs])
        seed_variance = float((np.var(differences, ddof=1) - clip_noise) / 2) if len(pairs) > 1 else float("nan")
        shares.append(NoiseShare(n, val_variance, seed_variance, len(pairs)))
    return shares


def stats_markdown(table: CurveTable, figures: list[Tau], shares: list[NoiseShare]) -> str:
    """The figures as the datasheet's tables."""
    def cell(t: Tau) -> str:
        if t.tau is None:
            return "n/a"
        return f"{t.tau:.2f} [{t.low:.2f}, {t.high:.2f}]"

    lines = [f"Architectures: {len(table.architectures())}; with two seeds: "
             f"{sum(1 for k in table.architectures() if len(table.seeds_of(k)) > 1)}; budgets (epochs): "
             f"{', '.join(f'{b:g}' for b in table.budgets)}; validation clips: {table.val_clips}.", ""]
    for comparison in ("truth", "held-out truth", "seed to seed"):
        lines += [f"Kendall tau-b, {comparison} (bootstrap 95% interval; n = architectures):", "",
                  "| signal | val clips | n | " + " | ".join(f"{b:g} ep" for b in table.budgets) + " |",
                  "|---|---|---|" + "---|" * len(table.budgets)]
        groups: dict[tuple[str, int], list[Tau]] = {}
        for t in figures:
            if t.comparison == comparison:
                groups.setdefault((t.signal, t.val_clips), []).append(t)
        for (signal, clips), row in groups.items():
            lines.append(f"| {signal} | {clips or 'n/a'} | {row[0].n} | " + " | ".join(cell(t) for t in row) + " |")
        lines.append("")
    lines += ["Variance of one accuracy reading at the largest budget:", "",
              "| val clips | validation-set variance | training-seed variance | validation share | pairs |",
              "|---|---|---|---|---|"]
    lines += [f"| {s.val_clips} | {s.val_variance:.2e} | {s.seed_variance:.2e} | {s.val_share:.0%} | {s.pairs} |"
              for s in shares]
    return "\n".join(lines) + "\n"


def stats_dict(figures: list[Tau], shares: list[NoiseShare]) -> dict:
    return {"taus": [asdict(t) for t in figures],
            "noise": [{**asdict(s), "val_share": s.val_share} for s in shares]}
