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

COLOURS = {"fifo": "#1f77b4", "asha": "#2ca02c", "moasha": "#d62728", "syne-fifo": "#9467bd", "syne-moasha": "#ff7f0e"}
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


def front_summary(results: dict[str, Any]) -> str:
    """What the best achievable front is made of, in one sentence."""
    front = results.get("best_front") or []
    if not front:
        return "The best achievable front is empty (no architecture of the table completed)."
    kinds: dict[str, int] = {}
    for point in front:
        kinds[point["kind"]] = kinds.get(point["kind"], 0) + 1  # mtnet, r3d, r2plus1d
    made_of = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return (f"The best achievable front (every architecture at truth): {len(front)} architectures ({made_of}); "
            f"accuracy {min(p['accuracy'] for p in front):.3f} to {max(p['accuracy'] for p in front):.3f}, "
            f"GMACs {min(p['gmacs'] for p in front):.2f} to {max(p['gmacs'] for p in front):.2f}.")


def front_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The best achievable front, cheapest first: one row per architecture, costs with their units."""
    units = {"gmacs": "GMACs", "latency": "latency (ms)", "params": "params (M)"}
    rows = []
    for point in results.get("best_front") or []:
        row = {"architecture": point["label"], "spec key": point["spec_key"],
               "accuracy at truth": round(point["accuracy"], 4)}
        for name in results["objectives"]:
            if name != "accuracy" and name in point:
                value = point[name] / 1e6 if name == "params" else point[name]
                row[units.get(name, name)] = round(value, 2)
        rows.append(row)
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
        f"Simulated in {results['wall_seconds']:.0f} s of real time ({results.get('processes', 1)} process(es))." + (" `--quick`: 2 seeds per strategy, a smoke test; "
                                                                         "compare strategies on a full run." if results["quick"] else ""),
    ] + ([results["peers"]] if results.get("peers") else [])


def render_markdown(results: dict) -> str:
    rows = strategy_rows(results)
    out = ["# nas bench search: search strategies on a recorded table", ""]
    out += [f"- {line}" for line in _method(results)] + [""]
    out += [md_table(list(rows[0]), [list(r.values()) for r in rows]), ""]
    front = front_rows(results)
    out += ["## The best achievable front", "", front_summary(results), ""]
    out += [md_table(list(front[0]), [list(r.values()) for r in front]), ""] if front else []
    out += ["Curves: `report.html`. Every simulated trial: `trials.parquet`; every figure: `results.json`.", ""]
    return "\n".join(out)


def render_html(results: dict) -> str:
    rows = strategy_rows(results)
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    method = "".join(f"<li>{_e(line)}</li>" for line in _method(results))
    figs = "".join(figure_html(f) for f in figures(results))
    front = front_rows(results)
    front_table = table(list(front[0]), [list(r.values()) for r in front], table_id="best-front") if front else ""
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
<section id="section-front"><h2>The best achievable front</h2><p>{_e(front_summary(results))}</p>{front_table}</section>
<script type="text/javascript">{RENDER_SCRIPT}</script>
</body></html>
"""


# ---- simulator fidelity (``nas bench fidelity``) ------------------------------------------------


def fidelity_figure(result: dict) -> NamedFigure:
    """The real run's and the simulation's hypervolume against seconds since the first trial started."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=result["times"], y=result["real_curve"], mode="lines", name="real run",
                                line={"color": "#1f77b4", "shape": "hv"}, meta={"kind": "real"}))
    figure.add_trace(go.Scatter(x=result["times"], y=result["sim_curve"], mode="lines", name="simulated from the table",
                                line={"color": "#d62728", "dash": "dash", "shape": "hv"}, meta={"kind": "sim"}))
    figure.update_layout(title="Real search vs its simulation (same seed and settings)",
                         xaxis_title="wall-clock since the first trial started (s)", yaxis_title=Y_LABEL, height=420)
    return NamedFigure("fidelity", "Real search vs its simulation", figure)


def fidelity_rows(figures: dict) -> list[list[Any]]:
    return [["final hypervolume", figures["real_final_hv"], figures["sim_final_hv"],
             f"{figures['final_hv_gap']:+.4f} ({100 * figures['final_hv_gap_relative']:+.1f}%)"],
            ["time to its final hypervolume (s)", figures["real_time_to_final_s"], figures["sim_time_to_final_s"],
             f"{figures['sim_time_to_final_s'] - figures['real_time_to_final_s']:+.1f} s"],
            ["elapsed (s)", figures["real_elapsed_s"], figures["sim_elapsed_s"],
             f"{figures['sim_elapsed_s'] - figures['real_elapsed_s']:+.1f} s"],
            ["trials trained", figures["real_trained"], figures["sim_trained"],
             f"{figures['sim_trained'] - figures['real_trained']:+d}"]]


def _fidelity_method(figures: dict) -> str:
    return (f"Run `{figures['run']}` ({figures['sampler']} + {figures['scheduler']}, seed {figures['seed']}, "
            f"{figures['workers']} trial(s) at once) and its simulation from the table "
            f"(seed {'replayed' if figures['table_seed_replayed'] else 'not recorded: seeds drawn'}). The first "
            f"{figures['same_leading_architectures']} trained trials are the same architectures in the same order; the "
            f"first {figures['same_leading_outcomes']} of the run's {figures['trials']} search trials (baselines apart) have the same "
            f"architecture, status and accuracy.")


def render_fidelity_markdown(result: dict) -> str:
    figures = result["figures"]
    rows = [[r[0], _num(r[1]), _num(r[2]), r[3]] for r in fidelity_rows(figures)]
    return "\n".join(["# Simulator fidelity", "", _fidelity_method(figures), "",
                      md_table(["", "real", "simulated", "gap (sim - real)"], rows), "",
                      "Hypervolume of COMPLETE feasible trials at their own accuracy, on the run's bounds, "
                      "reference point 1. Curves: `fidelity.html`.", ""])


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_fidelity_html(result: dict) -> str:
    figures = result["figures"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>videonas simulator fidelity</title>
<style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>Simulator fidelity</h1>
<p>{_e(_fidelity_method(figures))}</p>
{table(["", "real", "simulated", "gap (sim - real)"], fidelity_rows(figures), table_id="fidelity")}
{figure_html(fidelity_figure(result))}
<script type="text/javascript">{RENDER_SCRIPT}</script>
</body></html>
"""
