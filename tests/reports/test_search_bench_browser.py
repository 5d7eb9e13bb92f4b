"""The `nas bench search` page renders its curves offline in headless Chromium, without console errors."""

from __future__ import annotations

import os
import time

import pytest

from nas.bench.search import bench_config
from nas.sim.compare import jsonable, run_strategies, summarise, table_bounds
from nas.sim.table import read_table
from reports.search_bench import render_html
from space.searchspace import parse_space
from tests.reports.test_report_browser import CHROMIUM, _driver, _wait_for_plots

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium binary not installed (.ci/run installs it)")


@pytest.mark.slow
def test_the_search_benchmark_page_renders_offline(tmp_path):
    table = read_table("nas/sim/tables/small.parquet")
    config = bench_config(table.manifest, trials=8).replace(max_resamples=5)
    bounds = table_bounds(table, config.problem.objectives)
    runs = run_strategies(config=config, table=table, space=parse_space(table.manifest["space_yaml"]), seeds=1,
                          workers=1, budget_s=200.0, bounds=bounds,
                          strategies=[("random", "fifo"), ("random", "moasha")])
    results = summarise(runs, config=config, table=table, bounds=bounds, budget_s=200.0)
    results.update(table="small.parquet", table_rows=len(table.rows), architectures=8, table_seeds=table.seeds,
                   space="small", settings=table.manifest["settings"], hardware={}, seeds=1, workers=1,
                   budget_full_trials=3, full_trial_s=66.7, overheads="none", wall_seconds=1.0, quick=True)
    page = tmp_path / "report.html"
    page.write_text(render_html(jsonable(results)))
    driver = _driver()
    try:
        driver.get(page.resolve().as_uri())
        rendered = _wait_for_plots(driver, 2)
        time.sleep(1.0)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        rows = driver.execute_script("return document.querySelectorAll('#strategies tbody tr').length")
        assert driver.save_screenshot(str(tmp_path / "screenshot.png"))
    finally:
        driver.quit()
    assert rendered == 2 and rows == 2
    assert errors == []
