"""The benchmark table: every architecture of a space with a long learning curve, per seed (``docs/bench/bench-table.md``).

One Parquet file, one row per (architecture, seed, budget); the manifest (space, proxy settings, budgets, data,
hardware, versions) sits in the file's own metadata, so the table and what it was recorded with cannot be
separated. Unlike the epoch tables of :mod:`nas.sim.table` (which the simulator replays), every evaluation
keeps each validation clip's correctness (bits, packed) and cross-entropy (float16), so any statistic on a
smaller validation set can be recomputed exactly.

Columns (:data:`CURVE_DTYPES`):

* per architecture: ``spec_key``, ``spec`` (JSON), ``family``, ``gmacs`` (@ the manifest's deployment shape),
  ``params``, ``recurrent_params``, ``latency_ms`` / ``latency_cv`` (median forward latency on the manifest's
  CPU profile and its coefficient of variation; empty until the latency phase ran);
* per run (architecture and training seed): ``seed``, ``peak_rss_mib`` (the training process's peak resident
  memory), ``train_rss_mib`` (how far training raised it above the process's resident memory before the model
  was built), ``error`` (a run that failed has one row, budget 0, with the message), ``revision`` (the code's
  git revision), ``worker_load`` (the machine's 1-minute load average when the run ended);
* per evaluation: ``budget`` (epochs), ``steps``, ``accuracy`` (validation top-1), ``val_loss``, ``train_loss``
  (mean since the previous evaluation), ``seconds`` / ``cpu_seconds`` (wall / process CPU since the previous
  evaluation), ``correct`` (bytes: ``numpy.packbits`` of one bool per validation clip), ``clip_loss`` (bytes:
  float16 per validation clip).

**Truth** is the seed-mean accuracy at the largest budget (:meth:`CurveTable.truth`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from nas.sim.table import typed_frame, write_with_manifest
from space.errors import UserInputError

CURVE_TABLE_VERSION = 1
MANIFEST_KEY = b"videonas.curves"

CURVE_DTYPES: dict[str, str] = {
    "spec_key": "str", "spec": "str", "family": "str",
    "gmacs": "float64", "params": "Int64", "recurrent_params": "Int64",
    "latency_ms": "float64", "latency_cv": "float64",
    "seed": "int64", "peak_rss_mib": "float64", "train_rss_mib": "float64", "error": "str", "revision": "str",
    "worker_load": "float64",
    "budget": "float64", "steps": "Int64", "accuracy": "float64", "val_loss": "float64", "train_loss": "float64",
    "seconds": "float64", "cpu_seconds": "float64", "correct": "bytes", "clip_loss": "bytes",
}
CURVE_COLUMNS = list(CURVE_DTYPES)
SHIPPED = ("bench",)  # tables shipped in nas/sim/tables/<name>.parquet


def pack_correct(correct: np.ndarray) -> bytes:
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes()


def unpack_correct(blob: bytes, clips: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=clips).astype(bool)


def pack_loss(loss: np.ndarray) -> bytes:
    return np.asarray(loss, dtype=np.float16).tobytes()


def unpack_loss(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


@dataclass(frozen=True)
class Curve:
    """One architecture's learning curve for one seed: budgets (epochs) and what was measured at each."""

    spec_key: str
    seed: int
    budgets: np.ndarray
    accuracy: np.ndarray
    val_loss: np.ndarray
    train_loss: np.ndarray
    seconds: np.ndarray
    cpu_seconds: np.ndarray


