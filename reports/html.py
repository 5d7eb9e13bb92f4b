"""Assemble ``index.html``: one self-contained page (plotly.js inlined once, no external links).

Each figure is a ``<div class="plotly-graph-div" id="figure-ID">`` plus its plotly JSON in a
``<script type="application/json" data-figure=ID>``; one inline script renders them all, so the page
needs no network and the figures' data can be read back (tests do).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterable, Sequence

import pandas as pd
import yaml
from plotly.offline import get_plotlyjs

from nas.pareto import dominates, to_minimization
from reports.analysis import STATUS_MEANING, retrain_command, spec_summary
from reports.confirmation import HEADERS as CONFIRM_HEADERS
from reports.confirmation import NOT_CONFIRMED, confirmation
from reports.figures import NamedFigure, axis_label, display
from reports.findings import Findings
from reports.load import RunData
from reports.summary import front_rows, plural, warnings

CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 1.5em 3em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-top: 0.6em; }
nav a { margin-right: 1em; } .muted { color: #666; } .empty { background: #fff4e5; padding: 0.8em; border-radius: 4px; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.85em; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
.plotly-graph-div { margin: 1em 0; }
ul.warnings { padding: 0; list-style: none; } ul.warnings li { background: #fff4e5; border-left: 4px solid #e69500; padding: 0.3em 0.6em; margin: 0.25em 0; }
#summary-front code { overflow-wrap: anywhere; font-size: 0.8em; } .trade { display: inline-block; max-width: 24em; }
details > summary { cursor: pointer; font-weight: 600; }
"""

RENDER_SCRIPT = """
document.querySelectorAll('script[data-figure]').forEach(function (node) {
  var spec = JSON.parse(node.textContent);
  var target = document.getElementById('figure-' + node.getAttribute('data-figure'));
  Plotly.newPlot(target, spec.data, spec.layout, {displaylogo: false});
});
"""

