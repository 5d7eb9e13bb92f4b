"""What a resumed search's rung rule must know before its first decision: the trials earlier attempts finished.

A rung rule keeps its rungs in memory, and a resumed search builds a fresh one. Left empty, those rungs rank
the first new trials against nothing: they continue where the same search run without interruption would
have stopped them. The study holds what the rungs saw: every trained trial's per-epoch results (its
``history`` user attribute, written by :class:`~nas.core.searchcore.SearchCore` when the trial ends) and its static
costs and latency (user attributes). :func:`replay_earlier_trials` feeds them to the rule
(:meth:`~nas.core.rungs.RungRule.replay`) before the executor starts, for every rule (fifo, asha, moasha).

Which trials: those with a history, i.e. that trained and ended (COMPLETE, PRUNED, FAIL). A trial an
interruption cut short has none: it is re-enqueued and trains again from its first epoch, as it would have
once in an uninterrupted search. Baselines live in their own study and are exempt from the rungs.
Trials are replayed in trial-number order; the order within a rung does not change a later decision
(MO-ASHA and ASHA rank a newcomer against the set recorded there: see ``docs/search-space.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from nas.core.rungs import RungRule

# What a trial reported at every epoch besides the epoch's own figures; the rules rank on these columns.
STATIC_COLUMNS = ("gmacs", "params", "latency_ms")


@dataclass(frozen=True)
class EarlierTrial:
    """A trial an earlier attempt finished, as its rung rule saw it."""

    trial_id: str  # ``study-trial-N``: never an id an executor hands out, so it cannot collide with a new trial
    epochs: tuple[tuple[int, dict[str, Any]], ...]  # (epoch, the result reported at that epoch), in order
    stopped_at: int | None  # the epoch a rule (or the time budget) stopped it at; None if it was not stopped


def earlier_trials(study: optuna.Study, *, max_fidelity: int) -> list[EarlierTrial]:
    """The trials of ``study`` that trained and ended, with the per-epoch results they reported."""
    found = []
    for trial in study.get_trials(deepcopy=False):
        history = trial.user_attrs.get("history") or []
        if not history or trial.user_attrs.get("baseline"):
            continue
        static = {column: trial.user_attrs.get(column) for column in STATIC_COLUMNS}
        epochs = tuple((int(entry["epoch"]), _reported(static, entry)) for entry in history)
        fidelity = int(trial.user_attrs.get("fidelity") or len(history))
        stopped = trial.user_attrs.get("status") == "PRUNED" and fidelity < max_fidelity
        found.append(EarlierTrial(f"study-trial-{trial.number}", epochs, fidelity if stopped else None))
    return found


def _reported(static: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """An epoch's result: the history entry over the trial's static columns (an entry's own latency wins;
    histories written before entries carried it fall back to the trial's)."""
    return {**static, **{key: value for key, value in entry.items() if value is not None}}


def replay_earlier_trials(rule: RungRule, study: optuna.Study, *, max_fidelity: int) -> int:
    """Record every trial earlier attempts finished into ``rule``'s rungs; returns how many were replayed.

    Call it once, after building the rule and before the executor reports the first new epoch. A fresh
    search's study has no finished trial: nothing happens.
    """
    trials = earlier_trials(study, max_fidelity=max_fidelity)
    for trial in trials:
        rule.replay(trial.trial_id, trial.epochs, stopped_at=trial.stopped_at)
    return len(trials)