@dataclass(frozen=True)
class CurveTable:
    """A recorded benchmark table (rows and manifest) with a small query API, in the spirit of NAS-Bench-201's.

    >>> table = CurveTable.load("bench")                # a shipped table, or a path
    >>> keys = table.architectures()                     # spec keys, in the space's order
    >>> table.curve(keys[0], seed=0).accuracy            # validation top-1 at each budget
    >>> table.costs(keys[0])                             # {'gmacs': ..., 'params': ..., 'latency_ms': ...}
    >>> table.truth()                                    # spec key -> seed-mean accuracy at the largest budget
    """

    rows: pd.DataFrame
    manifest: dict[str, Any]

    @classmethod
    def load(cls, name_or_path: str | Path) -> "CurveTable":
        if str(name_or_path) in SHIPPED:
            return read_curve_table(Path(str(resources.files("nas.sim") / "tables" / f"{name_or_path}.parquet")))
        return read_curve_table(Path(name_or_path))

    @property
    def budgets(self) -> list[float]:
        return [float(b) for b in self.manifest["budgets"]]

    @property
    def val_clips(self) -> int:
        return int(self.manifest["data"]["val"])

    def ok_rows(self) -> pd.DataFrame:
        """Rows of runs that trained (failures excluded)."""
        return self.rows[self.rows["budget"] > 0]

    def architectures(self) -> list[str]:
        return list(dict.fromkeys(self.rows["spec_key"]))

    def spec(self, spec_key: str) -> dict[str, Any]:
        return json.loads(self.rows.loc[self.rows["spec_key"] == spec_key, "spec"].iloc[0])

    def seeds_of(self, spec_key: str) -> list[int]:
        return sorted(int(s) for s in self.rows.loc[self.rows["spec_key"] == spec_key, "seed"].unique())

    def costs(self, spec_key: str) -> dict[str, float]:
        row = self.rows.loc[self.rows["spec_key"] == spec_key].iloc[0]
        return {k: row[k] for k in ("gmacs", "params", "recurrent_params", "latency_ms", "latency_cv")}

    def curve(self, spec_key: str, seed: int) -> Curve:
        rows = self.ok_rows()
        rows = rows[(rows["spec_key"] == spec_key) & (rows["seed"] == seed)].sort_values("budget")
        if rows.empty:
            raise UserInputError(f"no learning curve for architecture {spec_key} seed {seed} in this table")
        return Curve(spec_key, seed, *(rows[c].to_numpy() for c in
                                       ("budget", "accuracy", "val_loss", "train_loss", "seconds", "cpu_seconds")))

    def done(self) -> set[tuple[str, int]]:
        """(spec key, seed) pairs recorded: evaluated at the largest budget, or failed."""
        last = self.rows.groupby(["spec_key", "seed"])["budget"].max()
        finished = last[(last >= self.budgets[-1]) | (last == 0)]
        return {(k, int(s)) for k, s in finished.index}

    def truth(self) -> pd.Series:
        """Spec key -> the seed-mean validation accuracy at the largest budget (architectures that trained)."""
        final = self.ok_rows()
        final = final[final["budget"] == self.budgets[-1]]
        return final.groupby("spec_key", sort=False)["accuracy"].mean()

    def correctness(self, budget: float) -> dict[tuple[str, int], np.ndarray]:
        """(spec key, seed) -> per-clip correctness at ``budget`` (bool, validation set order)."""
        rows = self.ok_rows()
        rows = rows[rows["budget"] == budget]
        return {(k, int(s)): unpack_correct(b, self.val_clips) for k, s, b in
                zip(rows["spec_key"], rows["seed"], rows["correct"])}


def curve_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> the table frame: every column, in order, with its dtype."""
    return typed_frame(rows, CURVE_DTYPES)


def write_curve_table(path: Path, table: CurveTable) -> None:
    """Write rows and manifest atomically (an interrupted write keeps the previous file)."""
    write_with_manifest(path, curve_frame(table.rows.to_dict("records")), MANIFEST_KEY, table.manifest,
                        compression="zstd")


def read_curve_table(path: Path) -> CurveTable:
    """Read a benchmark table; a missing, unreadable, manifest-less or damaged file is a user error."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"no benchmark table at {path}; record one with `nas bench curves SPACE --out DIR`")
    try:
        arrow = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read benchmark table {path}: {exc}".split("\n")[0]) from None
    raw = (arrow.schema.metadata or {}).get(MANIFEST_KEY)
    if raw is None:
        raise UserInputError(f"{path} is not a benchmark table (no videonas.curves manifest in its metadata)")
    manifest = json.loads(raw)
    if manifest.get("version") != CURVE_TABLE_VERSION:
        raise UserInputError(f"{path} has benchmark table version {manifest.get('version')!r}; "
                             f"this videonas reads version {CURVE_TABLE_VERSION}")
    frame = arrow.to_pandas()
    missing = [c for c in CURVE_COLUMNS if c not in frame.columns]
    if missing:
        raise UserInputError(f"{path} lacks the benchmark table column(s) {', '.join(missing)}")
    table = CurveTable(curve_frame(frame[CURVE_COLUMNS].to_dict("records")), manifest)
    _check_values(table, path)
    return table


