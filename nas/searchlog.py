"""The run's ``search.log``: where Ray's and Optuna's log lines go while a search runs, instead of the terminal.

Ray and Optuna log lines that ask nothing of the user (docs/run-directory.md, "search.log"): Ray's note that
token authentication is on, Optuna's "A new study created", Tune's own advice to restore its experiment and its
missing-metrics warning after a Ctrl-C (``nas search --resume`` is the way back, and the CLI prints it); with
``--mlflow``, MLflow's notes on creating its database (docs/tracking.md). What needs the user is said by
videonas itself: a one-line error, a FAIL trial with its error, the resume command.

While a :class:`SearchLog` is entered, every record of :data:`DEPENDENCY_LOGGERS` (and of their children, which
propagate to them) goes to it alone; their own handlers are put back when it exits. Until the run's trials
start (:meth:`SearchLog.write_to`), lines are held in memory: a fresh run that fails while starting leaves no
directory behind (docs/reliability.md), so it leaves no log either.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TextIO

LOG_FILE = "search.log"
RETRAIN_LOG = "retrain.log"  # the same lines of a `nas retrain`, in its output folder (docs/retrain.md)
DEPENDENCY_LOGGERS = ("ray", "ray.tune", "ray.train", "optuna", "mlflow", "alembic")  # the last two: --mlflow
# One format for every line, whoever set a formatter on the handlers of their logger (``ray.init`` does).
LINE_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


class SearchLog(logging.Handler):
    """A handler for :data:`DEPENDENCY_LOGGERS` during one search or retrain; ``with SearchLog() as log:``."""

    def __init__(self) -> None:
        super().__init__()
        self._held: list[str] = []
        self._file: TextIO | None = None
        self._saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []

    def __getstate__(self) -> dict:  # Ray pickles the search's callbacks, and what they reach, for a restore we never use
        return {}

    def __enter__(self) -> "SearchLog":
        for name in DEPENDENCY_LOGGERS:
            logger = logging.getLogger(name)
            self._saved.append((logger, list(logger.handlers), logger.propagate))
            logger.handlers = [self]
            logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        for logger, handlers, propagate in reversed(self._saved):
            logger.handlers, logger.propagate = handlers, propagate
        self._saved.clear()
        with self.lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def write_to(self, path: Path) -> None:
        """From now on append to ``path`` (a resume continues its run's log), the lines held so far first."""
        with self.lock:
            if self._file is not None:
                return
            self._file = path.open("a", encoding="utf-8")
            self._file.writelines(line + "\n" for line in self._held)
            self._file.flush()
            self._held.clear()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = LINE_FORMAT.format(record)
            if self._file is None:
                self._held.append(line)
            else:
                self._file.write(line + "\n")
                self._file.flush()
        except Exception:  # logging's rule: a failing handler reports itself, never the caller
            self.handleError(record)
