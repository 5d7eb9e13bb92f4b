"""``nas report RUN1 RUN2 --out DIR``: several runs' fronts and hypervolumes on shared axes and one normalisation."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from nas.cli import main
from nas.pareto import hypervolume, normalize
from reports.html import figure_specs
from tests.reports.fake_run import write_run
from tests.reports.test_report import COLUMNS, expected_front, traces

WIDE = {"accuracy": [0.0, 1.0], "gmacs": [0.0, 300.0], "latency": [0.0, 400.0]}  # run b: a wider GMACs bound


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    tables = {"run-a": write_run(root / "run-a", seed=0), "run-b": write_run(root / "run-b", seed=3, bounds=WIDE)}
    return root, tables


def _shared_hypervolume(table: pd.DataFrame, objectives: list[str], bounds: dict) -> float:
    """Independently: every searched COMPLETE feasible trial, normalised by the shared bounds, reference 1."""
    done = table[(table["status"] == "COMPLETE") & table["feasible"] & table["baseline"].isna()]
    values = done[[COLUMNS[o] for o in objectives]].to_numpy(float)
    directions = ["maximize" if o == "accuracy" else "minimize" for o in objectives]
    return hypervolume(normalize(values, directions, [bounds[o] for o in objectives]), [1.0] * len(objectives))


def test_two_runs_share_axes_and_one_normalisation(two_runs, capsys):
    root, tables = two_runs
    out = root / "comparison"
    main(["report", str(root / "run-a"), str(root / "run-b"), "--out", str(out)])
    assert f"report: {out / 'index.html'}" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    figures = figure_specs(page)
    assert list(figures) == ["compare-front-gmacs", "compare-front-latency", "compare-hypervolume-clock",
                             "compare-hypervolume-trials"]
    objectives = ["accuracy", "gmacs", "latency"]
    for figure_id in ("compare-front-gmacs", "compare-front-latency"):
        fronts = traces(figures[figure_id], "front")
        assert [t["meta"]["run"] for t in fronts] == ["run-a", "run-b"]  # both runs, one plot: shared axes
        assert all(t.get("xaxis", "x") == "x" and t.get("yaxis", "y") == "y" for t in fronts)
        for trace in fronts:
            assert {int(i) for i in trace["customdata"]} == expected_front(tables[trace["meta"]["run"]], objectives)
    # one normalisation: the widest bounds of the two runs (GMACs [0, 300] from run b) for both hypervolumes
    shared = {"accuracy": [0.0, 1.0], "gmacs": [0.0, 300.0], "latency": [0.0, 400.0]}
    curves = {t["meta"]["run"]: t for t in traces(figures["compare-hypervolume-trials"], "hypervolume")}
    table = re.search(r'<table id="compare-table">.*?</table>', page, re.S).group(0)
    for name, frame in tables.items():
        expected = _shared_hypervolume(frame, objectives, shared)
        assert curves[name]["y"][-1] == pytest.approx(expected, rel=1e-9)
        row = re.search(rf'<tr data-key="{name}">(.*?)</tr>', table, re.S).group(1)
        assert f">{round(expected, 6):.4g}<" in row  # the table's final hypervolume is the same number
    # the best architecture of each run: its most accurate front trial, with a retrain command
    for name, frame in tables.items():
        front = frame[frame["trial_id"].isin(expected_front(frame, objectives))]
        best = int(front.loc[front["accuracy"].idxmax(), "trial_id"])
        row = re.search(rf'<tr data-key="{name}">(.*?)</tr>', table, re.S).group(1)
        assert f"trial {best}:" in row and f"{name}:{best}" in row
    assert "different bounds" in page and "[0, 300]" in page
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# videonas comparison: 2 runs\n\n## Summary")


def test_runs_with_different_objectives_are_refused(tmp_path, capsys):
    write_run(tmp_path / "three", seed=0)
    write_run(tmp_path / "two", seed=1, objectives=["accuracy", "gmacs"])
    out = tmp_path / "comparison"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "three"), str(tmp_path / "two"), "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot compare runs with different objectives")
    assert "accuracy (maximize), gmacs (minimize), latency (minimize)" in err and str(tmp_path / "two") in err
    assert not out.exists()  # refused before anything is written


def test_comparing_needs_out_and_distinct_runs(tmp_path, capsys):
    write_run(tmp_path / "a", seed=0, with_study=False)
    for argv, needle in (
        (["report", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "o")], "given twice"),
        (["report", str(tmp_path / "a"), str(tmp_path / "a")], "needs --out DIR"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert needle in capsys.readouterr().err


def test_single_run_report_into_out(tmp_path):
    write_run(tmp_path / "a", seed=0, with_study=False)
    main(["report", str(tmp_path / "a"), "--out", str(tmp_path / "elsewhere")])
    assert (tmp_path / "elsewhere" / "index.html").is_file() and not (tmp_path / "a" / "report").exists()
    assert "\n## Summary\n" in (tmp_path / "elsewhere" / "summary.md").read_text()
