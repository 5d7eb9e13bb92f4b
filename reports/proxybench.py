"""The report of a ``nas bench proxy`` folder: the rank-correlation table and proxy-vs-reference scatters.

Reads only ``proxy.json`` (what the benchmark wrote), so ``nas report BENCH_DIR`` re-renders the same page the
benchmark wrote: ``proxy.md`` (the table, seed noise, settings) and ``proxy.html`` (the same table and one
scatter per predictor, plotly inlined once: no network). The HTML keeps the table's figures readable by tests:
each row of ``<table id="rank-table">`` has ``data-predictor``; each scatter's data is in a
``<script type="application/json" data-figure=ID>``, as in the search report.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["is_proxy_bench", "write_proxy_report", "markdown", "page"]

HEADERS = ("predictor", "kind", "n", "Kendall tau [95% CI]", "Spearman rho [95% CI]", "top-k overlap",
           "CPU-s / arch", "cost vs default")


def is_proxy_bench(folder: Path) -> bool:
    return (Path(folder) / "proxy.json").is_file()


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _interval(row: dict[str, Any], name: str) -> str:
    if row[name] is None:
        return "n/a (a constant side)"
    return f"{_num(row[name])} [{_num(row[name + '_low'])}, {_num(row[name + '_high'])}]"


def _cells(row: dict[str, Any]) -> list[str]:
    overlap = "n/a" if row["top_k_overlap"] is None else f"{round(row['top_k_overlap'] * row['top_k'])}/{row['top_k']}"
    relative = "n/a" if row["relative_cost"] is None else f"{row['relative_cost']:.3g}x"
    return [row["predictor"], row["kind"], str(row["n"]), _interval(row, "tau"), _interval(row, "rho"), overlap,
            f"{row['cpu_seconds']:.3g}", relative]


def _fidelity_lines(figures: dict[str, Any]) -> list[str]:
    lines = ["| fidelity | epochs | width | frames | seeds | MACs vs default | about |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, f in figures["fidelities"].items():
        lines.append(f"| {name} | {f['epochs']} | {f['width']} | {f['frames']} | {', '.join(map(str, f['seeds']))} | "
                     f"{f['relative_macs']:.3g}x | {f['about']} |")
    return lines


def markdown(figures: dict[str, Any]) -> str:
    s, noise = figures["settings"], figures["seed_noise"]
    lines = [
        "# nas bench proxy: how far proxy ranks can be trusted" + (" (--quick: a smoke test, not figures)" if figures["quick"] else ""),
        "",
        *([f"**Partial result**: the first {figures['architectures']} of {figures['sampled_architectures']} sampled "
           "architectures have all their runs; the rest were still training when this table was written.", ""]
          if figures.get("sampled_architectures", figures["architectures"]) > figures["architectures"] else []),
        f"{figures['architectures']} architectures sampled from the `{s['space']}` space (seed {s['seed']}, distinct, "
        f"buildable at width 0.25); synthetic data, {s['num_classes']} classes, {s['train_clips']} training / "
        f"{s['val_clips']} validation clips at {s['size']} x {s['size']} pixels; batch {s['batch_size']}, lr {s['lr']}; "
        "trained with `runners.proxy.train_proxy` (the search's loop), one torch thread per run. "
        f"Predictors are compared with the `reference` fidelity's validation top-1; intervals: bootstrap over "
        f"architectures (2,000 resamples), 95% percentile. Zero-cost scores: one batch of {s['score_batch']} training clips, "
        "seed-0 initialisation at width 0.25; #params and GMACs of the full-width model at "
        f"{'x'.join(map(str, s['deploy_shape']))} (what the search's cost objectives count).",
        "",
        *_fidelity_lines(figures),
        "",
        "| " + " | ".join(HEADERS) + " |",
        "| " + " | ".join("---" for _ in HEADERS) + " |",
        *["| " + " | ".join(_cells(row)) + " |" for row in figures["predictors"]],
        "",
        f"**Seed noise** (default fidelity, seed 0 vs seed 1, {noise['n']} architectures): Kendall tau "
        f"{_interval(noise, 'tau')}, Spearman rho {_interval(noise, 'rho')}, mean |difference| "
        f"{_num(noise['mean_abs_difference_points'], 1)} points of top-1 (largest {_num(noise['max_abs_difference_points'], 1)}).",
        "",
        f"Run statuses: {', '.join(f'{k} {v}' for k, v in sorted(figures['statuses'].items()))}. Reference / default "
        f"measured CPU time: {_num(figures['reference_over_default_cpu'])}x. Total {figures['total_cpu_seconds']:.0f} "
        f"CPU-seconds = {figures['quiet_two_core_minutes_estimate']:.1f} minutes on two quiet cores "
        f"({figures['workers']} worker processes); machine {figures['machine']['cores']} cores, load average at the end "
        f"{figures['machine']['load_average_at_end']}.",
    ]
    return "\n".join(lines) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:0 auto;padding:0 1.5em 3em;color:#222}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.3em .6em}
th{background:#f4f4f4}td.num{text-align:right}"""


