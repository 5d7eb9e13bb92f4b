"""What a person reads first: the front as a table of trade-offs, and the warnings about the run.

The report opens with this (``docs/reports.md``, "Findings first"): each front architecture with what it
trades against the front's best point on the first objective, its ``nas retrain`` command, and a short list
of warnings that change how the rest of the page should be read (trials outside the bounds, a gate that
never opened, bounds that were not fixed, a run still going).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.analysis import front_candidates, normalised_points, retrain_command, spec_summary
from reports.figures import display
from reports.findings import Findings
from reports.load import RunData, RunObjective
from reports.uncertainty import NOISE_Z, indistinguishable

UNITS = {"accuracy": "pts", "gmacs": "GMACs", "latency_ms": "ms", "params": "M params"}
NOUNS = {"accuracy": "accuracy", "gmacs": "GMACs", "latency_ms": "latency", "params": "parameters"}
NOISY_LATENCY_CV = 0.15  # same threshold as `nas profile` (nas/cli/profile.py)
CHANCE_Z = 2.0  # standard errors: an accuracy this close to chance is not told apart from guessing (docs/reports.md)


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``1 trial``, ``2 trials``: the count with the noun in the right number."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


@dataclass(frozen=True)
class FrontRow:
    trial_id: int
    architecture: str
    values: dict[str, float]  # objective column -> display value (accuracy %, params M)
    trade_off: str
    command: str


def _best_index(values: np.ndarray, objective: RunObjective) -> int:
    return int(np.nanargmax(values) if objective.direction == "maximize" else np.nanargmin(values))


def _difference(objective: RunObjective, mine: float, anchor: float) -> str:
    """How this point differs from the anchor on one objective, in the objective's own terms."""
    if objective.column == "accuracy":
        return f"{mine - anchor:+.1f} pts accuracy"
    if anchor > 0 and mine > 0:
        return f"{mine / anchor:.2g}x {NOUNS[objective.column]}"
    return f"{mine - anchor:+.3g} {UNITS[objective.column]}"


def at_chance(frame: pd.DataFrame) -> pd.Series:
    """Rows whose accuracy is within :data:`CHANCE_Z` standard errors of chance (``1 / num_classes``), or below.

    False where the run did not record its classes (runs written before ``num_classes`` existed)."""
    if not {"accuracy", "num_classes"} <= set(frame.columns):
        return pd.Series(False, index=frame.index)
    classes = pd.to_numeric(frame["num_classes"], errors="coerce").astype(float)  # NaN where not recorded
    se = pd.to_numeric(frame["accuracy_se"], errors="coerce").astype(float).fillna(0.0) if "accuracy_se" in frame else 0.0
    accuracy = pd.to_numeric(frame["accuracy"], errors="coerce").astype(float)
    return ((classes > 0) & (accuracy - 1.0 / classes <= CHANCE_Z * se)).astype(bool)


def trade_offs(run: RunData, front: pd.DataFrame) -> list[str]:
    """One phrase per front row: what it is best at, and what it gives up against the first objective's best.

    A row at chance accuracy (:func:`at_chance`) is best at nothing: it is on the front for its costs alone."""
    if front.empty:
        return []
    columns = {o.column: display(o.column, front[o.column]) for o in run.objectives}
    chance = at_chance(front).to_numpy()
    best = {o.column: _best_index(columns[o.column], o) for o in run.objectives}
    anchor_objective = run.objectives[0]
    anchor = best[anchor_objective.column]
    anchor_id = int(front["trial_id"].iloc[anchor])
    within = {member: group[0] for group in indistinguishable(front) for member in group[1:]}
    phrases = []
    for i in range(len(front)):
        leads = ["at chance accuracy"] if chance[i] else [
            f"best {NOUNS[o.column]}" for o in run.objectives if best[o.column] == i]
        if i == anchor:
            phrases.append(", ".join(leads))
            continue
        differences = [_difference(o, columns[o.column][i], columns[o.column][anchor]) for o in run.objectives]
        text = ", ".join(differences) + f" vs trial {anchor_id}"
        trial = int(front["trial_id"].iloc[i])
        if trial in within:
            text += f"; accuracy within noise of trial {within[trial]}"
        phrases.append("; ".join([", ".join(leads), text]) if leads else text)
    return phrases


def front_rows(run: RunData, findings: Findings) -> list[FrontRow]:
    front = findings.groups.front
    phrases = trade_offs(run, front)
    rows = []
    for phrase, row in zip(phrases, front.itertuples()):
        values = {o.column: float(display(o.column, [getattr(row, o.column)])[0]) for o in run.objectives}
        rows.append(FrontRow(int(row.trial_id), spec_summary(row.spec), values, phrase, retrain_command(run, row.trial_id)))
    return rows


# --------------------------------------------------------------------------------------------
# Warnings
# --------------------------------------------------------------------------------------------


