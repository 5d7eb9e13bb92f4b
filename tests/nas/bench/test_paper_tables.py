"""``nas bench srtg --quick`` and ``nas bench mtnet --quick``: complete tables whose numbers are their trials'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.bench.mtnet import ablation_configs, run_mtnet_benchmark
from nas.bench.paper_trials import fmt_mean_std, read_log
from nas.bench.srtg import CONVS, row_configs, run_srtg_benchmark


def _markdown_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]


@pytest.mark.slow
def test_srtg_quick_writes_the_whole_table_from_its_trials(tmp_path: Path):
    run_srtg_benchmark(tmp_path, quick=True)
    trials = read_log(tmp_path / "trials.jsonl")
    assert len(trials) == len(CONVS) * len(row_configs())
    report = json.loads((tmp_path / "srtg.json").read_text())
    assert {(r["conv"], r["row"]) for r in report["rows"]} == {(c, row[0]) for c in CONVS for row in row_configs()}
    markdown = (tmp_path / "srtg.md").read_text()
    assert (tmp_path / "srtg.html").read_text().count("<tr>") == len(_markdown_rows(markdown))
    cells = {tuple(r[:3]) for r in _markdown_rows(markdown)}
    for row in report["rows"]:
        trial = trials[f"{row['conv']}|{row['row']}|0"]
        assert row["top1"] == [trial["top1"]] and row["top5"] == [trial["top5"]]
        # The Markdown cell is the trial's own figure.
        matching = [r for r in _markdown_rows(markdown) if r[4] == fmt_mean_std([trial["top1"]])]
        assert matching, row
        if row["gate"] == "inactive":  # always fuses: every stage with T > 1 reports 1.0
            assert all(v == 1.0 for v in row["stage_open_rates"].values())
    assert ("none", "-", "-") in cells and ("final", "gru", "cyclic") in cells
    # Resumable: a second run trains nothing and writes the same table.
    before = (tmp_path / "trials.jsonl").read_text()
    run_srtg_benchmark(tmp_path, quick=True)
    assert (tmp_path / "trials.jsonl").read_text() == before
    assert (tmp_path / "srtg.md").read_text() == markdown


@pytest.mark.slow
def test_mtnet_quick_writes_the_whole_table_from_its_trials(tmp_path: Path):
    run_mtnet_benchmark(tmp_path, quick=True)
    trials = read_log(tmp_path / "trials.jsonl")
    assert len(trials) == len(ablation_configs())
    report = json.loads((tmp_path / "mtnet.json").read_text())
    assert {(r["ratio"], r["substreams"]) for r in report["ablation"]} == set(ablation_configs())
    markdown = (tmp_path / "mtnet.md").read_text()
    rows = _markdown_rows(markdown)
    for row in report["ablation"]:
        trial = trials[f"r{row['ratio']}|g{row['substreams']}|0"]
        assert row["top1"] == [trial["top1"]]
        line = next(r for r in rows if r[:2] == [str(row["ratio"]), str(row["substreams"])])
        assert line[2] == fmt_mean_std([trial["top1"]])
        assert row["latency_ms"] > 0 and row["gmacs"] > 0
    g1, g8 = (next(c for c in report["costs"] if c["depth"] == 64 and c["substreams"] == g) for g in (1, 8))
    assert g8["gmacs"] < g1["gmacs"] and g8["params_m"] < g1["params_m"]
    assert (tmp_path / "mtnet.html").exists()