def _scatter(figures: dict[str, Any]) -> dict[str, Any]:
    """Small multiples: one panel per predictor, x = its value, y = reference validation top-1 (%)."""
    from plotly.subplots import make_subplots

    reference = next(k for k in figures["rows"][0] if k.startswith("reference@"))
    names = [r["predictor"] for r in figures["predictors"] if r["predictor"] in figures["rows"][0]]
    columns = 4
    rows = math.ceil(len(names) / columns)
    taus = {r["predictor"]: r["tau"] for r in figures["predictors"]}
    titles = [f"{n} (tau {_num(taus[n])})" for n in names]
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=titles, vertical_spacing=0.5 / rows)
    y = [100 * a[reference] if a[reference] == a[reference] else None for a in figures["rows"]]
    for index, name in enumerate(names):
        x = [a[name] if a[name] == a[name] else None for a in figures["rows"]]
        if "@" in name:
            x = [None if v is None else 100 * v for v in x]
        figure.add_scatter(x=x, y=y, mode="markers", name=name, showlegend=False,
                           text=[f"arch {a['arch']}: {a['spec']}" for a in figures["rows"]],
                           row=index // columns + 1, col=index % columns + 1)
        unit = "val top-1 (%)" if "@" in name else ("parameters (count)" if name == "params" else
                                                   "GMACs @ 1x3x" + "x".join(map(str, figures["settings"]["deploy_shape"]))
                                                   if name == "gmacs" else "score")
        present = [v for v in x if v is not None]
        spread = "@" not in name and present and min(present) > 0 and max(present) > 100 * min(present)
        if spread:  # positive values over >= 2 decades (e.g. grad_norm): a log axis keeps every dot visible
            unit += " (log axis)"
        figure.update_xaxes(title_text=unit, type="log" if spread else "linear",
                            row=index // columns + 1, col=index % columns + 1)
        figure.update_yaxes(title_text="reference top-1 (%)", row=index // columns + 1, col=index % columns + 1)
    figure.update_layout(height=280 * rows, width=1150, margin={"t": 60},
                         title=f"proxy vs reference over {figures['architectures']} architectures (one dot each)")
    return json.loads(figure.to_json())


def page(figures: dict[str, Any]) -> str:
    from plotly.offline import get_plotlyjs

    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join(
        f'<tr data-predictor="{html.escape(r["predictor"])}">' + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>"
        for r in figures["predictors"]
    )
    text = markdown(figures).split("\n")
    first_table = next(i for i, line in enumerate(text) if line.startswith("|"))
    intro = "".join(f"<p>{html.escape(line.replace('**', ''))}</p>" for line in text[1:first_table] if line)
    notes = "".join(f"<p>{html.escape(line.replace('**', ''))}</p>" for line in text if line.startswith(("**Seed", "Run statuses")))
    scatter = json.dumps(_scatter(figures)).replace("</", "<\\/")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>nas bench proxy</title><style>{CSS}</style>
<script>{get_plotlyjs()}</script></head><body>
<h1>{html.escape(text[0].lstrip('# '))}</h1>{intro}
<h2>Rank correlation with the reference</h2><table id="rank-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{notes}
<h2>Proxy vs reference</h2><div class="plotly-graph-div" id="figure-scatter"></div>
<script type="application/json" data-figure="scatter">{scatter}</script>
<script>document.querySelectorAll('script[data-figure]').forEach(function (node) {{
var spec = JSON.parse(node.textContent);
Plotly.newPlot(document.getElementById('figure-' + node.getAttribute('data-figure')), spec.data, spec.layout, {{displaylogo: false}});
}});</script></body></html>
"""


def _write(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_proxy_report(folder: Path) -> Path:
    """(Re)write ``proxy.md`` and ``proxy.html`` of a benchmark folder from its ``proxy.json``; returns the HTML."""
    folder = Path(folder)
    figures = json.loads((folder / "proxy.json").read_text())
    _write(folder / "proxy.md", markdown(figures))
    _write(folder / "proxy.html", page(figures))
    return folder / "proxy.html"