def _check_values(table: CurveTable, path: Path) -> None:
    ok = table.ok_rows()
    checks = {"accuracy": np.isfinite(ok["accuracy"]) & ok["accuracy"].between(0, 1),
              "seconds": np.isfinite(ok["seconds"]) & (ok["seconds"] >= 0),
              "gmacs": np.isfinite(ok["gmacs"]) & (ok["gmacs"] >= 0)}  # a run whose process died has no costs
    for column, good in checks.items():
        if not bool(good.all()):
            raise UserInputError(f"{path}: column {column} holds a non-finite or impossible value")
    if table.rows.duplicated(["spec_key", "seed", "budget"]).any():
        raise UserInputError(f"{path}: an (architecture, seed, budget) is recorded twice")


# The simulator's clock for a benchmark table is CPU seconds: each run trained on one thread, so its CPU seconds
# are what it would take alone on an idle core, whatever else shared the machine while it was recorded.
SIMULATED_OBJECTIVES_WITHOUT_LATENCY = ("accuracy", "gmacs", "params")


def epoch_table(table: CurveTable):
    """The table as the simulator's epoch table (:class:`nas.sim.table.Table`): one row per whole-epoch budget.

    An epoch's ``seconds`` are the CPU seconds of every segment that ends within it (so epoch 1 also pays for the
    half-epoch evaluation); its ``loss`` is the steps-weighted training loss of those segments. Truth, the
    seed-mean accuracy at the largest budget, is what the simulator's valuation (seed-mean final accuracy) reads.
    The manifest's ``settings`` are the search flags of the recording (``num_clips`` = train + validation clips;
    the table's split is its own: ``data.train`` / ``data.val``).
    """
    from nas.sim.table import TABLE_VERSION, Table, table_frame

    settings = table.manifest["settings"]
    proxy = settings["proxy"]
    rows = []
    for (key, seed), run in table.rows.groupby(["spec_key", "seed"], sort=False):
        run = run.sort_values("budget")
        first = run.iloc[0]
        base = {"spec_key": key, "spec": first["spec"], "family": first["family"], "baseline": None,
                "gmacs": first["gmacs"], "params": first["params"], "recurrent_params": first["recurrent_params"],
                "latency_ms": first["latency_ms"], "latency_seconds": None, "seed": int(seed), "trial_seed": int(seed),
                "startup_seconds": 0.0}
        if first["budget"] == 0:
            rows.append({**base, "epoch": 0, "error": first["error"]})
            continue
        previous_steps = 0
        for epoch in range(1, int(proxy["epochs"]) + 1):
            segment = run[(run["budget"] > epoch - 1) & (run["budget"] <= epoch)]
            steps = segment["steps"].astype(float).diff().fillna(segment["steps"].iloc[0] - previous_steps)
            previous_steps = int(segment["steps"].iloc[-1])
            end = segment.iloc[-1]
            rows.append({**base, "error": None, "epoch": epoch, "accuracy": float(end["accuracy"]),
                         "loss": float((segment["train_loss"] * steps).sum() / steps.sum()),
                         "seconds": float(segment["cpu_seconds"].sum()), "report_seconds": float(segment["cpu_seconds"].sum())})
    data = table.manifest["data"]
    search_settings = {
        "proxy_epochs": proxy["epochs"], "proxy_width": proxy["width_mult"], "proxy_frames": proxy["frames"],
        "proxy_size": proxy["size"], "proxy_batch_size": proxy["batch_size"], "proxy_lr": proxy["lr"],
        "data": "synthetic", "cache": None, "num_clips": data["train"] + data["val"],
        "num_classes": data["num_classes"], "deploy_shape": "1x3x" + "x".join(str(n) for n in settings["deploy_shape"]),
        "latency_profile": settings["latency_profile"], "cpus_per_trial": 1.0, "gpus_per_trial": 0.0,
    }
    manifest = {**table.manifest, "version": TABLE_VERSION, "settings": search_settings, "curve_table": True}
    return Table(table_frame(rows), manifest)
