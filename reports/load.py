"""Read one run directory (``docs/run-directory.md``) into a :class:`RunData` the report is drawn from.

Reports read artifacts only: ``search.yaml``, ``trials.parquet``, ``study.db`` (for parameter
importance) and ``retrain/*/result.json``. A run still in progress is fine (trials.parquet may be
missing or hold RUNNING rows); a folder that is not a run directory is a :class:`ReportInputError`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nas.objectives import OBJECTIVES
from nas.pareto import check_directions
from nas.runmodel import RunDir, check_run_format
from space.errors import UserInputError

DEFAULT_REFERENCE = 1.0  # in normalised space: the worst bound of every objective

# The trials.parquet columns the report reads (docs/run-directory.md); constraint_<name> columns are optional.
REQUIRED_COLUMNS = (
    "trial_id", "status", "spec", "spec_key", "family", "baseline", "accuracy", "gmacs", "latency_ms",
    "params", "feasible", "fidelity", "max_fidelity", "started_at", "finished_at", "error", "duplicate_of",
    "gate_open_rates", "params_json", "latency_profile", "deploy_shape",
)  # fmt: skip


class ReportInputError(UserInputError):
    """The folder is not a readable run directory."""


@dataclass(frozen=True)
class RunObjective:
    """One objective of this run, with its normalisation bounds in natural units (accuracy as a fraction)."""

    name: str
    column: str
    direction: str
    label: str
    bounds: tuple[float, float] | None


@dataclass(frozen=True)
class RetrainResult:
    """A retrain's result written back by ``nas retrain RUN:ID`` (``retrain/<label>/result.json``), with its scale."""

    label: str
    trial_id: int | None
    accuracy: float | None  # retrained top-1 as a fraction
    metric: str  # which key of result.json held it
    path: Path
    full_scale: bool = False  # recorded by the write-back: the retrain ran the full-scale settings
    scale: str = "settings not recorded"  # "full-scale", or "short: 1 epoch, 16 clips" (docs/retrain.md)


@dataclass(frozen=True)
class RunData:
    run_dir: Path
    config: dict[str, Any]
    objectives: tuple[RunObjective, ...]
    reference_point: tuple[float, ...]  # normalised space (0 = best bound, 1 = worst bound)
    bounds_note: str  # where the bounds came from
    trials: pd.DataFrame
    retrain: tuple[RetrainResult, ...]
    study_path: Path | None
    start_time: float | None  # unix seconds
    confirmed: pd.DataFrame | None = None  # `nas confirm`: the front before and after (confirmed.parquet)

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.run_dir.name)

    @property
    def environment(self) -> dict[str, Any]:
        env = self.config.get("environment")
        return dict(env) if isinstance(env, Mapping) else {}


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory; raises :class:`ReportInputError` when it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportInputError(f"run directory {run_dir} does not exist; give a folder written by `nas search`")
    files = RunDir(run_dir)
    config = _read_config(files.search_file)
    trials = _read_trials(files.trials_file)
    objectives = _objectives(config, trials)
    bounds_note = "fixed at the start of the run (search.yaml `bounds`)"
    if isinstance(config.get("bounds_note"), str):
        bounds_note += f": {config['bounds_note']}"
    if any(o.bounds is None for o in objectives):
        objectives, bounds_note = _observed_bounds(objectives, trials)
    study_path = files.study_file
    return RunData(
        run_dir=run_dir,
        config=config,
        objectives=objectives,
        reference_point=_reference_point(config, objectives),
        bounds_note=bounds_note,
        trials=trials,
        retrain=_read_retrain(files.retrain_dir),
        study_path=study_path if study_path.is_file() else None,
        start_time=_start_time(config, trials),
        confirmed=_read_confirmed(files.confirmed_file),
    )


def _read_confirmed(path: Path) -> pd.DataFrame | None:
    """``confirmed.parquet`` if `nas confirm` wrote one (a damaged one is left out of the report, not fatal)."""
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# search.yaml
# --------------------------------------------------------------------------------------------


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ReportInputError(f"{path.parent} is not a run directory: it has no search.yaml")
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: bytes that are not UTF-8 text
        raise ReportInputError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(config, dict):
        raise ReportInputError(f"{path} must hold a mapping of settings, got {type(config).__name__}")
    check_run_format(path, config.get("format", 1))  # a newer videonas's run: refused, never misread
    return config


