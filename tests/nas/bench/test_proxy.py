"""``nas bench proxy --quick``: a complete table, resumable from its cache, and ``nas report`` of the folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nas.bench.proxy import FIDELITIES, QUICK, RUNGS, sample_architectures
from runners.zerocost import ZERO_COST_SCORES
from tests.nas.cli_helpers import run_nas

PREDICTORS = [
    "default@0", "default@1", "default (seed mean)", *[f"epoch-{r}@{s}" for r in RUNGS for s in (0, 1)],
    "width-0.125@0", "frames-4@0", *ZERO_COST_SCORES, "params", "gmacs",
]


@pytest.mark.slow
def test_the_sample_is_seeded_distinct_and_buildable_at_the_proxy_width():
    first = sample_architectures(8, seed=4)
    assert [s.key() for s in first] == [s.key() for s in sample_architectures(8, seed=4)]
    assert len({s.key() for s in first}) == 8
    assert [s.key() for s in first] != [s.key() for s in sample_architectures(8, seed=5)]


def _table(markdown: str) -> dict[str, list[str]]:
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "CPU-s" not in line]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    return {c[0]: c for c in cells if len(c) == 8 and c[0] != "---"}


@pytest.mark.slow
def test_quick_writes_a_complete_table_resumes_from_its_cache_and_reports(tmp_path: Path):
    out = tmp_path / "bench"
    done = run_nas("bench", "proxy", "--quick", "--out", str(out), timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bench proxy: " in done.stderr  # progress, one line per finished run when piped

    table = _table((out / "proxy.md").read_text())
    assert sorted(table) == sorted(PREDICTORS)
    interval = re.compile(r"^(-?\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\]|n/a \(a constant side\))$")
    for name, cells in table.items():
        assert cells[2] == "4" or name == "width-0.125@0", cells  # n architectures (some may not build narrower)
        assert interval.match(cells[3]) and interval.match(cells[4]), cells
        assert float(cells[6]) > 0, cells  # CPU-seconds per architecture
    figures = json.loads((out / "proxy.json").read_text())
    assert figures["architectures"] == QUICK.architectures
    assert set(figures["fidelities"]) == set(FIDELITIES)
    assert figures["seed_noise"]["n"] == 4

    cache = next((out / "cache").iterdir())
    files = sorted(cache.glob("arch*/*.json"))
    assert len(files) == 4 * (1 + sum(len(f.seeds) for f in FIDELITIES.values()))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    removed = cache / "arch002" / "default-seed1.json"
    removed.unlink()
    again = run_nas("bench", "proxy", "--quick", "--out", str(out), timeout=1200)
    assert again.returncode == 0, again.stderr[-2000:]
    assert removed.exists()
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files if f != removed)  # only the missing run ran
    assert again.stderr.count("bench proxy: ") == 1

    (out / "proxy.html").unlink()
    report = run_nas("report", str(out))
    assert report.returncode == 0, report.stderr[-2000:]
    page = (out / "proxy.html").read_text()
    assert all(f'data-predictor="{name}"' in page for name in PREDICTORS)
    scatter = json.loads(re.search(r'data-figure="scatter">(.*?)</script>', page, re.S).group(1).replace("<\\/", "</"))
    assert len(scatter["data"]) == len(PREDICTORS) - 1  # every predictor but the seed mean (not a column)
    assert all(len(trace["y"]) == 4 for trace in scatter["data"])
    _check_in_browser(out / "proxy.html", panels=len(PREDICTORS) - 1)


def _check_in_browser(page: Path, panels: int) -> None:
    """Debian's headless chromium, network off: the page draws its scatter panels without a console error."""
    import os

    from tests.reports.test_report_browser import CHROMIUM, _driver, _wait_for_plots

    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium binary not installed (.ci/run installs it)")
    driver = _driver()
    try:
        driver.get(page.resolve().as_uri())
        assert _wait_for_plots(driver, 1) == 1
        assert driver.execute_script("return document.querySelectorAll('.js-plotly-plot .cartesianlayer .subplot').length") == panels
        rows = driver.execute_script("return document.querySelectorAll('#rank-table tbody tr').length")
        assert rows == len(PREDICTORS)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()


def test_the_cache_key_changes_with_any_field_of_a_sampled_spec_defaults_included():
    """A changed spec default changes the sampled specs, never their indices: the cache must not be reused."""
    import dataclasses

    from nas.bench.proxy import cache_key, sample_architectures

    specs = sample_architectures(3, seed=0, space="srtg")
    assert cache_key(QUICK, specs) == cache_key(QUICK, sample_architectures(3, seed=0, space="srtg"))
    srtg = specs[1].srtg  # a field the space never sets: what a changed default changes
    changed = dataclasses.replace(specs[1], srtg=dataclasses.replace(srtg, tau=srtg.tau + 0.1))
    assert changed.key() != specs[1].key()
    assert cache_key(QUICK, [specs[0], changed, specs[2]]) != cache_key(QUICK, specs)
    assert cache_key(dataclasses.replace(QUICK, seed=1), specs) != cache_key(QUICK, specs)
