"""The live view of a search: the tables' status names, a stable ETA, a zero hypervolume explained. Driven with a
real Optuna study; the searcher is reduced to what the view reads. (Log lines never reach the view: they go to the
run's search.log, tests/nas/test_searchlog.py.)"""

from __future__ import annotations

import io

import optuna
from optuna.trial import TrialState, create_trial
from rich.console import Console

from nas.progress import SearchProgress
from tests.nas.search_helpers import tiny_config

BOUNDS = {"accuracy": (0.0, 1.0), "latency": (0.0, 100.0)}


class _Searcher:
    """What SearchProgress reads of the search core: the study, live trials, the trained count."""

    def __init__(self, study: optuna.Study, counted: int = 0):
        self.study, self.live, self._counted = study, {"a": object()}, counted

    def counted(self) -> int:
        return self._counted

    def out_of_budget(self) -> bool:
        return False


def _study(rows: list[tuple[str, list[float] | None]]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for status, values in rows:
        state = TrialState.COMPLETE if values is not None else TrialState.PRUNED
        study.add_trial(create_trial(values=values, state=state, user_attrs={"status": status, "feasible": True}))
    return study


def _view(tmp_path, study, counted=0, **overrides) -> SearchProgress:
    config = tiny_config(tmp_path, objectives=("accuracy", "latency"), trials=10, **overrides)
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    return SearchProgress(config, _Searcher(study, counted), bounds=BOUNDS, console=console)


def test_statuses_are_named_as_in_the_tables(tmp_path):
    study = _study([("COMPLETE", [0.5, 20.0]), ("DUPLICATE", [0.5, 20.0]), ("INFEASIBLE", [0.0, 80.0]),
                    ("PRUNED", None)])
    line = _view(tmp_path, study).status_line()
    assert "DUPLICATE 1" in line and "INFEASIBLE 1" in line and "COMPLETE 1" in line and "PRUNED 1" in line
    assert "skipped" not in line and "front 1" in line and "HV 0.400" in line


def test_a_zero_hypervolume_says_which_bound_the_trials_fall_outside(tmp_path):
    line = _view(tmp_path, _study([("COMPLETE", [0.6, 150.0])])).status_line()
    assert "HV 0.000 (1 of 1 outside the bounds: latency > 100)" in line


def test_the_eta_counts_down_and_never_flips_back_to_unknown(tmp_path):
    view = _view(tmp_path, _study([]))
    start = view._started
    assert view.eta_text(0, start + 5) == "ETA: after the first trial"
    assert view.eta_text(2, start + 60) == "ETA 0:04:00"  # 30 s per trial, 8 left
    assert view.eta_text(2, start + 90) == "ETA 0:03:30"  # no trial finished: counted down, not re-estimated
    assert view.eta_text(2, start + 400) == "ETA 0:00:00"  # overdue: zero, not unknown
    assert view.eta_text(4, start + 400) == "ETA 0:10:00"  # re-estimated when a trial is counted
    assert view.eta_text(10, start + 500) == "ETA: done"


def test_the_eta_is_capped_by_the_time_budget(tmp_path):
    view = _view(tmp_path, _study([]), time_budget_s=120.0)
    assert view.eta_text(1, view._started + 60) == "ETA 0:01:00"


def test_piped_the_view_prints_whole_plain_lines_instead_of_a_cut_bar(tmp_path):
    config = tiny_config(tmp_path, objectives=("accuracy", "latency"), trials=10)
    sink = io.StringIO()
    study = _study([("COMPLETE", [0.5, 20.0]), ("DUPLICATE", [0.5, 20.0])])
    view = SearchProgress(config, _Searcher(study, 1), bounds=BOUNDS,
                          console=Console(file=sink, width=80))  # a file: not a terminal
    with view:
        view.refresh(force=True)
        view.refresh(force=True)  # nothing changed: no second line
    lines = sink.getvalue().splitlines()
    assert len(lines) == 1 and "\x1b" not in lines[0]
    assert lines[0].startswith("search: 1/10 trained · running 1") and "DUPLICATE 1" in lines[0]
    assert "…" not in lines[0] and len(lines[0]) > 80  # whole, not cut to the console's width
