"""The comparison page: ``build_comparison(run_dirs, out) -> Path`` writes ``OUT/index.html`` and ``OUT/summary.md``.

Same conventions as a run's report (``reports/html.py``): one self-contained page, each figure's plotly JSON
readable back with :func:`reports.html.figure_specs`. Every figure draws all runs in one plot, so they share
axes by construction; every trace carries ``meta = {"group": ..., "run": label}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from reports.analysis import retrain_command, spec_summary
from reports.compare import Comparison, ComparedRun, best_architecture, compare_runs
from reports.figures import NamedFigure, axis_label, display
from reports.html import CSS, RENDER_SCRIPT, Raw, _e, figure_html, table
from reports.markdown import md_table
from reports.summary import plural
from space.files import atomic_dir, atomic_write

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _axes(comparison: Comparison) -> tuple[str, list[str]]:
    """(y column, x columns): accuracy against each cost, or the first objective against the others."""
    columns = [o.column for o in comparison.objectives]
    y = "accuracy" if "accuracy" in columns else columns[0]
    return y, [c for c in columns if c != y]


def fronts_figure(comparison: Comparison, x_column: str, y_column: str) -> NamedFigure:
    """Every run's front in one plot (a staircase when the front lives in these two axes)."""
    run0 = comparison.runs[0].run
    staircase = len(comparison.objectives) == 2
    figure = go.Figure()
    for index, compared in enumerate(comparison.runs):
        front = compared.front.dropna(subset=[x_column, y_column])
        x, y = display(x_column, front[x_column]), display(y_column, front[y_column])
        order = np.argsort(x, kind="stable")
        color = PALETTE[index % len(PALETTE)]
        figure.add_trace(go.Scatter(
            x=x[order], y=y[order],
            mode="lines+markers" if staircase else "markers",
            line={"shape": "hv", "color": color} if staircase else None,
            marker={"color": color, "size": 10, "symbol": index % 10},
            name=f"{compared.label} ({plural(len(front), 'point')})",
            customdata=front["trial_id"].to_numpy(int)[order],
            hovertext=[f"{compared.label}: trial {t}<br>{spec_summary(s)}"
                       for t, s in zip(front["trial_id"].iloc[order], front["spec"].iloc[order])],
            hoverinfo="text+x+y",
            meta={"group": "front", "run": compared.label},
        ))
    x_label, y_label = axis_label(run0, x_column), axis_label(run0, y_column)
    figure.update_layout(
        title=f"Pareto fronts: {y_label} vs {x_label}" + ("" if staircase else " (fronts on all objectives, drawn in two)"),
        xaxis_title=x_label, yaxis_title=y_label, legend={"orientation": "h", "y": -0.2},
    )
    short = {"gmacs": "gmacs", "latency_ms": "latency", "params": "params", "accuracy": "accuracy"}[x_column]
    return NamedFigure(f"compare-front-{short}", f"Fronts: {y_label} vs {x_label}", figure)


def hypervolume_figure(comparison: Comparison, *, against: str) -> NamedFigure:
    figure = go.Figure()
    for index, compared in enumerate(comparison.runs):
        history = compared.history
        if history is None or not len(history.values):
            continue
        x = history.elapsed_seconds / 60.0 if against == "clock" else history.trial_counts
        figure.add_trace(go.Scatter(
            x=x, y=history.values, mode="lines+markers", line={"shape": "hv", "color": PALETTE[index % len(PALETTE)]},
            name=compared.label, customdata=history.trial_ids,
            hovertemplate=f"{compared.label}: trial %{{customdata}}<br>%{{x:.3g}}<br>HV %{{y:.4f}}<extra></extra>",
            meta={"group": "hypervolume", "run": compared.label},
        ))
    reference = "(" + ", ".join(f"{v:g}" for v in comparison.reference_point) + ")"
    x_title = ("wall-clock since each run started (min)" if against == "clock"
               else "trained trials finished (COMPLETE + PRUNED + FAIL)")
    figure.update_layout(
        title=f"Hypervolume vs {'wall-clock' if against == 'clock' else 'trials'} "
        f"(shared normalisation, reference point {reference})",
        xaxis_title=x_title, yaxis_title="hypervolume (shared normalised objectives)",
    )
    return NamedFigure(f"compare-hypervolume-{against}", f"Hypervolume vs {against}", figure)


def comparison_figures(comparison: Comparison) -> list[NamedFigure]:
    y_column, x_columns = _axes(comparison)
    figures = [fronts_figure(comparison, x, y_column) for x in x_columns]
    return figures + [hypervolume_figure(comparison, against="clock"), hypervolume_figure(comparison, against="trials")]


# --------------------------------------------------------------------------------------------
# The table of runs
# --------------------------------------------------------------------------------------------


