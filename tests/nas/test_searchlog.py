"""What Ray and Optuna log during a search goes to ``RUN/search.log``, never to the terminal (docs/run-directory.md).

The handler on its own with real loggers, then a real ``nas search`` (local Ray, as a user starts it) whose
stderr must hold none of the lines its log holds.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import pytest

from nas.searchlog import DEPENDENCY_LOGGERS, LOG_FILE, SearchLog
from tests.nas.cli_helpers import REPO
from tests.nas.search_helpers import write_tiny_space


def test_lines_are_held_until_the_run_is_kept_then_appended_and_the_terminal_gets_none(tmp_path):
    terminal = io.StringIO()
    optuna_logger, tune_logger = logging.getLogger("optuna"), logging.getLogger("ray.tune")
    saved = [(logging.getLogger(n), list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
             for n in DEPENDENCY_LOGGERS]
    optuna_logger.addHandler(logging.StreamHandler(terminal))  # as Optuna's own default handler would print
    before = [(logger, list(logger.handlers), logger.propagate) for logger, _, _ in saved]
    path = tmp_path / LOG_FILE
    path.write_text("an earlier attempt's line\n")
    try:
        with SearchLog() as log:
            optuna_logger.info("A new study created in RDB with name: tiny")
            assert path.read_text() == "an earlier attempt's line\n"  # held: the run may still be discarded
            log.write_to(path)
            tune_logger.warning("Resume experiment with: Tuner.restore(path=...)")
        assert [(logger, list(logger.handlers), logger.propagate) for logger, _, _ in saved] == before
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
    lines = path.read_text().splitlines()
    assert lines[0] == "an earlier attempt's line"  # a resume appends
    assert lines[1].endswith("INFO optuna: A new study created in RDB with name: tiny")
    assert lines[2].endswith("WARNING ray.tune: Resume experiment with: Tuner.restore(path=...)")
    assert terminal.getvalue() == ""


def test_a_run_discarded_before_its_trials_leaves_no_log(tmp_path):
    with SearchLog():
        logging.getLogger("ray").warning("Token authentication is enabled for this Ray cluster.")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_real_search_keeps_ray_and_optuna_lines_in_its_log_and_off_the_terminal(tmp_path):
    """A local Ray started as a user starts it (``RAY_AUTH_MODE`` unset: Ray says whether token authentication is
    on) and a fresh study (Optuna says it created it): both lines are in search.log, neither on stderr."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    runs = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-m", "nas", "search", "--space", str(write_tiny_space(tmp_path)), "--runs-dir", str(runs),
         "--name", "logged", "--trials", "1", "--objectives", "accuracy,gmacs", "--sampler", "random",
         "--scheduler", "fifo", "--num-clips", "48", "--proxy-epochs", "1", "--proxy-width", "0.125",
         "--proxy-frames", "8", "--proxy-size", "32", "--proxy-batch-size", "16", "--deploy-shape", "8x32x32",
         "--cpus-per-trial", "1", "--quiet", "--no-report"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    log = (runs / "logged" / LOG_FILE).read_text()
    assert "A new study created in RDB with name: logged" in log
    assert "Token authentication" in log  # enabled or disabled, Ray says so on every local start
    assert "A new study created" not in result.stderr and "Token authentication" not in result.stderr
    assert result.stderr.strip() == "", result.stderr
