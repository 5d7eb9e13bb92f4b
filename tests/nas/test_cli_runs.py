"""``nas runs`` and ``nas trials``: machine-readable output and the option names ``nas search`` uses."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from tests.nas.cli_helpers import run_nas
from tests.reports.fake_run import write_run


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    write_run(folder / "alpha", seed=0, with_study=False)
    write_run(folder / "beta", seed=1, with_study=False)
    return folder


def _same(a, b) -> bool:
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    if missing(a) or missing(b):
        return missing(a) and missing(b)
    return a == b


@pytest.mark.slow
def test_trials_json_round_trips_every_column_of_the_parquet(runs_dir):
    result = run_nas("trials", str(runs_dir / "alpha"), "--json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    stored = pd.read_parquet(runs_dir / "alpha" / "trials.parquet")
    assert len(records) == len(stored) and all(list(r) == list(stored.columns) for r in records)
    by_id = {r["trial_id"]: r for r in records}
    for row in stored.to_dict(orient="records"):
        record = by_id[int(row["trial_id"])]
        for column, value in row.items():
            value = value.item() if hasattr(value, "item") else value
            assert _same(record[column], value), (row["trial_id"], column, record[column], value)
    back = pd.DataFrame(records)  # and it loads straight back into a frame with the same shape
    assert back.shape == stored.shape


@pytest.mark.slow
def test_trials_json_front_matches_the_table(runs_dir):
    front = json.loads(run_nas("trials", str(runs_dir / "alpha"), "--front", "--json").stdout)
    table = run_nas("trials", str(runs_dir / "alpha"), "--front").stdout
    ids = [line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│")]
    assert [str(r["trial_id"]) for r in front] == ids and len(ids) >= 3
    assert "latency ms (cpu-quick)" in table  # the latency column names its profile


@pytest.mark.slow
def test_runs_takes_runs_dir_like_search_and_prints_json(runs_dir):
    as_option = run_nas("runs", "--runs-dir", str(runs_dir), "--json")
    assert as_option.returncode == 0, as_option.stderr
    records = json.loads(as_option.stdout)
    assert [r["name"] for r in records] == ["alpha", "beta"]
    stored = pd.read_parquet(runs_dir / "alpha" / "trials.parquet")
    searched = stored[stored["baseline"].isna()]
    assert records[0]["counts"] == searched["status"].value_counts().to_dict()
    assert records[0]["best_accuracy"] == searched[searched["status"] == "COMPLETE"]["accuracy"].max()
    assert records[0]["trained"] == int(searched["status"].isin(["COMPLETE", "PRUNED", "FAIL"]).sum())
    positional = run_nas("runs", str(runs_dir))  # the old spelling still works
    assert positional.returncode == 0 and "alpha" in positional.stdout and "beta" in positional.stdout


def test_the_latency_shape_is_named_beside_the_gmacs_shape_in_nas_trials_and_the_report(tmp_path):
    """cpu-quick times 8-frame clips where GMACs count 16 (docs/costs.md): both name what they measured."""
    from reports.build import build_report
    from tests.reports.fake_run import default_trials

    trials = default_trials()
    for trial in trials:
        trial.row["latency_shape"] = "1x3x8x112x112"
    write_run(tmp_path / "run", trials, with_study=False)
    listed = run_nas("trials", str(tmp_path / "run"), "--front")
    assert listed.returncode == 0, listed.stderr
    caption = " ".join(listed.stdout.split())
    assert "GMACs @ 1x3x16x112x112" in caption and "latency @ 1x3x8x112x112 (profile cpu-quick)" in caption
    page = build_report(tmp_path / "run").read_text()
    assert "latency (ms, median, profile cpu-quick @ 1x3x8x112x112)" in page
