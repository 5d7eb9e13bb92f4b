"""The seam itself: what an executor drives (:class:`TrialLoop`) and what an executor is (:class:`Executor`).

An executor runs trials; a loop decides what they are and what becomes of them. The loop is called from the
executor's own control flow (Ray Tune's controller, a simulated event queue, a process pool's wait):

* ``request(trial_id)`` -> a :class:`~nas.executors.contracts.TrialRequest` to start now, ``None`` (nothing to
  start now: ask again when a trial ends) or :data:`FINISHED`;
* ``report(epoch_report)`` -> True to continue the trial, False to stop it here;
* ``finish(outcome)`` once per trial, however it ended.

:class:`SearchLoop` is the search's loop: the Ray-free :class:`~nas.core.searchcore.SearchCore` (ask, sample,
settle, tell) and one rung rule (:mod:`nas.core.rungs`). A recording has its own loop (a list of requests,
each outcome a table row: :mod:`nas.sim.record`).
"""

from __future__ import annotations

from typing import Any, Protocol

from nas.core.rungs import RungRule
from nas.core.searchcore import FINISHED, SearchCore
from nas.executors.contracts import EpochReport, TrialOutcome, TrialRequest

__all__ = ["FINISHED", "Executor", "SearchLoop", "TrialLoop", "rule_metrics"]


class TrialLoop(Protocol):
    def request(self, trial_id: str) -> TrialRequest | None | str: ...

    def report(self, report: EpochReport) -> bool: ...

    def finish(self, outcome: TrialOutcome) -> None: ...

    def is_exempt(self, trial_id: str) -> bool: ...


class Executor(Protocol):
    """Runs the trials a loop requests until it says :data:`FINISHED` and no trial is left running."""

    def run(self, loop: TrialLoop) -> None: ...


def rule_metrics(request: TrialRequest, report: EpochReport | None) -> dict[str, Any]:
    """The values a rung rule ranks, by objective column (``nas.objectives``): accuracy and the known costs."""
    latency = report.latency if report is not None else None
    return {"accuracy": report.accuracy if report is not None else None, "gmacs": request.costs.gmacs,
            "params": request.costs.params, "latency_ms": latency.ms if latency is not None else None}


class SearchLoop:
    """A search as a :class:`TrialLoop`: the core decides and tells the study, the rule stops trials at rungs.

    ``--time-budget``: once the core is out of budget, the rule stops every trial at the next rung it reaches.
    """

    def __init__(self, core: SearchCore, rule: RungRule) -> None:
        self.core, self.rule = core, rule
        self.requests: dict[str, TrialRequest] = {}

    def request(self, trial_id: str) -> TrialRequest | None | str:
        request = self.core.suggest(trial_id)
        if isinstance(request, TrialRequest):
            self.requests[trial_id] = request
        return request

    def is_exempt(self, trial_id: str) -> bool:
        request = self.requests.get(trial_id)
        return request is not None and request.baseline is not None

    def report(self, report: EpochReport) -> bool:
        request = self.requests.get(report.trial_id)
        if request is None:  # not ours (a teardown's late report): let it go
            return True
        if self.core.out_of_budget():
            self.rule.stop_at_next_rung()
        keep = self.rule.decide(report.trial_id, report.epoch, rule_metrics(request, report),
                                exempt=request.baseline is not None)
        self.core.on_report(report)
        return keep

    def finish(self, outcome: TrialOutcome) -> None:
        request = self.requests.pop(outcome.trial_id, None)
        if request is not None and outcome.last is not None:
            self.rule.completed(outcome.trial_id, outcome.last.epoch, rule_metrics(request, outcome.last),
                                exempt=request.baseline is not None)
        self.core.on_outcome(outcome)