SECTIONS = (
    ("summary", "Summary"),
    ("fronts", "Pareto fronts"),
    ("evolution", "Front evolution"),
    ("hypervolume", "Hypervolume"),
    ("importance", "Parameter importance"),
    ("parallel", "Parallel coordinates"),
    ("gates", "SRTG gates"),
    ("failures", "Failures and pruning"),
    ("pareto-table", "Pareto table"),
    ("confirm", "Front confirmed with more seeds"),
    ("retrain", "Proxy vs full-scale"),
    ("settings", "Settings and environment"),
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, table_id: str = "", row_ids: Sequence[str] = ()) -> str:
    """An HTML table; cells are escaped unless they are ``Raw``."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        attr = f' data-key="{_e(row_ids[index])}"' if index < len(row_ids) else ""
        cells = "".join(
            f"<td>{cell}</td>" if isinstance(cell, Raw) else "<td>-</td>" if cell is None else
            (f'<td class="num">{_e(_fmt(cell))}</td>' if isinstance(cell, (int, float)) else f"<td>{_e(cell)}</td>")
            for cell in row
        )
        body.append(f"<tr{attr}>{cells}</tr>")
    id_attr = f' id="{_e(table_id)}"' if table_id else ""
    return f"<table{id_attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw(str):
    """Already-escaped HTML for a table cell."""


def figure_html(named: NamedFigure) -> str:
    data = named.figure.to_json().replace("</", "<\\/")  # a string in the data must not close the script
    return (
        f'<div class="plotly-graph-div" id="figure-{_e(named.id)}" title="{_e(named.title)}"></div>\n'
        f'<script type="application/json" data-figure="{_e(named.id)}">{data}</script>'
    )


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def _summary_section(run: RunData, findings: Findings) -> str:
    """Findings first: counts, hypervolume and its reference, warnings, then the front with trade-offs."""
    total = sum(findings.counts.values())
    shown = ", ".join(f"{n} {s}" for s, n in findings.counts.items() if n)
    parts = [f'<p id="summary-counts">{_e(plural(total, "trial"))} recorded{": " + _e(shown) if shown else ""}.</p>']
    history = findings.hypervolume
    if history is not None and findings.n_candidates and len(history.values):
        reference = ", ".join(f"{o.name} = {r:g}" for o, r in zip(run.objectives, run.reference_point))
        parts.append(
            f'<p id="summary-hypervolume">Hypervolume <strong>{history.values[-1]:.4g}</strong> after '
            f"{_e(plural(len(history.values), 'trained trial'))} (objectives normalised by their bounds, 0 = best "
            f"bound, 1 = worst; reference point {_e(reference)}; see Hypervolume).</p>"
        )
    notes = warnings(run, findings)
    if notes:
        parts.append('<ul class="warnings" id="warnings">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    rows = front_rows(run, findings)
    if rows:
        headers = ["trial", "architecture", *(axis_label(run, o.column) for o in run.objectives), "trade-off",
                   "re-train at full scale"]
        cells = [
            [r.trial_id, r.architecture, *(r.values[o.column] for o in run.objectives),
             Raw(f'<span class="trade">{_e(r.trade_off)}</span>'), Raw(f"<code class=retrain>{_e(r.command)}</code>")]
            for r in rows
        ]
        parts.append(f"<h3>Pareto front ({_e(plural(len(rows), 'architecture'))} of "
                     f"{findings.n_candidates} completed feasible searched)</h3>")
        parts.append(table(headers, cells, table_id="summary-front", row_ids=[str(r.trial_id) for r in rows]))
    return "".join(parts)


def _settings_section(run: RunData) -> str:
    """Resolved settings and environment, collapsed: needed to reproduce a run, not to read it."""
    return (
        '<details id="settings"><summary>Objectives and bounds, resolved settings (search.yaml), environment</summary>'
        f"{_config_section(run)}</details>"
    )


def _config_section(run: RunData) -> str:
    objectives = table(
        ["objective", "column", "direction", "bounds (natural units)", "reference point (normalised)"],
        [
            [o.name, o.column, o.direction, "-" if o.bounds is None else f"[{o.bounds[0]:g}, {o.bounds[1]:g}]", ref]
            for o, ref in zip(run.objectives, run.reference_point)
        ],
        table_id="objectives",
    )
    settings = {k: v for k, v in run.config.items() if k != "environment"}
    environment = table(["key", "value"], [[k, v] for k, v in run.environment.items()], table_id="environment")
    return (
        f"<h3>Objectives</h3>{objectives}"
        f"<h3>Resolved settings (search.yaml)</h3><pre>{_e(yaml.safe_dump(settings, sort_keys=False))}</pre>"
        f"<h3>Environment</h3>{environment if run.environment else '<p class=muted>not recorded</p>'}"
    )


def _no_completed(findings: Findings) -> str:
    return (
        '<p class="empty">No completed trials yet: nothing to draw a front from '
        f"({sum(findings.counts.values())} trial(s) recorded, see Failures and pruning).</p>"
    )


def _fronts_section(run: RunData, findings: Findings, figures: dict[str, NamedFigure]) -> str:
    if not findings.n_candidates:
        return _no_completed(findings)
    names = ", ".join(o.name for o in run.objectives)
    intro = (
        f"<p>The front holds the {len(findings.groups.front)} non-dominated trials among "
        f"{findings.n_candidates} completed feasible searched trials on all objectives ({_e(names)}). "
        "Baselines are drawn for comparison and are not part of it; a 2-D view of a front on more objectives "
        "can show front points that look dominated in that projection. DUPLICATE trials are drawn once, "
        "as the trial they copy.</p>"
    )
    keys = [k for k in figures if k.startswith("pareto-")]
    return intro + "".join(figure_html(figures[k]) for k in keys)


def _hypervolume_section(run: RunData, findings: Findings, figures: dict[str, NamedFigure]) -> str:
    history = findings.hypervolume
    if history is None or not findings.n_candidates:
        return _no_completed(findings)
    bounds = "; ".join(
        f"{o.name} ({o.direction}) [{o.bounds[0]:g}, {o.bounds[1]:g}]" for o in run.objectives if o.bounds
    )
    reference = ", ".join(f"{o.name} = {r:g}" for o, r in zip(run.objectives, run.reference_point))
    final = history.values[-1] if len(history.values) else 0.0
    text = (
        f"<p>Each objective is normalised by its bounds ({_e(bounds)}) so that 0 is the best bound and 1 the worst; "
        f"the bounds were {_e(run.bounds_note)}. <strong>Reference point (normalised): {_e(reference)}</strong>. "
        f"Final hypervolume: <strong id=final-hypervolume>{final:.6g}</strong> after {len(history.values)} "
        "trained trials. Only completed feasible searched trials add volume.</p>"
    )
    return text + figure_html(figures["hypervolume-clock"]) + figure_html(figures["hypervolume-trials"])


def _importance_section(findings: Findings, figures: dict[str, NamedFigure]) -> str:
    importance = findings.importance
    if not importance.per_objective:
        return f'<p class="empty">Parameter importance not computed: {_e(importance.note)}.</p>'
    text = (
        f"<p>PED-ANOVA importance (Optuna) of each sampled parameter for each objective, over "
        f"{importance.n_trials} completed feasible searched trials; distributions from {_e(importance.source)}.</p>"
    )
    return text + figure_html(figures["importance"])


def _gates_section(findings: Findings, figures: dict[str, NamedFigure]) -> str:
    gates = findings.gates
    if gates is None:
        return '<p class="empty">No trial recorded SRTG gate statistics (no SRTG architectures trained yet).</p>'
    rows = [
        [block, gates.block_measured[j], gates.block_mean[j], gates.block_single[j]] for j, block in enumerate(gates.blocks)
    ]
    summary = table(["block", "trials measured", "mean open rate", "trials where T = 1"], rows, table_id="gate-blocks")
    shown = (
        f"all {gates.n_trials} of them" if len(gates.trial_ids) == gates.n_trials
        else f"{len(gates.trial_ids)} of the {gates.n_trials} (the front first, then the most accurate)"
    )
    return (
        f"<p>{gates.n_trials} trial(s) with SRTG blocks; the heatmap shows {shown}, the table below averages over "
        "all of them. Blocks whose temporal length is 1 have no gate and are marked <code>T=1</code>.</p>"
        + figure_html(figures["gates"]) + summary
    )


def _failures_section(run: RunData, findings: Findings, figures: dict[str, NamedFigure]) -> str:
    counts = table(
        ["status", "count", "meaning"],
        [[status, count, STATUS_MEANING.get(status, "unexpected status")] for status, count in findings.counts.items()],
        table_id="status-counts",
        row_ids=list(findings.counts),
    )
    trials = run.trials
    parts = [f"<p>{len(trials)} trial(s) recorded.</p>", counts]
    for status, detail in (("FAIL", "error"), ("INTERRUPTED", "error"), ("INFEASIBLE", "error"), ("INVALID", "error"),
                           ("DUPLICATE", "duplicate_of")):
        group = trials[trials["status"] == status]
        if group.empty:
            continue
        heading = {"FAIL": "Failed", "INTERRUPTED": "Interrupted", "INFEASIBLE": "Infeasible", "INVALID": "Invalid",
                   "DUPLICATE": "Duplicates"}[status]
        header = "copy of trial" if detail == "duplicate_of" else "reason"
        rows = [[int(r.trial_id), spec_summary(r.spec), _fmt(getattr(r, detail))] for r in group.itertuples()]
        parts.append(f"<h3>{heading} ({len(group)})</h3>")
        parts.append(table(["trial", "architecture", header], rows, table_id=f"trials-{status.lower()}"))
    if "pruning" in figures:
        parts.append(figure_html(figures["pruning"]))
    return "".join(parts)


def _pareto_table_section(run: RunData, findings: Findings) -> str:
    if not findings.n_candidates:
        return _no_completed(findings)
    columns = ["accuracy", "gmacs", "latency_ms", "params"]
    headers = ["trial", "architecture", "spec key", *(axis_label(run, c) for c in columns), "fidelity", "retrain command"]
    rows = []
    for r in findings.groups.front.itertuples():
        values = [float(display(c, [getattr(r, c)])[0]) for c in columns]
        spec = Raw(f"{_e(spec_summary(r.spec))}<details><summary>spec</summary><pre>{_e(r.spec)}</pre></details>")
        command = Raw(f"<code class=retrain>{_e(retrain_command(run, r.trial_id))}</code>")
        rows.append([int(r.trial_id), spec, r.spec_key, *values, f"{_fmt(r.fidelity)}/{_fmt(r.max_fidelity)}", command])
    ids = [str(int(t)) for t in findings.groups.front["trial_id"]]
    parts = [
        f"<p>{len(rows)} architecture(s) on the front. Copy a command to re-train one at full scale "
        "(add <code>--epochs</code>, <code>--workers</code>, ... as needed; see <code>nas retrain --help</code>).</p>",
        table(headers, rows, table_id="pareto-table", row_ids=ids),
    ]
    baselines = findings.groups.baselines
    if len(baselines):
        front_points = findings.groups.front
        rows = []
        for r in baselines.itertuples():
            beaten_by = _dominating_trials(run, front_points, r)
            rows.append([r.baseline, int(r.trial_id), *(float(display(c, [getattr(r, c)])[0]) for c in columns),
                         ", ".join(map(str, beaten_by)) or "none (on or beyond the front)"])
        parts.append("<h3>Baselines</h3>")
        parts.append(table(["baseline", "trial", *(axis_label(run, c) for c in columns), "dominated by front trials"],
                           rows, table_id="baselines"))
    return "".join(parts)


def _dominating_trials(run: RunData, front: pd.DataFrame, row: object) -> list[int]:
    directions = [o.direction for o in run.objectives]
    mine = [getattr(row, o.column) for o in run.objectives]
    if any(v is None or v != v for v in mine):
        return []
    mine_min = to_minimization([mine], directions)[0]
    winners = []
    for other in front.itertuples():
        theirs = to_minimization([[getattr(other, o.column) for o in run.objectives]], directions)[0]
        if dominates(theirs, mine_min):
            winners.append(int(other.trial_id))
    return winners


def _confirm_section(run: RunData) -> str:
    confirmed = confirmation(run.confirmed)
    if confirmed is None:
        return f'<p class="muted">{_e(NOT_CONFIRMED)}</p>'
    return (f"<p id=confirm-summary>{_e(confirmed.sentence)} Mean: over the search's run and the further seeds of "
            "<code>nas confirm</code>; SE: the standard error of that mean.</p>"
            + table(list(CONFIRM_HEADERS), confirmed.rows, table_id="confirm-table"))


def _retrain_section(findings: Findings, figures: dict[str, NamedFigure]) -> str:
    comparison = findings.retrain
    if comparison is None:
        return '<p class="muted">No full-scale results yet (<code>RUN/retrain/*/result.json</code>).</p>'
    rows = [[int(r.trial_id), r.label, r.scale, r.proxy * 100, r.full * 100] for r in comparison.rows.itertuples()]

    def stat(value: float | None, p: float | None) -> str:
        return "n/a (needs 3 or more full-scale retrains)" if value is None else f"{value:.3f} (p = {p:.3g})"

    short = len(comparison.rows) - comparison.n_full_scale
    return (
        f"<p>Kendall tau: <strong id=kendall-tau>{_e(stat(comparison.kendall_tau, comparison.kendall_p))}</strong>; "
        f"Spearman rho: <strong id=spearman-rho>{_e(stat(comparison.spearman_rho, comparison.spearman_p))}</strong> "
        f"(over the {comparison.n_full_scale} full-scale retrains). "
        "Retrained numbers are test (or the named split's) accuracy from <code>nas retrain</code>; the proxy "
        "numbers are the search's validation accuracy. A retrain is <em>full-scale</em> only when it ran the "
        "default epochs and clips at width 1"
        + (f"; {short} shown here did not (labelled short, with their epochs and clips, and left out of the "
           "correlations)" if short else "") + ".</p>"
        + table(["trial", "label", "retrain", "proxy val top-1 (%)", "retrained top-1 (%)"], rows,
                table_id="retrain-table")
        + figure_html(figures["proxy-vs-full"])
    )


def render_html(run: RunData, findings: Findings, figures: list[NamedFigure]) -> str:
    by_id = {f.id: f for f in figures}
    status = ", ".join(f"{n} {s.lower()}" for s, n in findings.counts.items() if n)
    progress = "in progress" if findings.in_progress else "no trial running"
    bodies = {
        "summary": _summary_section(run, findings),
        "fronts": _fronts_section(run, findings, by_id),
        "evolution": figure_html(by_id["front-evolution"]) if "front-evolution" in by_id else _no_completed(findings),
        "hypervolume": _hypervolume_section(run, findings, by_id),
        "importance": _importance_section(findings, by_id),
        "parallel": figure_html(by_id["parallel"]) if "parallel" in by_id else
        '<p class="empty">Parallel coordinates need at least two completed trials.</p>',
        "gates": _gates_section(findings, by_id),
        "failures": _failures_section(run, findings, by_id),
        "pareto-table": _pareto_table_section(run, findings),
        "confirm": _confirm_section(run),
        "retrain": _retrain_section(findings, by_id),
        "settings": _settings_section(run),
    }
    nav = "".join(f'<a href="#section-{key}">{_e(title)}</a>' for key, title in SECTIONS)
    sections = "".join(
        f'<section id="section-{key}"><h2>{_e(title)}</h2>{bodies[key]}</section>' for key, title in SECTIONS
    )
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>videonas report: {_e(run.name)}</title>
<style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>videonas report: {_e(run.name)}</h1>
<p class="muted">{_e(run.run_dir.resolve())} &middot; generated {generated} &middot; {_e(status or 'no trials yet')} ({progress})</p>
<nav>{nav}</nav>
{sections}
<script type="text/javascript">{RENDER_SCRIPT}</script>
</body></html>
"""


def figure_specs(page: str) -> dict[str, dict]:
    """Read the figures' plotly JSON back from a rendered page (id -> {data, layout})."""
    pattern = re.compile(r'<script type="application/json" data-figure="([^"]+)">(.*?)</script>', re.S)
    return {html.unescape(m.group(1)): json.loads(m.group(2)) for m in pattern.finditer(page)}
