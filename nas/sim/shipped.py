"""The recorded tables videonas ships (``demo``, ``small``, ``bench``) and how a ``--table`` argument names one.

``--table`` (``nas bench search``, ``nas bench noise``, ``nas search --warm-start``): a shipped table's name, a
``table.parquet`` file or its folder. An epoch table (``nas bench record``) is read as it is; a benchmark table
(``nas bench curves``) as the simulator's epoch table (:func:`nas.sim.curvetable.epoch_table`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

TABLES = resources.files("nas") / "sim" / "tables"
SHIPPED_TABLES = ("demo", "small", "bench")


def default_table(quick: bool) -> Path:
    return shipped_table("small" if quick else "demo")


def shipped_table(name: str) -> Path:
    from space.errors import UserInputError

    path = Path(str(TABLES / f"{name}.parquet"))
    if not path.is_file():
        raise UserInputError(f"the shipped table {path} is missing from this install; "
                             "give one with --table DIR_OR_FILE (from `nas bench record`) or run with --quick")
    return path


def load_table(table: str | None, *, quick: bool):
    """``--table``: a shipped table's name (demo, small, bench), a file or its folder; an epoch table (``nas bench
    record``) as it is, a benchmark table (``nas bench curves``) as the simulator's epoch table."""
    from nas.sim.curvetable import MANIFEST_KEY, epoch_table, read_curve_table
    from nas.sim.table import TABLE_FILE, read_table

    if table is None:
        path = default_table(quick)
    elif table in SHIPPED_TABLES:
        path = shipped_table(table)
    else:
        path = Path(table)
        path = path / TABLE_FILE if path.is_dir() else path
    if path.is_file():
        import pyarrow.parquet as pq

        try:
            is_curves = MANIFEST_KEY in (pq.read_schema(path).metadata or {})
        except (OSError, ValueError):
            is_curves = False
        if is_curves:
            return path, epoch_table(read_curve_table(path))
    return path, read_table(path)
