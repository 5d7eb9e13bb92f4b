"""Where CLI tables go: the terminal's width on a terminal, 140 columns when piped (logs, files, tests)."""

from __future__ import annotations

import sys

from rich.console import Console


def console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=140)
