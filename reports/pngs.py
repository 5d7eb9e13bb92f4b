"""Static PNGs (matplotlib) of the main figures, for summary.md, papers and slides."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: reports are written on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from reports.figures import COLORS, GROUP_NAMES, axis_label, display, pareto_x_columns  # noqa: E402
from reports.findings import Findings  # noqa: E402
from reports.load import RunData  # noqa: E402

MARKERS = {"front": "o", "dominated": "o", "baseline": "*", "pruned": "o", "infeasible": "x"}


def write_pngs(run: RunData, findings: Findings, folder: Path) -> list[Path]:
    """Write the PNGs into ``folder`` and return their paths (none when nothing completed)."""
    written: list[Path] = []
    if findings.n_candidates:
        for column in pareto_x_columns(run, findings):
            written.append(_pareto_png(run, findings, column, folder))
        if findings.hypervolume is not None:
            written.append(_hypervolume_png(run, findings, folder))
    if findings.importance.per_objective:
        written.append(_importance_png(findings, folder))
    if findings.gates is not None:
        written.append(_gates_png(findings, folder))
    if findings.retrain is not None:
        written.append(_retrain_png(run, findings, folder))
    return written


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _pareto_png(run: RunData, findings: Findings, x_column: str, folder: Path) -> Path:
    g = findings.groups
    frames = {"dominated": g.dominated, "pruned": g.pruned, "infeasible": g.infeasible, "baseline": g.baselines, "front": g.front}
    figure, ax = plt.subplots(figsize=(7.5, 5))
    for group, frame in frames.items():
        frame = frame[frame[x_column].notna()]
        if frame.empty:
            continue
        x = display(x_column, frame[x_column])
        y = display("accuracy", frame["accuracy"])
        if group == "infeasible":
            y = np.nan_to_num(y, nan=0.0)
        style = {"facecolors": "none", "edgecolors": COLORS[group]} if group == "pruned" else {"c": COLORS[group]}
        ax.scatter(x, y, marker=MARKERS[group], s=70 if group in ("front", "baseline") else 30,
                   label=f"{GROUP_NAMES[group]} ({len(frame)})", zorder=3 if group == "front" else 2, **style)
        if group == "front":
            order = np.argsort(x)
            ax.step(x[order], y[order], where="post", color=COLORS[group], alpha=0.5)
        if group == "baseline":
            for xi, yi, name in zip(x, y, frame["baseline"]):
                ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(axis_label(run, x_column))
    ax.set_ylabel(axis_label(run, "accuracy"))
    ax.set_title(f"{run.name}: accuracy vs {x_column}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(figure, folder / f"pareto_{x_column}.png")


def _hypervolume_png(run: RunData, findings: Findings, folder: Path) -> Path:
    history = findings.hypervolume
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    reference = "(" + ", ".join(f"{v:g}" for v in run.reference_point) + ")"
    left.step(history.elapsed_seconds / 60.0, history.values, where="post", marker=".")
    left.set_xlabel("wall-clock since the run started (min)")
    right.step(history.trial_counts, history.values, where="post", marker=".")
    right.set_xlabel("trained trials finished")
    for ax in (left, right):
        ax.set_ylabel(f"hypervolume (normalised, ref {reference})")
        ax.grid(alpha=0.3)
    figure.suptitle(f"{run.name}: hypervolume")
    return _save(figure, folder / "hypervolume.png")


def _importance_png(findings: Findings, folder: Path) -> Path:
    per_objective = findings.importance.per_objective
    params = sorted({p for scores in per_objective.values() for p in scores})
    figure, ax = plt.subplots(figsize=(7.5, 1.5 + 0.4 * len(params) * max(1, len(per_objective)) / 2))
    height = 0.8 / max(1, len(per_objective))
    for i, (name, scores) in enumerate(per_objective.items()):
        ax.barh(np.arange(len(params)) + i * height, [scores.get(p, 0.0) for p in params], height=height, label=name)
    ax.set_yticks(np.arange(len(params)) + 0.4 - height / 2, params)
    ax.set_xlabel("importance (PED-ANOVA, sums to 1 per objective)")
    ax.legend(fontsize=8)
    return _save(figure, folder / "importance.png")


def _gates_png(findings: Findings, folder: Path) -> Path:
    gates = findings.gates
    figure, ax = plt.subplots(figsize=(1.5 + 0.7 * len(gates.blocks), 1.5 + 0.3 * len(gates.trial_ids)))
    image = ax.imshow(np.ma.masked_invalid(gates.rates), vmin=0, vmax=1, cmap="Blues", aspect="auto")
    for i, j in zip(*np.nonzero(gates.single_frame)):
        ax.text(j, i, "T=1", ha="center", va="center", fontsize=7, color="#444")
    ax.set_xticks(range(len(gates.blocks)), gates.blocks, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(gates.trial_ids)), [f"trial {t}" for t in gates.trial_ids], fontsize=7)
    figure.colorbar(image, ax=ax, label="gate open rate")
    return _save(figure, folder / "gates.png")


def _retrain_png(run: RunData, findings: Findings, folder: Path) -> Path:
    rows = findings.retrain.rows
    figure, ax = plt.subplots(figsize=(5.5, 5))
    full = rows["full_scale"].to_numpy(bool)
    ax.scatter(rows["proxy"][full] * 100, rows["full"][full] * 100, label="full-scale")
    if not full.all():  # short retrains: open markers, their scale beside the trial (docs/retrain.md)
        ax.scatter(rows["proxy"][~full] * 100, rows["full"][~full] * 100, facecolors="none", edgecolors="C1",
                   label="short retrain")
    for t, x, y, ok, scale in zip(rows["trial_id"], rows["proxy"] * 100, rows["full"] * 100, full, rows["scale"]):
        ax.annotate(f"#{t}" if ok else f"#{t} ({scale})", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(axis_label(run, "accuracy"))
    ax.set_ylabel("retrained top-1 (%)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(figure, folder / "proxy_vs_full.png")
