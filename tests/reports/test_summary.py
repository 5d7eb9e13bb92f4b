"""Findings first: the summary section (front with trade-offs and retrain commands, hypervolume, warnings)."""

from __future__ import annotations

import json
import math
import re
import shlex

import pytest

from reports.build import build_report
from tests.reports.fake_run import FakeTrial, default_trials, write_run
from tests.reports.test_report import expected_front, parse


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("summary") / "mixed"
    table = write_run(run_dir, with_study=False)
    index = build_report(run_dir)
    return run_dir, table, index


def test_summary_is_the_first_section_and_settings_the_last_collapsed(mixed):
    _, _, index = mixed
    text = index.read_text()
    sections = re.findall(r'<section id="section-([a-z-]+)">', text)
    assert sections[0] == "summary" and sections[-1] == "settings"
    settings = text[text.index('<section id="section-settings">'):]
    assert settings.index("<details") < settings.index("Resolved settings (search.yaml)")
    assert "<details open" not in settings
    assert text.index("Resolved settings (search.yaml)") > text.index('id="figure-pareto-gmacs"')
    summary = index.with_name("summary.md").read_text()
    headings = re.findall(r"^## (.+)$", summary, re.M)
    assert headings[0] == "Summary" and headings[1] == "Figures" and headings[-1] == "Settings and environment"


def test_summary_front_table_holds_the_front_with_trade_offs_and_commands(mixed):
    run_dir, table, index = mixed
    page = parse(index)
    front = expected_front(table, ["accuracy", "gmacs", "latency"])
    keys = [int(k) for k in page.row_keys["summary-front"]]
    assert set(keys) == front and len(keys) == len(front)
    rows = [r for r in page.rows["summary-front"] if r]
    accuracy = {int(r[0]): float(r[2]) for r in rows}
    best = max(accuracy, key=accuracy.get)
    for row in rows:
        trial, trade, command = int(row[0]), row[-2], row[-1]
        assert shlex.split(command)[:3] == ["nas", "retrain", f"{run_dir.resolve()}:{trial}"]
        if trial == best:
            assert trade.startswith("best accuracy")
        else:  # what it gives up against the most accurate front point, in that point's terms
            delta = accuracy[trial] - accuracy[best]
            assert f"{delta:+.1f} pts accuracy" in trade and f"vs trial {best}" in trade
            assert re.search(r"\d\.?\d*x GMACs, \d\.?\d*x latency", trade)
    text = index.read_text()
    assert re.search(r'id="summary-hypervolume">Hypervolume <strong>[0-9.]+</strong>', text)
    assert "reference point accuracy = 1, gmacs = 1, latency = 1" in text


@pytest.mark.slow
def test_trials_outside_the_bounds_are_counted_and_a_zero_hypervolume_explained(tmp_path):
    tight = {"accuracy": [0.0, 1.0], "gmacs": [0.0, 200.0], "latency": [0.0, 60.0]}
    table = write_run(tmp_path / "tight", bounds=tight, with_study=False)
    done = table[(table["status"] == "COMPLETE") & table["feasible"] & table["baseline"].isna()]
    slow = int((done["latency_ms"] >= 60.0).sum())
    assert 0 < slow < len(done)
    text = build_report(tmp_path / "tight").read_text()
    assert f"{slow} completed trials of {len(done)} fell outside the objective bounds ({slow} with latency at or above 60)" in text
    assert "they add no hypervolume" in text

    first = [FakeTrial("COMPLETE", {"family": "resnet3d", "conv": "r3d", "depth": 18, "placement": "none"}, accuracy=0.5)]
    write_run(tmp_path / "zero", first, bounds={**tight, "latency": [0.0, 1.0]}, with_study=False)
    index = build_report(tmp_path / "zero")
    text = index.read_text()
    assert "Hypervolume <strong>0</strong>" in text
    assert "1 completed trial of 1 fell outside the objective bounds (1 with latency at or above 1)" in text
    assert "so the hypervolume is 0" in text
    assert "so the hypervolume is 0" in index.with_name("summary.md").read_text()


def test_a_gate_that_never_opened_is_a_warning(tmp_path):
    closed = json.dumps({f"layer{s}.0": 0.0 for s in (1, 2, 3)} | {"layer4.0": None})
    trials = default_trials(0)
    for trial in trials:
        if trial.params.get("placement", "none") != "none":
            trial.row = {"gate_open_rates": closed}
    write_run(tmp_path / "closed", trials, with_study=False)
    text = build_report(tmp_path / "closed").read_text()
    assert "The SRTG gate never opened" in text
    assert "The SRTG gate never opened" in (tmp_path / "closed" / "report" / "summary.md").read_text()


def test_no_warning_when_nothing_needs_saying(tmp_path):
    trials = [t for t in default_trials(0) if t.status in ("COMPLETE", "PRUNED")]
    write_run(tmp_path / "clean", trials, with_study=False)
    text = build_report(tmp_path / "clean").read_text()
    assert 'id="warnings"' not in text and "fell outside" not in text


@pytest.mark.parametrize("accuracy", [round(1 / 12, 4), 0.30])
def test_a_front_trial_at_chance_is_warned_about_and_is_best_at_nothing(accuracy, tmp_path):
    """The cheapest trial of the run is on the front whatever it learned; at chance (1/12 read on 420 clips) the
    first screen says so and the row carries no "best" label; at 30% it is a real trade-off and keeps them."""
    se = math.sqrt(accuracy * (1 - accuracy) / 420)
    cheapest = FakeTrial("COMPLETE", {"family": "mtnet", "mtnet_depth": 32, "ratio": 0.5}, accuracy=accuracy,
                         row={"gmacs": 0.5, "latency_ms": 1.0, "params": 1_000_000, "accuracy_se": se,
                              "val_clips": 420, "num_classes": 12})
    table = write_run(tmp_path / "run", [*default_trials(), cheapest], with_study=False)
    trial = int(table.loc[table["gmacs"] == 0.5, "trial_id"].iloc[0])
    page = parse(build_report(tmp_path / "run"))
    trade = {int(r[0]): r[-2] for r in page.rows["summary-front"] if r}
    text = (tmp_path / "run" / "report" / "index.html").read_text()
    warned = f"front trial ({trial}) at chance accuracy" in text
    if accuracy < 0.1:
        assert warned and trade[trial].startswith("at chance accuracy") and "best" not in trade[trial]
    else:
        assert not warned and trade[trial].startswith("best GMACs, best latency")
