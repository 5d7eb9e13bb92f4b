"""The atomic writes of the project: a file or a whole folder appears complete or not at all.

Here, in the base package, because every package writes such files (run directories, reports, latency
caches, checkpoints, exports) and every package may import ``space``. A write cut short (a full disk, a
read-only folder, a kill) leaves the previous file or folder byte-identical and no partial one in its place
(docs/reliability.md, "Atomic writes").
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator


def atomic_write(path: str | Path, content: str | bytes | Callable[[Path], Any]) -> Path:
    """Write ``path`` all at once: into a hidden per-process temp file beside it, then renamed over it.

    ``content`` is the text, the bytes, or a function that writes the path it is given (``frame.to_parquet``,
    ``torch.save``). Readers never see half a file; concurrent writers never share a temp file; a crash
    leaves the old file in place. An ``OSError`` names ``path`` (not the temp file).
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
    except OSError as exc:
        _name_the_target(exc, tmp, path)
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a folder all at once: yields a hidden sibling to write into, then swaps it in for ``path``.

    On success ``path`` holds exactly what was written (an earlier folder there is replaced as a whole, so
    nothing stale survives); on any error, ``path`` is left as it was (missing, or byte-identical) and the
    sibling is removed. The caller must own ``path`` (it is replaced, not merged into). ``path`` being a file
    is ``NotADirectoryError``. An ``OSError`` names the file under ``path``, not under the sibling.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    staged = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staged, ignore_errors=True)  # a leftover of a killed process with this pid
        staged.mkdir()
        yield staged
        _swap_in(staged, path)
    except OSError as exc:
        _name_the_target(exc, staged, path)
        raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _swap_in(staged: Path, path: Path) -> None:
    """``staged`` becomes ``path``: one rename onto a missing or empty folder; else the old one is moved
    aside first (and moved back if the second rename fails), then deleted."""
    if not path.exists() or not any(path.iterdir()):
        os.replace(staged, path)
        return
    aside = path.with_name(f".{path.name}.old{os.getpid()}")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(path, aside)
    try:
        os.replace(staged, path)
    except OSError:
        os.replace(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _name_the_target(exc: OSError, staged: Path, path: Path) -> None:
    """Point the error at what the user asked for: ``path`` (or the file under it), not the temp name.

    A copy's error names its source first and its destination second (``shutil.copyfile``); when the
    destination is ours, it is the file that failed.
    """

    def ours(name: object) -> bool:
        return name is not None and (str(name) == str(staged) or str(name).startswith(str(staged) + os.sep))

    if ours(exc.filename2):
        exc.filename, exc.filename2 = exc.filename2, None
    if exc.filename is None:
        exc.filename = str(path)
    elif ours(exc.filename):
        exc.filename = str(path) + str(exc.filename)[len(str(staged)):]
