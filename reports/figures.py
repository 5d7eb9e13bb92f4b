"""The report's interactive figures (plotly), each a :class:`NamedFigure` with a stable id.

Every trace that draws trials carries the trial ids in ``customdata`` and its group in
``meta["group"]`` (``front``, ``dominated``, ``baseline``, ``pruned``, ``infeasible``, ``stage``), so
the page can be checked mechanically. Axes say their unit and, for costs, the shape or profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.analysis import front_candidates, sampled_params, spec_summary
from reports.findings import Findings
from reports.load import RunData
from reports.uncertainty import NOISE_Z, accuracy_error_bars

COLORS = {
    "front": "#d62728",
    "dominated": "#9e9e9e",
    "baseline": "#111111",
    "pruned": "#ff7f0e",
    "infeasible": "#9467bd",
}
SYMBOLS = {"front": "circle", "dominated": "circle", "baseline": "star", "pruned": "circle-open", "infeasible": "x"}
GROUP_NAMES = {
    "front": "Pareto front",
    "dominated": "dominated",
    "baseline": "baselines (catalog)",
    "pruned": "pruned (acc. at fidelity reached)",
    "infeasible": "infeasible (never trained; shown at 0%)",
}
COST_COLUMNS = ("gmacs", "latency_ms", "params")
SHORT_LABELS = {"accuracy": "accuracy (%)", "gmacs": "GMACs", "latency_ms": "latency (ms)", "params": "params (M)"}


@dataclass(frozen=True)
class NamedFigure:
    id: str  # stable element id, e.g. "pareto-gmacs"
    title: str
    figure: go.Figure


# --------------------------------------------------------------------------------------------
# Axes: units, shapes, display scaling
# --------------------------------------------------------------------------------------------


def _single_value(series: pd.Series) -> str | None:
    values = sorted({str(v) for v in series.dropna() if str(v)})
    return values[0] if len(values) == 1 else (", ".join(values) if values else None)


def axis_label(run: RunData, column: str) -> str:
    """Axis title with unit, and the deployment shape or latency profile the numbers belong to."""
    if column == "accuracy":
        return "proxy val top-1 (%)"
    if column == "gmacs":
        shape = _single_value(run.trials["deploy_shape"])
        return f"GMACs @ {shape}" if shape else "GMACs"
    if column == "latency_ms":
        profile = _single_value(run.trials["latency_profile"])
        shape = _single_value(run.trials["latency_shape"]) if "latency_shape" in run.trials else None  # older runs
        return f"latency (ms, median, profile {profile}{f' @ {shape}' if shape else ''})" if profile else "latency (ms, median)"
    if column == "params":
        return "parameters (M)"
    return column


def display(column: str, values: pd.Series | np.ndarray) -> np.ndarray:
    """Values as the axes show them: accuracy in percent, parameters in millions."""
    array = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
    if column == "accuracy":
        return array * 100.0
    if column == "params":
        return array / 1e6
    return array


def _hover(frame: pd.DataFrame) -> list[str]:
    lines = []
    for row in frame.itertuples(index=False):
        name = f" ({row.baseline})" if isinstance(row.baseline, str) and row.baseline else ""
        extra = f"<br>{row.error}" if isinstance(row.error, str) and row.error else ""
        lines.append(
            f"trial {row.trial_id}{name} [{row.status}]<br>{spec_summary(row.spec)}"
            f"<br>fidelity {row.fidelity}/{row.max_fidelity}{extra}"
        )
    return lines


# --------------------------------------------------------------------------------------------
# Pareto fronts
# --------------------------------------------------------------------------------------------


def _group_frames(findings: Findings) -> dict[str, pd.DataFrame]:
    g = findings.groups
    return {"dominated": g.dominated, "pruned": g.pruned, "infeasible": g.infeasible, "baseline": g.baselines,
            "front": g.front}


def _y_values(group: str, frame: pd.DataFrame) -> np.ndarray:
    accuracy = display("accuracy", frame["accuracy"])
    if group == "infeasible":
        return np.nan_to_num(accuracy, nan=0.0)
    return accuracy


def _is_objective_pair(run: RunData, x_column: str) -> bool:
    return {o.column for o in run.objectives} == {x_column, "accuracy"}


def pareto_2d(run: RunData, findings: Findings, x_column: str) -> NamedFigure:
    """Accuracy against one cost, every group of trials distinguishable."""
    figure = go.Figure()
    for group, frame in _group_frames(findings).items():
        frame = frame[frame[x_column].notna()]
        x, y = display(x_column, frame[x_column]), _y_values(group, frame)
        keep = ~np.isnan(y)
        frame, x, y = frame[keep], x[keep], y[keep]
        if group != "front" and frame.empty:
            continue
        line_front = group == "front" and _is_objective_pair(run, x_column)
        hover = _hover(frame)
        order = np.argsort(x, kind="stable") if line_front else np.arange(len(x))
        figure.add_trace(
            go.Scatter(
                x=x[order],
                y=y[order],
                mode="lines+markers" if line_front else ("markers+text" if group == "baseline" else "markers"),
                line={"shape": "hv", "color": COLORS[group]} if line_front else None,
                marker={"color": COLORS[group], "symbol": SYMBOLS[group], "size": 11 if group == "front" else 8},
                error_y=accuracy_error_bars(frame.iloc[order]) if group != "infeasible" else None,
                opacity=0.55 if group == "dominated" else 1.0,
                text=list(frame["baseline"].iloc[order]) if group == "baseline" else None,
                textposition="top center",
                name=f"{GROUP_NAMES[group]} ({len(frame)})",
                customdata=frame["trial_id"].to_numpy(int)[order],
                hovertext=[hover[i] for i in order],
                hoverinfo="text+x+y",
                meta={"group": group},
            )
        )
    x_label = axis_label(run, x_column)
    figure.update_layout(
        title=f"Pareto front: accuracy vs {x_label}" + (
            f" (bars: +-{NOISE_Z:g} standard errors)" if "accuracy_se" in run.trials and run.trials["accuracy_se"].notna().any() else ""),
        xaxis_title=x_label,
        yaxis_title=axis_label(run, "accuracy"),
        legend={"orientation": "h", "y": -0.2},
    )
    short = {"gmacs": "gmacs", "latency_ms": "latency", "params": "params"}[x_column]
    return NamedFigure(f"pareto-{short}", f"Accuracy vs {x_label}", figure)


def pareto_3d(run: RunData, findings: Findings) -> NamedFigure:
    """The first three objectives in 3-D (the front, dominated, baselines)."""
    columns = [o.column for o in run.objectives[:3]]
    figure = go.Figure()
    frames = {k: v for k, v in _group_frames(findings).items() if k in ("dominated", "baseline", "front")}
    for group, frame in frames.items():
        frame = frame.dropna(subset=columns)
        if group != "front" and frame.empty:
            continue
        figure.add_trace(
            go.Scatter3d(
                x=display(columns[0], frame[columns[0]]),
                y=display(columns[1], frame[columns[1]]),
                z=display(columns[2], frame[columns[2]]),
                mode="markers",
                marker={"color": COLORS[group], "symbol": "diamond" if group == "baseline" else "circle",
                        "size": 6 if group == "front" else 4},
                opacity=0.5 if group == "dominated" else 1.0,
                name=f"{GROUP_NAMES[group]} ({len(frame)})",
                customdata=frame["trial_id"].to_numpy(int),
                hovertext=_hover(frame),
                hoverinfo="text",
                meta={"group": group},
            )
        )
    labels = [axis_label(run, c) for c in columns]
    figure.update_layout(
        title="Pareto front in 3-D: " + " / ".join(labels),
        scene={"xaxis_title": labels[0], "yaxis_title": labels[1], "zaxis_title": labels[2], "aspectmode": "cube",
               "camera": {"eye": {"x": 1.7, "y": 1.7, "z": 1.0}}},
        height=700,
        margin={"l": 0, "r": 0, "t": 60, "b": 0},
    )
    return NamedFigure("pareto-3d", "The first three objectives in 3-D", figure)


def evolution_axes(run: RunData) -> tuple[str, str]:
    """(x, y) columns the front evolution is drawn in: accuracy against the first cost objective."""
    costs = [o.column for o in run.objectives if o.column != "accuracy"]
    return (costs[0] if costs else "gmacs"), "accuracy"


def front_evolution_figure(run: RunData, findings: Findings) -> NamedFigure:
    x_column, y_column = evolution_axes(run)
    total = findings.evolution[-1][0] if findings.evolution else 0
    steps = _is_objective_pair(run, x_column)  # a staircase only when the front lives in these two axes
    figure = go.Figure()
    for index, (count, front) in enumerate(findings.evolution):
        front = front.dropna(subset=[x_column, y_column])
        x, y = display(x_column, front[x_column]), display(y_column, front[y_column])
        order = np.argsort(x, kind="stable")
        last = index == len(findings.evolution) - 1
        hover = _hover(front)
        figure.add_trace(
            go.Scatter(
                x=x[order],
                y=y[order],
                mode="lines+markers" if steps else "markers",
                line={"shape": "hv", "width": 3 if last else 1.5},
                marker={"size": 11 if last else 7, "symbol": "circle" if last else "circle-open"},
                opacity=1.0 if last else 0.35 + 0.5 * index / max(1, len(findings.evolution) - 1),
                name=f"after {count} of {total} trained trials ({len(front)} on the front)",
                customdata=front["trial_id"].to_numpy(int)[order],
                hovertext=[hover[i] for i in order],
                hoverinfo="text+x+y",
                meta={"group": "stage", "trained_trials": count},
            )
        )
    figure.update_layout(
        title="How the front evolved" + ("" if steps else " (fronts on all objectives, drawn in two)"),
        xaxis_title=axis_label(run, x_column),
        yaxis_title=axis_label(run, y_column),
    )
    return NamedFigure("front-evolution", "Front evolution", figure)


# --------------------------------------------------------------------------------------------
# Hypervolume
# --------------------------------------------------------------------------------------------


def _reference_text(run: RunData) -> str:
    return "(" + ", ".join(f"{v:g}" for v in run.reference_point) + ")"


def hypervolume_figure(run: RunData, findings: Findings, *, against: str) -> NamedFigure:
    history = findings.hypervolume
    assert history is not None
    if against == "clock":
        x, x_title, id_ = history.elapsed_seconds / 60.0, "wall-clock since the run started (min)", "hypervolume-clock"
    else:
        x, x_title, id_ = history.trial_counts, "trained trials finished (COMPLETE + PRUNED + FAIL)", "hypervolume-trials"
    figure = go.Figure(
        go.Scatter(
            x=x,
            y=history.values,
            mode="lines+markers",
            line={"shape": "hv"},
            customdata=history.trial_ids,
            hovertemplate="trial %{customdata}<br>%{x:.3g}<br>HV %{y:.4f}<extra></extra>",
            name="hypervolume",
            meta={"group": "hypervolume"},
        )
    )
    figure.update_layout(
        title=f"Hypervolume vs {'wall-clock' if against == 'clock' else 'trials'} "
        f"(normalised objectives, reference point {_reference_text(run)})",
        xaxis_title=x_title,
        yaxis_title="hypervolume (normalised objectives)",
    )
    return NamedFigure(id_, f"Hypervolume vs {'wall-clock' if against == 'clock' else 'trials'}", figure)


# --------------------------------------------------------------------------------------------
# Importance, parallel coordinates, gates, pruning, retraining
# --------------------------------------------------------------------------------------------


def importance_figure(run: RunData, findings: Findings) -> NamedFigure:
    per_objective = findings.importance.per_objective
    params = sorted({p for scores in per_objective.values() for p in scores})
    figure = go.Figure()
    for name, scores in per_objective.items():
        figure.add_trace(
            go.Bar(y=params, x=[scores.get(p, 0.0) for p in params], orientation="h", name=name, meta={"group": name})
        )
    figure.update_layout(
        title=f"Parameter importance per objective (PED-ANOVA over {findings.importance.n_trials} trials)",
        xaxis_title="importance (share of the objective, sums to 1)",
        barmode="group",
        height=160 + 18 * len(params) * max(1, len(per_objective)),
    )
    return NamedFigure("importance", "Parameter importance", figure)


def _dimension(label: str, values: list) -> dict:
    """A parcoords axis; categorical and missing values become ticks ("n/a" = parameter not used)."""
    numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
    if len(numeric) == len(values):
        return {"label": label, "values": [float(v) for v in values]}
    if not numeric or len(numeric) < len([v for v in values if v is not None]):
        choices = sorted({str(v) for v in values if v is not None})
        codes = [choices.index(str(v)) if v is not None else len(choices) for v in values]
        ticks = choices + (["n/a"] if None in values else [])
        return {"label": label, "values": codes, "tickvals": list(range(len(ticks))), "ticktext": ticks}
    low, high = min(numeric), max(numeric)
    missing = low - 0.1 * ((high - low) or 1.0)
    tickvals = [*np.linspace(low, high, 5).tolist(), missing]
    return {
        "label": label,
        "values": [float(v) if v is not None else missing for v in values],
        "tickvals": tickvals,
        "ticktext": [f"{t:.3g}" for t in tickvals[:-1]] + ["n/a"],
    }


def parallel_figure(run: RunData, findings: Findings) -> NamedFigure:
    candidates = front_candidates(run)
    params = [sampled_params(text) for text in candidates["params_json"]]
    names = sorted({k for p in params for k in p})
    dimensions = [_dimension(name, [p.get(name) for p in params]) for name in names]
    for objective in run.objectives:
        dimensions.append({"label": SHORT_LABELS.get(objective.column, objective.column),
                           "values": display(objective.column, candidates[objective.column]).tolist()})
    color_column = "accuracy" if "accuracy" in candidates else run.objectives[0].column
    figure = go.Figure(
        go.Parcoords(
            line={"color": display(color_column, candidates[color_column]), "colorscale": "Viridis",
                  "showscale": True, "colorbar": {"title": SHORT_LABELS.get(color_column, color_column)}},
            dimensions=dimensions,
            meta={"group": "parallel", "trial_ids": candidates["trial_id"].astype(int).tolist()},
        )
    )
    figure.update_layout(
        title=f"Parallel coordinates: sampled parameters and objectives ({len(candidates)} completed trials; "
        f"GMACs @ {_single_value(run.trials['deploy_shape']) or '?'}, latency on {_single_value(run.trials['latency_profile']) or '?'})",
        margin={"t": 110},
    )
    return NamedFigure("parallel", "Parallel coordinates", figure)


def gates_figure(run: RunData, findings: Findings) -> NamedFigure:
    gates = findings.gates
    assert gates is not None
    text = np.where(gates.single_frame, "T=1", np.where(np.isnan(gates.rates), "", np.char.mod("%.2f", np.nan_to_num(gates.rates))))
    figure = go.Figure(
        go.Heatmap(
            z=gates.rates,
            x=gates.blocks,
            y=[f"trial {t}" for t in gates.trial_ids],
            text=text,
            texttemplate="%{text}",
            zmin=0.0,
            zmax=1.0,
            colorscale="Blues",
            colorbar={"title": "open rate"},
            hovertemplate="%{y}<br>%{x}<br>open rate %{z:.3f}<extra></extra>",
            meta={"group": "gates", "trial_ids": gates.trial_ids},
        )
    )
    figure.update_layout(
        title="SRTG gate open-rate per block (share of clips whose gate fused; T=1: no temporal gate)",
        xaxis_title="SRTG block",
        height=max(300, 120 + 24 * len(gates.trial_ids)),
    )
    return NamedFigure("gates", "SRTG gate open-rates", figure)


def pruning_figure(run: RunData, findings: Findings) -> NamedFigure:
    pruned = findings.groups.pruned
    counts = pruned["fidelity"].value_counts().sort_index()
    max_fidelity = _single_value(run.trials["max_fidelity"].map(lambda v: f"{v:g}" if v == v else None))
    figure = go.Figure(go.Bar(x=counts.index.astype(float), y=counts.to_numpy(int), name="pruned", meta={"group": "pruned"}))
    figure.update_layout(
        title=f"Where pruned trials stopped ({len(pruned)} pruned)",
        xaxis={"title": f"proxy epochs reached (budget {max_fidelity or '?'})", "dtick": 1},
        yaxis_title="trials",
    )
    return NamedFigure("pruning", "Pruning", figure)


def retrain_figure(run: RunData, findings: Findings) -> NamedFigure:
    comparison = findings.retrain
    assert comparison is not None
    rows = comparison.rows
    figure = go.Figure(
        go.Scatter(
            x=rows["proxy"] * 100,
            y=rows["full"] * 100,
            mode="markers+text",
            text=[f"#{t}" if full else f"#{t} ({scale})" for t, full, scale in
                  zip(rows["trial_id"], rows["full_scale"], rows["scale"])],
            marker={"symbol": ["circle" if full else "circle-open" for full in rows["full_scale"]]},
            textposition="top center",
            customdata=rows["trial_id"].to_numpy(int),
            name="retrained",
            meta={"group": "retrain"},
        )
    )
    tau = "n/a" if comparison.kendall_tau is None else f"{comparison.kendall_tau:.3f}"
    rho = "n/a" if comparison.spearman_rho is None else f"{comparison.spearman_rho:.3f}"
    figure.update_layout(
        title=f"Proxy vs full-scale accuracy (Kendall tau {tau}, Spearman rho {rho}, n = {comparison.n_full_scale} "
              "full-scale; open: short retrains)",
        xaxis_title=axis_label(run, "accuracy"),
        yaxis_title="retrained top-1 (%)",
    )
    return NamedFigure("proxy-vs-full", "Proxy vs full-scale accuracy", figure)


# --------------------------------------------------------------------------------------------
# The list
# --------------------------------------------------------------------------------------------


def pareto_x_columns(run: RunData, findings: Findings) -> list[str]:
    """Costs accuracy is drawn against: GMACs and latency always (when measured), params when an objective."""
    objective_columns = {o.column for o in run.objectives}
    columns = []
    for column in COST_COLUMNS:
        if column == "params" and column not in objective_columns:
            continue
        if findings.groups.front[column].notna().any() or findings.groups.dominated[column].notna().any():
            columns.append(column)
    return columns


def build_figures(run: RunData, findings: Findings) -> list[NamedFigure]:
    """Every figure of the report, in page order (sections with nothing to draw have none)."""
    figures: list[NamedFigure] = []
    if findings.n_candidates:
        figures += [pareto_2d(run, findings, column) for column in pareto_x_columns(run, findings)]
        if len(run.objectives) >= 3:
            figures.append(pareto_3d(run, findings))
        figures.append(front_evolution_figure(run, findings))
    if findings.hypervolume is not None and findings.n_candidates:
        figures.append(hypervolume_figure(run, findings, against="clock"))
        figures.append(hypervolume_figure(run, findings, against="trials"))
    if findings.importance.per_objective:
        figures.append(importance_figure(run, findings))
    if findings.n_candidates >= 2:
        figures.append(parallel_figure(run, findings))
    if findings.gates is not None:
        figures.append(gates_figure(run, findings))
    if len(findings.groups.pruned):
        figures.append(pruning_figure(run, findings))
    if findings.retrain is not None:
        figures.append(retrain_figure(run, findings))
    return figures