def _objective_entries(config: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """``objectives`` as a list of names, a list of ``{name, direction}`` or a mapping name -> direction."""
    raw = config.get("objectives")
    if isinstance(raw, Mapping):
        return [(str(name), direction) for name, direction in raw.items()]
    if not isinstance(raw, list) or not raw:
        raise ReportInputError("search.yaml has no `objectives` list; allowed: 2-4 of " + ", ".join(OBJECTIVES))
    entries = []
    for item in raw:
        if isinstance(item, Mapping):
            entries.append((str(item.get("name")), item.get("direction")))
        else:
            entries.append((str(item), None))
    return entries


def _bounds_for(config: Mapping[str, Any], index: int, name: str, column: str) -> tuple[float, float] | None:
    raw = config.get("bounds")
    if isinstance(raw, Mapping):
        pair = raw.get(name, raw.get(column))
    elif isinstance(raw, list) and index < len(raw):
        pair = raw[index]
    else:
        pair = None
    if pair is None:
        return None
    try:
        low, high = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise ReportInputError(f"search.yaml bounds for {name!r} must be [low, high], got {pair!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ReportInputError(f"search.yaml bounds for {name!r} must be finite with low < high, got {pair!r}")
    return low, high


def _objectives(config: Mapping[str, Any], trials: pd.DataFrame) -> tuple[RunObjective, ...]:
    objectives = []
    for index, (name, direction) in enumerate(_objective_entries(config)):
        if name not in OBJECTIVES:
            raise ReportInputError(f"search.yaml objective {name!r} is unknown; allowed: {', '.join(OBJECTIVES)}")
        known = OBJECTIVES[name]
        try:
            (direction,) = check_directions([direction or known.direction])
        except ValueError as exc:
            raise ReportInputError(f"search.yaml objective {name!r}: {exc}") from None
        bounds = _bounds_for(config, index, name, known.column)
        objectives.append(RunObjective(name, known.column, direction, known.label, bounds))
    return tuple(objectives)


def _observed_bounds(
    objectives: tuple[RunObjective, ...], trials: pd.DataFrame
) -> tuple[tuple[RunObjective, ...], str]:
    """Fallback when search.yaml has no bounds: the observed range of the completed feasible trials."""
    done = trials[(trials["status"] == "COMPLETE") & trials["feasible"].fillna(False).astype(bool)]
    filled = []
    for objective in objectives:
        bounds = objective.bounds
        if bounds is None:
            values = pd.to_numeric(done[objective.column], errors="coerce").dropna()
            if objective.name == "accuracy":
                bounds = (0.0, 1.0)
            elif len(values):
                low, high = float(values.min()), float(values.max())
                bounds = (low, high) if high > low else (low, low + max(abs(low), 1.0))
        filled.append(RunObjective(objective.name, objective.column, objective.direction, objective.label, bounds))
    note = (
        "search.yaml has no `bounds`: normalised by the observed range of the completed trials, "
        "so this hypervolume is not comparable with other runs"
    )
    return tuple(filled), note


def _reference_point(config: Mapping[str, Any], objectives: tuple[RunObjective, ...]) -> tuple[float, ...]:
    raw = config.get("reference_point")
    if raw is None:
        return tuple(DEFAULT_REFERENCE for _ in objectives)
    if isinstance(raw, Mapping):
        values = [raw.get(o.name, raw.get(o.column, DEFAULT_REFERENCE)) for o in objectives]
    elif isinstance(raw, (int, float)):
        values = [raw] * len(objectives)
    else:
        values = list(raw)
    if len(values) != len(objectives):
        raise ReportInputError(
            f"search.yaml reference_point has {len(values)} values for {len(objectives)} objectives"
        )
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ReportInputError(f"search.yaml reference_point must be numbers, got {raw!r}") from None


def _as_unix_seconds(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=value.tzinfo or dt.timezone.utc).timestamp()
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.replace(tzinfo=parsed.tzinfo or dt.timezone.utc).timestamp()
    return None


def _start_time(config: Mapping[str, Any], trials: pd.DataFrame) -> float | None:
    env = config.get("environment") if isinstance(config.get("environment"), Mapping) else {}
    for key in ("start_time", "started_at", "start"):
        for source in (env, config):
            seconds = _as_unix_seconds(source.get(key))
            if seconds is not None:
                return seconds
    started = pd.to_numeric(trials["started_at"], errors="coerce").dropna()
    return float(started.min()) if len(started) else None


# --------------------------------------------------------------------------------------------
# trials.parquet
# --------------------------------------------------------------------------------------------


def _read_trials(path: Path) -> pd.DataFrame:
    if not path.exists():  # a run that has not finished its first trial yet
        return pd.DataFrame({column: pd.Series(dtype=object) for column in REQUIRED_COLUMNS})
    try:
        trials = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ReportInputError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in trials.columns]
    if missing:
        raise ReportInputError(f"{path} lacks column(s) {', '.join(missing)}; see docs/run-directory.md")
    trials = trials.copy()
    for column in ("accuracy", "gmacs", "latency_ms", "params", "fidelity", "max_fidelity", "started_at", "finished_at"):
        trials[column] = pd.to_numeric(trials[column], errors="coerce")
    trials["trial_id"] = trials["trial_id"].astype(int)
    return trials.sort_values("trial_id", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# retrain/<label>/result.json
# --------------------------------------------------------------------------------------------

# Keys tried in order for the full-scale top-1 (fractions in [0, 1]; values > 1 are read as percent).
FULL_ACCURACY_KEYS = ("test_top1", "test_accuracy", "top1", "val_top1", "accuracy")


def _trial_id_of(label: str, result: Mapping[str, Any]) -> int | None:
    """``trial_id`` in result.json, else the ``ID`` of its ``arch: RUN:ID``, else a label like ``trial-12``."""
    if isinstance(result.get("trial_id"), int) and not isinstance(result.get("trial_id"), bool):
        return int(result["trial_id"])
    arch = result.get("arch")
    if isinstance(arch, str) and re.fullmatch(r".+:\d+", arch):
        return int(arch.rpartition(":")[2])
    match = re.fullmatch(r"(?:trial[-_]?)?(\d+)", label)
    return int(match.group(1)) if match else None


def _full_accuracy(result: Mapping[str, Any]) -> tuple[float | None, str]:
    sources = [result, result.get("metrics") if isinstance(result.get("metrics"), Mapping) else {}]
    for key in FULL_ACCURACY_KEYS:
        for source in sources:
            value = source.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return (float(value) / 100.0 if value > 1.0 else float(value)), key
    return None, ""


def _read_retrain(folder: Path) -> tuple[RetrainResult, ...]:
    results = []
    for path in sorted(folder.glob("*/result.json")) if folder.is_dir() else []:
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a retrain still writing its result; the next report picks it up
        if not isinstance(result, Mapping):
            continue
        accuracy, metric = _full_accuracy(result)
        label = path.parent.name
        full_scale, scale = _scale_of(result.get("scale"))
        results.append(RetrainResult(label, _trial_id_of(label, result), accuracy, metric, path, full_scale, scale))
    return tuple(results)


def _scale_of(record: Any) -> tuple[bool, str]:
    """(full-scale?, label) from result.json's ``scale`` (``nas.retrain.retrain_scale``); a result without it
    is never shown as full-scale (docs/retrain.md, "Full-scale or short")."""
    if not isinstance(record, Mapping):
        return False, "settings not recorded"
    if record.get("full_scale") is True:
        return True, "full-scale"
    parts = []
    for key, unit in (("epochs", "epoch"), ("train_clips", "clip")):
        value = record.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            parts.append(f"{value} {unit}{'' if value == 1 else 's'}")
    width = record.get("width_mult")
    if isinstance(width, (int, float)) and not isinstance(width, bool) and width != 1:
        parts.append(f"width {width:g}")
    return False, "short: " + (", ".join(parts) or "settings not recorded")
