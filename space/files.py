"""The one atomic write of the project: every file another process may read while it is rewritten.

Here, in the base package, because every package writes such files (run directories, reports, latency
caches, checkpoints) and every package may import ``space``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | Path, content: str | bytes | Callable[[Path], Any]) -> Path:
    """Write ``path`` all at once: into a hidden per-process temp file beside it, then renamed over it.

    ``content`` is the text, the bytes, or a function that writes the path it is given (``frame.to_parquet``,
    ``torch.save``). Readers never see half a file; concurrent writers never share a temp file; a crash
    leaves the old file in place.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        if isinstance(content, str):
            tmp.write_text(content, encoding="utf-8")
        elif isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            content(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
