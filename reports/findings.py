"""Everything the report shows, computed once from a :class:`~reports.load.RunData`."""

from __future__ import annotations

from dataclasses import dataclass

from reports.analysis import (
    GateTable,
    HypervolumeHistory,
    RetrainComparison,
    TrialGroups,
    front_candidates,
    front_evolution,
    gate_table,
    group_trials,
    hypervolume_history,
    retrain_comparison,
    status_counts,
)
from reports.importance import Importance, parameter_importance
from reports.load import RunData


@dataclass(frozen=True)
class Findings:
    groups: TrialGroups
    n_candidates: int  # searched COMPLETE feasible trials with every objective
    counts: dict[str, int]  # status -> count
    hypervolume: HypervolumeHistory | None
    evolution: list  # [(trained trials so far, front DataFrame)]
    importance: Importance
    gates: GateTable | None
    retrain: RetrainComparison | None

    @property
    def in_progress(self) -> bool:
        return self.counts.get("RUNNING", 0) > 0


def analyse(run: RunData) -> Findings:
    groups = group_trials(run)
    return Findings(
        groups=groups,
        n_candidates=len(front_candidates(run)),
        counts=status_counts(run.trials),
        hypervolume=hypervolume_history(run),
        evolution=front_evolution(run),
        importance=parameter_importance(run),
        gates=gate_table(run.trials, set(groups.front["trial_id"].astype(int))),
        retrain=retrain_comparison(run),
    )
