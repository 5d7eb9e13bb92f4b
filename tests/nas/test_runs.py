"""Reading runs: one front everywhere (issue 11.5), ``RUN:ID`` with baselines (issue 11.6), the run model."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.bench.retrain import pick_front_members
from nas.runmodel import RunDir, TRIAL_DTYPES, front_candidates, parse_run_trial
from nas.runs import pareto_front
from reports.analysis import group_trials
from reports.load import load_run
from tests.nas.cli_helpers import run_nas
from tests.reports.fake_run import default_trials, write_run


@pytest.fixture
def run_with_a_winning_baseline(tmp_path) -> Path:
    """The default fake run, with a baseline more accurate than every searched trial (so non-dominated)."""
    trials = default_trials()
    winner = next(t for t in trials if t.baseline)
    winner.accuracy = 0.99
    run = tmp_path / "runs" / "front"
    write_run(run, trials, with_study=False)
    return run


def test_the_terminal_the_report_and_the_benchmark_show_one_front_without_baselines(run_with_a_winning_baseline):
    run = RunDir(run_with_a_winning_baseline)
    frame = run.read_trials()
    terminal = set(pareto_front(frame, run.objectives())["trial_id"])
    report = set(group_trials(load_run(run.path)).front["trial_id"])
    bench = set(pick_front_members(run.path, len(report)))
    assert terminal == report == bench and len(terminal) >= 2
    assert all(t >= 0 for t in terminal)  # baselines have negative ids: none is on any front
    assert set(front_candidates(frame)["status"]) == {"COMPLETE"}


@pytest.mark.slow
def test_trials_front_lists_baselines_beside_the_front(run_with_a_winning_baseline):
    result = run_nas("trials", str(run_with_a_winning_baseline), "--front")
    assert result.returncode == 0, result.stderr
    assert "srtg-r3d-34-final (baseline)" in result.stdout
    assert "beside the front, not part of it" in " ".join(result.stdout.split())


@pytest.mark.parametrize("text, parsed", [
    ("runs/demo:3", (Path("runs/demo"), 3)),
    ("runs/demo:-2", (Path("runs/demo"), -2)),  # a baseline
    ("r3d-18", None),
    ("runs/demo:", None),
    (":3", None),
    ("runs/demo:--1", None),
    ("spec.yaml", None),
])
def test_run_trial_references_parse_the_same_everywhere(text, parsed):
    assert parse_run_trial(text) == parsed


def test_the_run_model_writes_every_column_with_its_dtype(run_with_a_winning_baseline):
    frame = RunDir(run_with_a_winning_baseline).read_trials()
    assert list(frame.columns)[: len(TRIAL_DTYPES)] == list(TRIAL_DTYPES)
    assert {c: str(frame[c].dtype) for c in TRIAL_DTYPES} == TRIAL_DTYPES
