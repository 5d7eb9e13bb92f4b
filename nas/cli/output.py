"""Where CLI output goes, so it reads well in a terminal and piped into a file (``docs/cli-output.md``).

- **Tables never lose a column or cut a name.** On a terminal, cells wrap (long words fold) to the
  terminal's width; piped, the console is wide enough for the table's natural width, so every row is one
  line and nothing is wrapped (rich's default of 80 columns cut ``recurrent`` to ``recurre…``).
- **Progress** goes to stderr: a live bar on a terminal; piped (CI, ``2> log``), plain lines, because a
  rich live bar draws nothing at all when stderr is not a terminal.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

PIPED_WIDTH = 4000  # columns of a piped console: wider than any table, so none is squeezed


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def console(*, stderr: bool = False) -> Console:
    """The terminal's width on a terminal; :data:`PIPED_WIDTH` when piped (logs, files, tests)."""
    stream = sys.stderr if stderr else sys.stdout
    if _is_terminal(stream):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPED_WIDTH, soft_wrap=True)


def keep_every_column(table: Table) -> Table:
    """Let cells wrap (folding long words) instead of being cut with an ellipsis when space is short."""
    for column in table.columns:
        column.no_wrap = False
        column.overflow = "fold"
    return table


def print_table(table: Table, *, out: Console | None = None) -> None:
    """Print ``table`` without losing a column or cutting a name (see the module docstring)."""
    target = out or console()
    target.print(keep_every_column(table), soft_wrap=False)


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------


class LineProgress:
    """The subset of :class:`rich.progress.Progress` our commands use, printed as plain lines on stderr.

    One line when a task starts, when its description changes (the item being worked on) and each time an
    item is done (``advance``); other updates at most every ``every`` seconds. Each line: done/total, elapsed.
    """

    def __init__(self, *, stream: TextIO | None = None, every: float = 5.0):
        self.stream = stream or sys.stderr
        self.every = every
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self._tasks)
        self._tasks[task_id] = {"description": description, "total": total, "completed": 0, "start": time.monotonic(),
                                "printed": 0.0}
        self._line(task_id, force=True)
        return task_id

    def update(self, task_id: int, *, description: str | None = None, completed: float | None = None,
               total: float | None = None, advance: float | None = None, **fields: Any) -> None:
        task = self._tasks[task_id]
        changed = description is not None and description != task["description"]
        if description is not None:
            task["description"] = description
        if total is not None:
            task["total"] = total
        if completed is not None:
            task["completed"] = completed
        if advance:
            task["completed"] += advance
        self._line(task_id, force=changed)

    def advance(self, task_id: int, advance: float = 1) -> None:
        """An item is done: always a line (items are what takes long: one model measured, one epoch)."""
        self._tasks[task_id]["completed"] += advance
        self._line(task_id, force=True)

    def _line(self, task_id: int, *, force: bool) -> None:
        task = self._tasks[task_id]
        now = time.monotonic()
        if not force and now - task["printed"] < self.every:
            return
        task["printed"] = now
        total = "?" if task["total"] is None else f"{task['total']:g}"
        print(f"{task['description']}: {task['completed']:g}/{total} ({now - task['start']:.0f}s)",
              file=self.stream, flush=True)


def progress_bar(*, transient: bool = True) -> Progress | LineProgress:
    """A rich bar on stderr when it is a terminal, else :class:`LineProgress` lines (never silence)."""
    if not _is_terminal(sys.stderr):
        return LineProgress()
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=transient,
    )


# --------------------------------------------------------------------------------------------
# Machine-readable output (--json)
# --------------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars as Python numbers, NaN / NA / NaT as ``null``, paths as strings."""
    import math
    from pathlib import PurePath

    import numpy as np
    import pandas as pd

    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    return value


def print_json(value: Any) -> None:
    """One JSON document on stdout (floats keep every digit, so they round-trip exactly)."""
    import json

    print(json.dumps(plain(value), indent=2), flush=True)


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``1 epoch``, ``2 epochs``: the count with the noun in the right number."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"