def run_rows(comparison: Comparison) -> list[dict[str, object]]:
    """One row per run: its final hypervolume on the shared normalisation and its best architecture."""
    rows = []
    for compared in comparison.runs:
        best = best_architecture(compared)
        trained = len(compared.history.values) if compared.history is not None else 0
        row: dict[str, object] = {
            "run": compared.label,
            "trained trials": trained,
            "front size": len(compared.front),
            "final hypervolume": round(compared.final_hypervolume, 6),
            "best architecture": "-" if best is None else f"trial {int(best['trial_id'])}: {spec_summary(best['spec'])}",
        }
        for objective in comparison.objectives:
            label = axis_label(compared.run, objective.column)
            row[label] = None if best is None else float(display(objective.column, [best[objective.column]])[0])
        row["re-train"] = "-" if best is None else retrain_command(compared.run, int(best["trial_id"]))
        rows.append(row)
    return rows


def _bounds_text(comparison: Comparison) -> str:
    return "; ".join(
        f"{o.name} ({o.direction}) [{o.bounds[0]:g}, {o.bounds[1]:g}]" for o in comparison.objectives if o.bounds
    )


def render_comparison_html(comparison: Comparison, figures: Sequence[NamedFigure]) -> str:
    rows = run_rows(comparison)
    headers = list(rows[0])
    cells = [[Raw(f"<code class=retrain>{_e(v)}</code>") if k == "re-train" else v for k, v in row.items()] for row in rows]
    reference = ", ".join(f"{o.name} = {r:g}" for o, r in zip(comparison.objectives, comparison.reference_point))
    notes = "".join(f"<li>{_e(n)}</li>" for n in comparison.notes)
    names = ", ".join(r.label for r in comparison.runs)
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    sources = table(["run", "directory"], [[r.label, str(r.run.run_dir.resolve())] for r in comparison.runs], table_id="runs")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>videonas comparison: {_e(names)}</title>
<style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>videonas comparison: {_e(plural(len(comparison.runs), 'run'))}</h1>
<p class="muted">generated {generated}</p>
<section id="section-summary"><h2>Summary</h2>
<p>All runs are normalised the same way: objectives mapped onto shared bounds ({_e(_bounds_text(comparison))}), 0 = best
bound, 1 = worst; <strong>reference point {_e(reference)}</strong>. "Best architecture" is each run's front point best on
{_e(comparison.objectives[0].name)}.</p>
{'<ul class="warnings" id="warnings">' + notes + '</ul>' if notes else ''}
{table(headers, cells, table_id="compare-table", row_ids=[r.label for r in comparison.runs])}
</section>
<section id="section-fronts"><h2>Pareto fronts on shared axes</h2>
{''.join(figure_html(f) for f in figures if f.id.startswith('compare-front-'))}
</section>
<section id="section-hypervolume"><h2>Hypervolume</h2>
{''.join(figure_html(f) for f in figures if f.id.startswith('compare-hypervolume-'))}
</section>
<section id="section-settings"><h2>Runs</h2><details id="settings"><summary>Run directories</summary>{sources}</details></section>
<script type="text/javascript">{RENDER_SCRIPT}</script>
</body></html>
"""


def render_comparison_markdown(comparison: Comparison) -> str:
    rows = run_rows(comparison)
    reference = ", ".join(f"{o.name} = {r:g}" for o, r in zip(comparison.objectives, comparison.reference_point))
    out = [f"# videonas comparison: {plural(len(comparison.runs), 'run')}", "", "## Summary", "",
           f"Shared normalisation: bounds {_bounds_text(comparison)}; reference point {reference}.", ""]
    if comparison.notes:
        out += ["**Warnings**", ""] + [f"- {n}" for n in comparison.notes] + [""]
    out += [md_table([k for k in rows[0] if k != "re-train"], [[v for k, v in r.items() if k != "re-train"] for r in rows]), ""]
    out += ["### Re-train each run's best architecture", ""]
    for row in rows:
        out += [f"{row['run']}:", "", "```sh", str(row["re-train"]), "```", ""]
    out += ["## Runs", ""] + [f"- {r.label}: `{r.run.run_dir.resolve()}`" for r in comparison.runs] + [""]
    return "\n".join(out)


def build_comparison(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Compare the runs into ``out/`` (created) and return the path of ``index.html``.

    Raises :class:`reports.load.ReportInputError` before writing anything when a run is unreadable or the
    runs optimise different objectives.
    """
    from reports.build import check_report_folder

    folder = Path(out)
    check_report_folder(folder)
    comparison = compare_runs(run_dirs)
    with atomic_dir(folder) as staged:  # swapped in whole: a comparison cut short keeps the earlier one
        atomic_write(staged / "summary.md", render_comparison_markdown(comparison))
        atomic_write(staged / "index.html", render_comparison_html(comparison, comparison_figures(comparison)))
    return folder / "index.html"


__all__ = ["ComparedRun", "build_comparison", "comparison_figures", "run_rows"]
