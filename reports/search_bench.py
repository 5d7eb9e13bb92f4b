"""The ``nas bench search`` report: hypervolume against simulated wall-clock per strategy, HTML and Markdown.

Renders the plain results dict :func:`nas.sim.compare.summarise` builds (JSON-ready, infinite times as
``None``), with the conventions of a run's report (:mod:`reports.html`): one self-contained page, each
figure's plotly JSON readable back with :func:`reports.html.figure_specs`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from reports.figures import NamedFigure
from reports.html import CSS, RENDER_SCRIPT, _e, figure_html, table
from reports.markdown import md_table

COLOURS = {"fifo": "#1f77b4", "asha": "#2ca02c", "moasha": "#d62728"}
X_LABEL = "simulated wall-clock (s)"
Y_LABEL = "hypervolume (normalised objectives, reference point 1)"


def strategy_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per strategy: the figures the tables show."""
    rows = []
    for s in results["strategies"]:
        share = s["time_to_target_share"]
        rows.append({
            "strategy": f"{s['sampler']} + {s['scheduler']}",
            "final HV (median)": round(s["final_hv_median"], 4),
            "final HV IQR": f"{s['final_hv_iqr'][0]:.4f} to {s['final_hv_iqr'][1]:.4f}",
            "regret (best - median)": round(s["regret_median"], 4),
            "trials trained (median)": s["trained_median"],
            "time to random+fifo's HV (median s)": "not reached" if share is None else round(s["time_to_target_median"], 1),
            "share of budget": "-" if share is None else f"{100 * share:.0f}%",
            "seeds reaching it": f"{s['reached_target']}/{len(s['seeds'])}",
        })
    return rows


def _figure(results: dict, strategies: list[dict], figure_id: str, title: str, bands: bool) -> NamedFigure:
    times = results["times"]
    figure = go.Figure()
    for s in strategies:
        name = f"{s['sampler']} + {s['scheduler']}"
        colour = COLOURS.get(s["scheduler"], "#555")
        if bands:
            figure.add_trace(go.Scatter(x=times + times[::-1], y=s["curve_q75"] + s["curve_q25"][::-1], fill="toself",
                                        line={"width": 0}, fillcolor=colour, opacity=0.15, hoverinfo="skip",
                                        name=f"{name} IQR", showlegend=False, meta={"strategy": name, "kind": "iqr"}))
        figure.add_trace(go.Scatter(x=times, y=s["curve_median"], mode="lines", name=f"{name} (median)",
                                    line={"color": colour, "dash": "solid" if bands else _dash(s["sampler"])},
                                    meta={"strategy": name, "kind": "median"}))
    for value, label, dash in ((results["best_hv"], "best achievable", "dot"),
                               (results["target_hv"], "random + fifo final (median)", "dash")):
        if value is not None:
            figure.add_hline(y=value, line={"dash": dash, "color": "#444", "width": 1}, annotation_text=label)
    figure.update_layout(title=title, xaxis_title=X_LABEL, yaxis_title=Y_LABEL, height=420,
                         margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return NamedFigure(figure_id, title, figure)


def _dash(sampler: str) -> str:
    return {"random": "dot", "tpe": "solid", "nsga2": "dash", "gp": "dashdot"}.get(sampler, "solid")


def figures(results: dict) -> list[NamedFigure]:
    """All medians in one plot, then one plot per sampler with each scheduler's median and IQR band."""
    out = [_figure(results, results["strategies"], "hv-all", "Hypervolume vs simulated wall-clock: every strategy "
                   "(median over seeds)", bands=False)]
    for sampler in dict.fromkeys(s["sampler"] for s in results["strategies"]):
        group = [s for s in results["strategies"] if s["sampler"] == sampler]
        out.append(_figure(results, group, f"hv-{sampler}", f"sampler {sampler}: median and interquartile range "
                           f"over {len(group[0]['seeds'])} seeds", bands=True))
    return out


def _method(results: dict) -> list[str]:
    bounds = "; ".join(f"{k} [{lo:g}, {hi:g}]" for k, (lo, hi) in results["bounds"].items())
    settings = results["settings"]
    return [
        f"Table: `{results['table']}` ({results['table_rows']} rows; {results['architectures']} architectures of space "
        f"`{results['space']}`; recorded seeds {results['table_seeds']}; proxy {settings['proxy_epochs']} epochs, width "
        f"{settings['proxy_width']}, {settings['proxy_frames']}x{settings['proxy_size']}x{settings['proxy_size']} clips, "
        f"{settings['num_clips']} clips, latency profile {settings['latency_profile']}). Recorded on "
        f"{(results.get('hardware') or {}).get('cpu', '?')} ({(results.get('hardware') or {}).get('cpu_count', '?')} cores).",
        f"Every strategy: {results['seeds']} seeds (0..{results['seeds'] - 1}), {results['workers']} simulated worker(s), "
        f"the same budget of {results['budget_s']:.0f} simulated seconds = {results['budget_full_trials']} full trials "
        f"of {results['full_trial_s']:.1f} s (median) / workers. Overheads modelled: {results['overheads']}.",
        f"Hypervolume of the COMPLETE, feasible trials found by each time, each architecture valued at the table's "
        f"seed-mean final accuracy; normalisation bounds {bounds} (0 = best, 1 = worst); reference point "
        f"{results['reference_point']}. Best achievable (every architecture of the table): {results['best_hv']:.4f}; "
        f"random + fifo's median final: {results['target_hv']:.4f}.",
        f"Simulated in {results['wall_seconds']:.0f} s of real time." + (" `--quick`: a smoke-test table; these figures "
                                                                         "say nothing about the demo problem." if results["quick"] else ""),
    ]


def render_markdown(results: dict) -> str:
    rows = strategy_rows(results)
    out = ["# nas bench search: search strategies on a recorded table", ""]
    out += [f"- {line}" for line in _method(results)] + [""]
    out += [md_table(list(rows[0]), [list(r.values()) for r in rows]), ""]
    out += ["Curves: `report.html`. Every simulated trial: `trials.parquet`; every figure: `results.json`.", ""]
    return "\n".join(out)


def render_html(results: dict) -> str:
    rows = strategy_rows(results)
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    method = "".join(f"<li>{_e(line)}</li>" for line in _method(results))
    figs = "".join(figure_html(f) for f in figures(results))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>videonas bench search</title>
<style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>Search strategies on a recorded table</h1>
<p class="muted">generated {generated}</p>
<section id="section-method"><h2>Method</h2><ul>{method}</ul></section>
<section id="section-table"><h2>Strategies</h2>
{table(list(rows[0]), [list(r.values()) for r in rows], table_id="strategies", row_ids=[r['strategy'] for r in rows])}
</section>
<section id="section-curves"><h2>Hypervolume against simulated wall-clock</h2>{figs}</section>
<script type="text/javascript">{RENDER_SCRIPT}</script>
</body></html>
"""
