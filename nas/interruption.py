"""What a search does when it is interrupted, and what the next attempt finds (docs/reliability.md).

* **Ctrl-C (SIGINT)** during the trials: the first one asks the executor to stop its running trials (Ray Tune's
  own graceful stop, reached through the ``SIGUSR1`` it always listens to, its SIGINT handler turned off so ours
  sees the signal: ``TUNE_DISABLE_SIGINT_HANDLER``, set with Ray's environment in :mod:`nas.raylocal`; the local
  pool terminates its workers). The trials that were running are settled INTERRUPTED (:func:`nas.study.requeue_interrupted`:
  Optuna state FAIL, never counted, their parameters enqueued again); ``trials.parquet`` is written; :class:`SearchInterrupted` carries the exact
  ``--resume`` command, and the CLI exits 130. A second Ctrl-C quits at once (the same settling follows).
* **A driver that died** (SIGKILL, power loss) left its trials RUNNING: the next attempt settles them the
  same way before it starts.

Either way the study stays the single source of truth and no finished trial is touched.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

from nas.study import INTERRUPTED_MESSAGE

INTERRUPT_EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C'd command

INTERRUPTED_BY_USER = "interrupted (Ctrl-C); re-run on resume"
INTERRUPTED_BY_DEATH = INTERRUPTED_MESSAGE  # "interrupted (the driver died); re-run on resume"


def resume_command(run_dir: Path) -> str:
    return f"nas search --resume {shlex.quote(str(run_dir))}"


class SearchInterrupted(Exception):
    """Ctrl-C stopped a search. ``kept``: the run directory stays and resumes; else nothing had started."""

    def __init__(self, run_dir: Path, *, kept: bool, counted: int | None = None, wanted: int | None = None) -> None:
        self.run_dir, self.kept, self.counted, self.wanted = run_dir, kept, counted, wanted
        if kept:
            progress = f" has {counted} of {wanted} trials counted;" if counted is not None else ""
            message = f"interrupted: {run_dir}{progress} resume with: {resume_command(run_dir)}"
        else:
            message = f"interrupted before the first trial started; nothing was kept (no {run_dir})"
        super().__init__(message)


@contextlib.contextmanager
def graceful_sigint(on_first: Callable[[], None] = lambda: None) -> Iterator[Callable[[], bool]]:
    """Around an executor's run: the first SIGINT calls ``on_first`` (which stops the trials gracefully); the
    second raises ``KeyboardInterrupt``. Yields a function telling whether a SIGINT came. Outside the main thread (where
    signals cannot be caught) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received: list[int] = []

    def on_sigint(signum: int, frame: object) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        print("interrupting: stopping the running trials (Ctrl-C again to quit at once)", file=sys.stderr,
              flush=True)
        on_first()  # the search stops starting trials; its executor stops the running ones

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)
