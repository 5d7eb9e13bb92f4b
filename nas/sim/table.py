"""The recorded benchmark table of a space: every architecture's proxy learning curve, once (``nas bench record``).

One Parquet file, one row per (architecture, seed, epoch), with the architecture's static costs and
latency repeated on each of its rows (the demo table is a few hundred rows: simpler than a join). The
manifest (space, proxy settings, data, hardware, versions) sits in the file's own metadata, so the
table and what it was recorded with cannot be separated. Columns (:data:`TABLE_DTYPES`):

* per architecture: ``spec_key``, ``spec`` (JSON), ``family``, ``baseline`` (catalog name, or empty),
  ``gmacs``, ``params``, ``recurrent_params`` (deployment model), ``latency_ms`` (median forward latency on
  the manifest's profile), ``latency_seconds`` (wall seconds the measurer took for it, the first time);
* per trial: ``seed`` (the *search* seed s: the trial trained with :func:`nas.core.searchcore.trial_seed` of
  s and the architecture, on the proxy data a search with seed s builds), ``trial_seed``,
  ``startup_seconds`` (the executor's trial start to the trial's first training step), ``error`` (a trial
  that failed has one row, epoch 0, with the message);
* per epoch: ``epoch`` (1-based), ``accuracy`` (validation top-1), ``loss``, ``seconds`` (the epoch's wall
  seconds, training and validation, as the trial measured it), ``report_seconds`` (wall seconds between the
  trial's previous report, or its training start, and this one; includes waiting for the latency).

A table is only comparable to a search with the same settings: :func:`check_compatible` refuses any other.
This module imports neither Ray nor torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nas.config import SearchConfig
from space.errors import UserInputError
from space.files import atomic_write

TABLE_VERSION = 1
TABLE_FILE = "table.parquet"
MANIFEST_KEY = b"videonas.table"

TABLE_DTYPES: dict[str, str] = {
    "spec_key": "str",
    "spec": "str",
    "family": "str",
    "baseline": "str",
    "gmacs": "float64",
    "params": "int64",
    "recurrent_params": "int64",
    "latency_ms": "float64",
    "latency_seconds": "float64",
    "seed": "int64",
    "trial_seed": "int64",
    "startup_seconds": "float64",
    "error": "str",
    "epoch": "int64",
    "accuracy": "float64",
    "loss": "float64",
    "seconds": "float64",
    "report_seconds": "float64",
}
TABLE_COLUMNS = list(TABLE_DTYPES)

# The SearchConfig fields a recording depends on: a search that differs in any of them would have trained
# (or measured) something else, so it may not be simulated from the table.
RECORDED_SETTINGS = (
    "proxy_epochs", "proxy_width", "proxy_frames", "proxy_size", "proxy_batch_size", "proxy_lr",
    "data", "cache", "num_clips", "num_classes", "deploy_shape", "latency_profile", "cpus_per_trial",
    "gpus_per_trial",
)


def recorded_settings(config: SearchConfig) -> dict[str, Any]:
    """The settings of ``config`` a table records (and a simulated search must match), JSON-ready."""
    settings = config.to_dict()
    return {name: json.loads(json.dumps(settings[name])) for name in RECORDED_SETTINGS}


def space_digest(spec_keys: Iterable[str]) -> str:
    """Identity of a space's content: the hash of its sorted architecture keys (a renamed preset still matches)."""
    return hashlib.sha256("\n".join(sorted(spec_keys)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Table:
    """A recorded table: its rows (one per architecture, seed and epoch) and its manifest."""

    rows: pd.DataFrame
    manifest: dict[str, Any]

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.rows["seed"].unique())

    def trials(self) -> pd.DataFrame:
        """One row per recorded (architecture, seed): its last epoch's row."""
        ordered = self.rows.sort_values(["spec_key", "seed", "epoch"])
        return ordered.groupby(["spec_key", "seed"], as_index=False).tail(1).reset_index(drop=True)

    def done(self) -> set[tuple[str, int]]:
        """The (spec key, seed) pairs recorded: every epoch trained, or a failure."""
        epochs = int(self.manifest["settings"]["proxy_epochs"])
        last = self.trials()
        finished = (last["epoch"] >= epochs) | last["error"].map(lambda e: isinstance(e, str) and e != "")
        return {(k, int(s)) for k, s in zip(last.loc[finished, "spec_key"], last.loc[finished, "seed"])}

    def curve(self, spec_key: str, seed: int) -> pd.DataFrame:
        """The recorded epochs of one architecture and seed, in order (one row with epoch 0 for a failure)."""
        rows = self.rows[(self.rows["spec_key"] == spec_key) & (self.rows["seed"] == seed)]
        return rows.sort_values("epoch").reset_index(drop=True)

    def seeds_of(self, spec_key: str) -> list[int]:
        return sorted(int(s) for s in self.rows.loc[self.rows["spec_key"] == spec_key, "seed"].unique())


def table_val_clips(table: Table) -> int:
    """The validation clips the table's accuracies were read on (a benchmark table states it; else the split a
    search with its ``--num-clips`` makes)."""
    settings = table.manifest["settings"]
    data = table.manifest.get("data") or {}
    if "val" in data:
        return int(data["val"])
    from nas.proxydata import proxy_split

    return proxy_split(int(settings["num_clips"]), int(settings.get("num_classes") or 12))[1]


def table_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> the table frame: every column, in order, with its dtype."""
    return typed_frame(rows, TABLE_DTYPES)


def typed_frame(rows: Iterable[Mapping[str, Any]], dtypes: Mapping[str, str]) -> pd.DataFrame:
    """Rows -> a frame with exactly ``dtypes``' columns, in order: ``str`` and ``bytes`` keep None for a missing
    value, every other dtype is numeric (a missing value becomes NaN or NA). Shared by both table kinds."""
    frame = pd.DataFrame(list(rows), columns=list(dtypes))
    for column, dtype in dtypes.items():
        if dtype == "str":
            frame[column] = frame[column].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
        elif dtype == "bytes":
            frame[column] = frame[column].map(lambda v: bytes(v) if isinstance(v, (bytes, bytearray)) else None)
        else:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(dtype)
    return frame


def write_with_manifest(path: Path, frame: pd.DataFrame, key: bytes, manifest: Mapping[str, Any],
                        compression: str = "snappy") -> None:
    """Write ``frame`` with ``manifest`` (JSON) under ``key`` in the Parquet metadata, atomically (a crash keeps
    the old file)."""
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(arrow.schema.metadata or {})
    metadata[key] = json.dumps(manifest, sort_keys=True).encode()
    arrow = arrow.replace_schema_metadata(metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: pq.write_table(arrow, tmp, compression=compression))


def write_table(path: Path, table: Table) -> None:
    """Write the rows with the manifest in the Parquet metadata, atomically (a crash keeps the old file)."""
    write_with_manifest(path, table_frame(table.rows.to_dict("records")), MANIFEST_KEY, table.manifest)


def read_table(path: Path) -> Table:
    """Read a table; a missing, unreadable or manifest-less file is a user error."""
    path = Path(path)
    if path.is_dir():
        path = path / TABLE_FILE
    if not path.is_file():
        raise UserInputError(f"no recorded table at {path}; record one with `nas bench record SPACE --out DIR`")
    try:
        arrow = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read table {path}: {exc}".split("\n")[0]) from None
    raw = (arrow.schema.metadata or {}).get(MANIFEST_KEY)
    if raw is None:
        raise UserInputError(f"{path} is not a recorded table (no videonas manifest in its metadata)")
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise UserInputError(f"{path}: its manifest is not valid JSON") from None
    frame = arrow.to_pandas()
    missing = [c for c in TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise UserInputError(f"{path} lacks the table column(s) {', '.join(missing)}")
    table = Table(table_frame(frame[TABLE_COLUMNS].to_dict("records")), manifest)
    _check_values(table, path)
    repeated = table.rows.duplicated(["spec_key", "seed", "epoch"])
    if repeated.any():
        row = table.rows[repeated].iloc[0]
        raise UserInputError(f"{path}: architecture {row['spec_key']} seed {row['seed']} epoch {row['epoch']} is recorded "
                             "twice; allowed: one row per (architecture, seed, epoch)")
    return table


def _check_values(table: Table, path: Path) -> None:
    """Non-finite or impossible numbers in a table are bad input: the simulator's clock and fronts read them."""
    import numpy as np

    epochs = table.rows[table.rows["epoch"] > 0]
    checks = {
        "seconds": np.isfinite(epochs["seconds"]) & (epochs["seconds"] >= 0),
        "accuracy": np.isfinite(epochs["accuracy"]) & epochs["accuracy"].between(0, 1),
        "gmacs": np.isfinite(table.rows["gmacs"]) & (table.rows["gmacs"] >= 0),
    }
    for column, ok in checks.items():
        if not bool(ok.all()):
            bad = (epochs if column != "gmacs" else table.rows).loc[~ok, column].iloc[0]
            raise UserInputError(f"{path}: column {column} holds {bad!r}; allowed: a finite number "
                                 f"{'in [0, 1]' if column == 'accuracy' else '>= 0'}")


def check_compatible(manifest: Mapping[str, Any], *, config: SearchConfig, digest: str, what: str) -> None:
    """Refuse a table recorded for another version, space or settings than ``config`` (one-line error)."""
    version = manifest.get("version")
    if version != TABLE_VERSION:
        raise UserInputError(f"{what} has table version {version!r}; this videonas reads version {TABLE_VERSION}: "
                             "record it again with `nas bench record`")
    if manifest.get("space_digest") != digest:
        raise UserInputError(f"{what} was recorded for space {manifest.get('space')!r} "
                             f"(digest {manifest.get('space_digest')}), not for {config.space!r} (digest {digest})")
    wanted = recorded_settings(config)
    stored = manifest.get("settings", {})
    differ = [f"{k} {stored.get(k)!r} != {wanted[k]!r}" for k in RECORDED_SETTINGS if stored.get(k) != wanted[k]]
    if differ:
        raise UserInputError(f"{what} was recorded with other settings: {'; '.join(differ)}")
