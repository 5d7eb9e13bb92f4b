"""The report in a real browser: Debian's chromium, headless, network off, page opened from a file URL."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from reports.build import build_report
from tests.reports.fake_run import write_run

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium binary not installed (.ci/run installs it)")

# What the mixed fixture run must show (reports/figures.py build_figures): accuracy vs GMACs, vs latency, the
# 3-D view (three objectives), front evolution, hypervolume vs wall-clock and vs trials, importance,
# parallel coordinates, SRTG gates (it has SRTG trials), pruning (it has PRUNED trials), proxy vs full (retrain results).
EXPECTED_FIGURES = [
    "pareto-gmacs", "pareto-latency", "pareto-3d", "front-evolution", "hypervolume-clock", "hypervolume-trials",
    "importance", "parallel", "gates", "pruning", "proxy-vs-full",
]  # fmt: skip


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--proxy-server=127.0.0.1:9",
        "--window-size=1400,1000",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    return driver


def _wait_for_plots(driver, expected: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = driver.execute_script("return document.querySelectorAll('.js-plotly-plot').length")
        if count >= expected:
            break
        time.sleep(0.25)
    return count


@pytest.mark.slow
def test_report_renders_offline_without_console_errors(tmp_path):
    run_dir = tmp_path / "browser-run"
    write_run(run_dir, retrain={0: 0.7, 3: 0.66, 5: 0.5, 7: 0.61})
    index = build_report(run_dir)
    driver = _driver()
    try:
        driver.get(index.resolve().as_uri())
        rendered = _wait_for_plots(driver, len(EXPECTED_FIGURES))
        time.sleep(1.0)  # let late errors (e.g. a failed fetch) reach the log
        plot_ids = driver.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(e => e.id)"
        )
        containers = driver.execute_script("return document.querySelectorAll('.plotly-graph-div').length")
        all_ids = driver.execute_script("return Array.from(document.querySelectorAll('[id]')).map(e => e.id)")
        logs = driver.get_log("browser")
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1400, min(int(height) + 100, 16000))
        screenshot = index.with_name("screenshot.png")
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    review = Path(os.environ.get("VIDEONAS_SCREENSHOT_DIR", tmp_path))  # kept for human review
    review.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot, review / "report_screenshot.png")

    errors = [entry for entry in logs if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert rendered == len(EXPECTED_FIGURES)
    assert plot_ids == [f"figure-{name}" for name in EXPECTED_FIGURES]
    assert len(set(all_ids)) == len(all_ids)  # unique element ids: Plotly draws each figure in its own div
    assert containers == len(EXPECTED_FIGURES)
    assert screenshot.stat().st_size > 50_000  # a real page, not a blank one


@pytest.mark.slow
def test_the_first_screen_shows_the_summary_and_the_whole_front_table(tmp_path):
    """Findings first: at 1400 x 900 the summary and the front table are on screen; the settings are collapsed."""
    run_dir = tmp_path / "first-screen"
    write_run(run_dir, with_study=False)
    index = build_report(run_dir)
    driver = _driver()
    try:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": False}
        )
        driver.get(index.resolve().as_uri())
        _wait_for_plots(driver, 1)
        viewport = driver.execute_script("return [window.innerWidth, window.innerHeight, window.scrollY]")
        first_section = driver.execute_script("return document.querySelector('section').id")
        table = driver.execute_script(
            "var t = document.getElementById('summary-front'); var r = t.getBoundingClientRect();"
            "return {top: r.top, bottom: r.bottom, rows: t.tBodies[0].rows.length}"
        )
        settings = driver.execute_script(
            "var d = document.getElementById('settings'); var pre = d.querySelector('pre');"
            "return {open: d.open, preShown: pre.checkVisibility(), top: d.getBoundingClientRect().top}"
        )
        screenshot = tmp_path / "first_screen.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    review = Path(os.environ.get("VIDEONAS_SCREENSHOT_DIR", tmp_path))
    review.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot, review / "report_first_screen.png")

    assert viewport == [1400, 900, 0]
    assert first_section == "section-summary"
    assert table["rows"] >= 3 and 0 < table["top"] and table["bottom"] <= 900, table
    assert settings["open"] is False and settings["preShown"] is False and settings["top"] > 900


@pytest.mark.slow
@pytest.mark.parametrize("second_accuracy, told_apart", [(0.59, False), (0.30, True)])
def test_error_bars_and_the_indistinguishable_note_in_the_browser(second_accuracy, told_apart, tmp_path):
    """Two front points (the cheaper one less accurate), each read on 420 clips: 60% vs 59% is within noise
    (2 standard errors of the difference: 6.8 points), 60% vs 30% is not. The bars are drawn either way."""
    from tests.reports.fake_run import FakeTrial

    def trial(accuracy: float, gmacs: float, depth: int) -> FakeTrial:
        se = (accuracy * (1 - accuracy) / 420) ** 0.5
        return FakeTrial("COMPLETE", {"family": "resnet3d", "conv": "r3d", "depth": depth, "placement": "none"},
                         accuracy=accuracy, row={"gmacs": gmacs, "latency_ms": gmacs, "accuracy_se": se,
                                                 "val_clips": 420, "num_classes": 12})

    run_dir = tmp_path / "noise"
    write_run(run_dir, [trial(0.60, 40.0, 34), trial(second_accuracy, 20.0, 18), trial(0.2, 80.0, 50)],
              with_study=False)
    index = build_report(run_dir)
    driver = _driver()
    try:
        driver.get(index.resolve().as_uri())
        _wait_for_plots(driver, 1)
        bars = driver.execute_script(
            "var t = document.getElementById('figure-pareto-gmacs').data.find(t => t.meta.group === 'front');"
            "return {visible: t.error_y.visible, values: Array.from(t.error_y.array), y: Array.from(t.y)}")
        notes = driver.execute_script(
            "var w = document.getElementById('warnings'); return w ? w.innerText : ''")
        rows = driver.execute_script(
            "return Array.from(document.getElementById('summary-front').tBodies[0].rows).map(r => r.innerText)")
    finally:
        driver.quit()
    expected = sorted(200 * (a * (1 - a) / 420) ** 0.5 for a in (0.60, second_accuracy))
    assert bars["visible"] is True and sorted(bars["values"]) == pytest.approx(expected)
    assert ("indistinguishable at this proxy" in notes) is (not told_apart), notes
    assert any("within noise of trial 0" in row for row in rows) is (not told_apart), rows
