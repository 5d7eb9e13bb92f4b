"""``summary.md``: the report's findings as Markdown (status counts, front with retrain commands, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from reports.analysis import STATUS_MEANING
from reports.confirmation import HEADERS as CONFIRM_HEADERS
from reports.confirmation import NOT_CONFIRMED, confirmation
from reports.figures import axis_label, display
from reports.findings import Findings
from reports.load import RunData
from reports.summary import front_rows, plural, warnings


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(run: RunData, findings: Findings, pngs: Sequence[Path]) -> str:
    """Same order as the page: the summary (counts, hypervolume, warnings, front), figures, details, settings."""
    out = [f"# videonas report: {run.name}", "", f"Run directory: `{run.run_dir.resolve()}`", ""]
    out += _summary(run, findings)
    if pngs:
        out += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in pngs] + [""]
    out += ["## Trials by status", "", md_table(
        ["status", "count", "meaning"],
        [[s, n, STATUS_MEANING.get(s, "unexpected status")] for s, n in findings.counts.items()],
    ), ""]
    if findings.n_candidates:
        out += _baselines(run, findings)
        out += _hypervolume(run, findings)
        out += _importance(findings)
    out += _gates(findings)
    out += _confirmed(run)
    out += _retrain(findings)
    out += _settings(run)
    return "\n".join(out)


def _confirmed(run: RunData) -> list[str]:
    confirmed = confirmation(run.confirmed)
    if confirmed is None:
        return ["## Front confirmed with more seeds", "", NOT_CONFIRMED, ""]
    return ["## Front confirmed with more seeds", "", confirmed.sentence, "", md_table(CONFIRM_HEADERS, confirmed.rows), ""]


def _summary(run: RunData, findings: Findings) -> list[str]:
    total = sum(findings.counts.values())
    shown = ", ".join(f"{n} {s}" for s, n in findings.counts.items() if n)
    objectives = ", ".join(f"{o.name} ({o.direction})" for o in run.objectives)
    out = ["## Summary", "", f"{plural(total, 'trial')} recorded{': ' + shown if shown else ''}. Objectives: {objectives}.", ""]
    history = findings.hypervolume
    if history is not None and findings.n_candidates and len(history.values):
        reference = ", ".join(f"{o.name} = {r:g}" for o, r in zip(run.objectives, run.reference_point))
        out += [f"Hypervolume **{history.values[-1]:.4g}** after {plural(len(history.values), 'trained trial')} "
                f"(normalised objectives, reference point {reference}).", ""]
    notes = warnings(run, findings)
    if notes:
        out += ["**Warnings**", ""] + [f"- {note}" for note in notes] + [""]
    if not findings.n_candidates:
        out += ["**No completed trials yet**: no front, hypervolume or importance to show.", ""]
        return out
    rows = front_rows(run, findings)
    out += [f"### Pareto front ({plural(len(rows), 'architecture')} of {findings.n_candidates} completed feasible "
            "searched trials)", "",
            md_table(["trial", "architecture", *(axis_label(run, o.column) for o in run.objectives), "trade-off"],
                     [[r.trial_id, r.architecture, *(r.values[o.column] for o in run.objectives), r.trade_off]
                      for r in rows]), "",
            "### Re-train at full scale", ""]
    for r in rows:
        out += [f"Trial {r.trial_id} ({r.architecture}):", "", "```sh", r.command, "```", ""]
    return out


def _settings(run: RunData) -> list[str]:
    settings = {k: v for k, v in run.config.items() if k != "environment"}
    environment = "\n".join(f"- {k}: {v}" for k, v in run.environment.items()) or "not recorded"
    return ["## Settings and environment", "", "<details><summary>Resolved settings (search.yaml) and environment"
            "</summary>", "", "```yaml", yaml.safe_dump(settings, sort_keys=False).rstrip(), "```", "",
            environment, "", "</details>", ""]


def _baselines(run: RunData, findings: Findings) -> list[str]:
    if not len(findings.groups.baselines):
        return []
    columns = ["accuracy", "gmacs", "latency_ms", "params"]
    return ["## Baselines", "", md_table(
        ["baseline", "trial", *(axis_label(run, c) for c in columns)],
        [[r.baseline, r.trial_id, *(float(display(c, [getattr(r, c)])[0]) for c in columns)]
         for r in findings.groups.baselines.itertuples()],
    ), ""]


def _hypervolume(run: RunData, findings: Findings) -> list[str]:
    history = findings.hypervolume
    if history is None or not len(history.values):
        return []
    reference = ", ".join(f"{o.name} = {r:g}" for o, r in zip(run.objectives, run.reference_point))
    bounds = "; ".join(f"{o.name} [{o.bounds[0]:g}, {o.bounds[1]:g}]" for o in run.objectives if o.bounds)
    return ["## Hypervolume", "",
            f"Final hypervolume {history.values[-1]:.6g} after {len(history.values)} trained trials "
            f"(objectives normalised by their bounds {bounds}, 0 = best, 1 = worst; the bounds were {run.bounds_note}; "
            f"reference point {reference}).", ""]


def _importance(findings: Findings) -> list[str]:
    importance = findings.importance
    if not importance.per_objective:
        return ["## Parameter importance", "", f"Not computed: {importance.note}.", ""]
    out = ["## Parameter importance (PED-ANOVA)", ""]
    for name, scores in importance.per_objective.items():
        top = ", ".join(f"{p} {v:.2f}" for p, v in list(scores.items())[:5])
        out.append(f"- {name}: {top}")
    return out + [""]


def _gates(findings: Findings) -> list[str]:
    gates = findings.gates
    if gates is None:
        return []
    rows = [[block, gates.block_measured[j], gates.block_mean[j], gates.block_single[j]] for j, block in enumerate(gates.blocks)]
    return ["## SRTG gate open-rates", "", md_table(["block", "trials measured", "mean open rate", "trials where T = 1"], rows), ""]


def _retrain(findings: Findings) -> list[str]:
    comparison = findings.retrain
    if comparison is None:
        return []
    tau = "n/a" if comparison.kendall_tau is None else f"{comparison.kendall_tau:.3f}"
    rho = "n/a" if comparison.spearman_rho is None else f"{comparison.spearman_rho:.3f}"
    rows = [[r.trial_id, r.label, r.scale, r.proxy * 100, r.full * 100] for r in comparison.rows.itertuples()]
    n = comparison.n_full_scale
    return ["## Proxy vs full-scale accuracy", "",
            f"Kendall tau {tau}, Spearman rho {rho} (n = {n} full-scale retrains; a short retrain is labelled "
            "and left out).", "",
            md_table(["trial", "label", "retrain", "proxy val top-1 (%)", "retrained top-1 (%)"], rows), ""]