def outside_bounds(run: RunData) -> dict[str, int]:
    """Completed feasible trials beyond the worst bound (past the reference point), per objective name.

    Such a trial adds no hypervolume however good it is elsewhere, which is why a first trial slower than an
    automatic latency bound leaves the hypervolume at 0.
    """
    if any(o.bounds is None for o in run.objectives):
        return {}
    candidates = front_candidates(run)
    if candidates.empty:
        return {}
    points = normalised_points(run, candidates)
    reference = np.asarray(run.reference_point, dtype=float)
    beyond = points >= reference
    counts = {"any": int(beyond.any(axis=1).sum())}
    counts.update({o.name: int(beyond[:, k].sum()) for k, o in enumerate(run.objectives) if beyond[:, k].any()})
    return counts


def _bound_phrase(run: RunData, name: str, count: int) -> str:
    objective = next(o for o in run.objectives if o.name == name)
    low, high = objective.bounds
    worst = high if objective.direction == "minimize" else low
    side = "at or above" if objective.direction == "minimize" else "at or below"
    shown = float(display(objective.column, [worst])[0])
    return f"{count} with {NOUNS[objective.column]} {side} {shown:.6g}"


def warnings(run: RunData, findings: Findings) -> list[str]:
    """Sentences, most important first; empty when nothing needs saying."""
    out: list[str] = []
    counts = findings.counts
    if not findings.n_candidates:
        out.append("No completed trials yet: there is no front and no hypervolume to show.")
    out += _chance_warnings(findings.groups.front)
    out += _noise_warnings(findings.groups.front)
    outside = outside_bounds(run)
    if outside.get("any"):
        parts = ", ".join(_bound_phrase(run, name, n) for name, n in outside.items() if name != "any")
        final = findings.hypervolume.values[-1] if findings.hypervolume is not None and len(findings.hypervolume.values) else 0.0
        consequence = (
            "so the hypervolume is 0: no completed trial is inside every bound"
            if final == 0.0 else "they add no hypervolume"
        )
        out.append(
            f"{plural(outside['any'], 'completed trial')} of {findings.n_candidates} fell outside the objective bounds "
            f"({parts}); {consequence}. The bounds are {run.bounds_note}."
        )
    out += _gate_warnings(findings)
    if counts.get("RUNNING", 0):
        out.append(f"{plural(counts['RUNNING'], 'trial')} still running: this report is a snapshot; re-run `nas report`.")
    failed = counts.get("FAIL", 0)
    if failed:
        out.append(f"{plural(failed, 'trial')} failed (errors under Failures and pruning).")
    if "observed range" in run.bounds_note:
        out.append("search.yaml has no fixed bounds: this hypervolume is normalised by the observed range and is "
                   "not comparable with other runs.")
    out += _noisy_latency(run)
    return out


def _noise_warnings(front: pd.DataFrame) -> list[str]:
    """Front points one proxy run cannot tell apart on accuracy: their trade-offs may be noise."""
    out = []
    for group in indistinguishable(front):
        accuracy = 100 * front.set_index("trial_id").loc[group, "accuracy"].astype(float)
        out.append(f"These {len(group)} front architectures are indistinguishable at this proxy: trials "
                   f"{', '.join(map(str, group))} (accuracies {accuracy.min():.1f}-{accuracy.max():.1f}%, within "
                   f"{NOISE_Z:g} standard errors of trial {group[0]}); their retrain commands are in the front table, "
                   "and more seeds or a longer proxy would tell them apart.")
    return out


def _chance_warnings(front: pd.DataFrame) -> list[str]:
    """Front trials that learned nothing at this proxy: on the front only because they cost little."""
    rows = front[at_chance(front)]
    if rows.empty:
        return []
    ids = ", ".join(str(int(t)) for t in rows["trial_id"])
    classes = int(pd.to_numeric(rows["num_classes"]).iloc[0])
    return [f"{plural(len(rows), 'front trial')} ({ids}) at chance accuracy: within {CHANCE_Z:g} standard errors of "
            f"1/{classes} = {1 / classes:.1%}. They are on the front for their costs alone and learned nothing at "
            "this proxy: do not retrain them as they are."]


def _gate_warnings(findings: Findings) -> list[str]:
    gates = findings.gates
    if gates is None:
        return []
    measured = [j for j, n in enumerate(gates.block_measured) if n]
    closed = [gates.blocks[j] for j in measured if gates.block_max[j] == 0.0]
    if not closed:
        return []
    if len(closed) == len(measured):
        return [f"The SRTG gate never opened: in {plural(gates.n_trials, 'trial')} with gates, no block fused a "
                "single clip, so the SRTG blocks acted as plain residual blocks."]
    return [f"The SRTG gate never opened in {plural(len(closed), 'block')} ({', '.join(closed)}) in any of "
            f"{plural(gates.n_trials, 'trial')} with gates."]


def _noisy_latency(run: RunData) -> list[str]:
    """Latency whose coefficient of variation is high was measured on a busy machine (optional column)."""
    if "latency_cv" not in run.trials.columns:
        return []
    cv = pd.to_numeric(run.trials["latency_cv"], errors="coerce")
    noisy = int((cv > NOISY_LATENCY_CV).sum())
    if not noisy:
        return []
    return [f"{plural(noisy, 'trial')} had a noisy latency (CV above {NOISY_LATENCY_CV:.0%}, up to {cv.max():.0%}): "
            "compare latencies with care."]
