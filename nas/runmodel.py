"""The run model: what a run directory (``runs/NAME/``) holds and what its rows mean.

One module owns the schema (``docs/run-directory.md``), so the writer (the search), the readers
(``nas runs`` / ``nas trials``, the reports, the benchmarks) and the test fixtures cannot drift apart:

* the file names (:class:`RunDir`), reading ``search.yaml`` and ``trials.parquet``;
* the ``trials.parquet`` columns and their dtypes (:data:`TRIAL_DTYPES`, :func:`trials_table`);
* the statuses (``docs/search.md``) and which of them count as trained;
* the Pareto-front candidates (:func:`front_candidates`): COMPLETE, feasible, not a baseline;
* the architecture label people see (:func:`arch_label`), ``RUN:ID`` (:func:`parse_run_trial`);
* writing both tables atomically (:func:`space.files.atomic_write`).

It imports neither Ray, torch nor the reports: reading a run must stay cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import yaml

from space.errors import UserInputError
from space.files import atomic_write

# ---- files --------------------------------------------------------------------------------------

SEARCH_FILE = "search.yaml"
SPACE_FILE = "space.yaml"  # a copy of the --space file, so a copied or moved run resumes without it
# The run directory's format: written to search.yaml as ``format``; a reader refuses a newer one (a run made
# by a later videonas) in one line instead of misreading it. Runs from before the field are format 1.
RUN_FORMAT = 1
TRIALS_FILE = "trials.parquet"
STATE_FILE = "state.yaml"  # how the last driver left the run: running, finished or interrupted
STUDY_FILE = "study.db"
LOCK_FILE = ".lock"
RETRAIN_DIR = "retrain"
TRACKING_FILE = "mlflow.yaml"  # `nas search --mlflow`: its tracking URI and parent run id (docs/tracking.md)
CONFIRM_DIR = "confirm"  # `nas confirm`: the front candidates trained with further seeds (a recorded table)
CONFIRMED_FILE = "confirmed.parquet"  # `nas confirm`: the front before and after averaging over seeds

# confirmed.parquet (nas/confirm.py writes it, the report reads it): one row per trial on the front before or
# after confirmation, or confirmed
CONFIRMED_DTYPES: dict[str, str] = {
    "trial_id": "int64",
    "spec_key": "str",
    "spec": "str",
    "accuracy_search": "float64",  # the search's one proxy run
    "accuracy": "float64",  # mean over every seed trained (the search's included)
    "accuracy_se": "float64",  # standard error of that mean (std / sqrt(seeds)); None for one seed
    "seeds": "int64",  # proxy runs averaged
    "accuracies": "str",  # JSON list: each seed's accuracy, the search's first
    "gmacs": "float64",
    "latency_ms": "float64",
    "params": "Int64",
    "front_before": "bool",
    "front_after": "bool",
}

# ---- statuses (docs/search.md) -------------------------------------------------------------------------

TRAINED_STATUSES = ("COMPLETE", "PRUNED", "FAIL")  # what `--trials N` counts
SKIPPED_STATUSES = ("INFEASIBLE", "INVALID", "DUPLICATE")  # settled without training
# INTERRUPTED: running when the search was interrupted (Ctrl-C, a killed driver); never counted, its
# parameters are queued again. QUEUED: enqueued (an interrupted trial, a retry) and not started yet.
STATUSES = (*TRAINED_STATUSES, *SKIPPED_STATUSES, "INTERRUPTED", "RUNNING", "QUEUED")

# ---- trials.parquet -----------------------------------------------------------------------------

TRIAL_DTYPES: dict[str, str] = {
    "trial_id": "int64",  # search trials >= 0; baselines < 0 (:func:`baseline_trial_id`)
    "status": "str",
    "spec": "str",  # the ArchSpec as JSON
    "spec_key": "str",
    "family": "str",
    "baseline": "str",  # catalog name of a --baselines entry, else None
    "accuracy": "float64",  # proxy validation top-1, a fraction
    "accuracy_se": "float64",  # its binomial standard error over the validation clips (docs/proxy.md)
    "val_clips": "Int64",  # validation clips the accuracy was read on (None: settled without training)
    "num_classes": "Int64",  # classes of the proxy data: chance accuracy is 1 / num_classes
    "gmacs": "float64",
    "latency_ms": "float64",
    "params": "Int64",
    "recurrent_params": "Int64",
    "feasible": "bool",
    "fidelity": "Int64",  # proxy epochs trained
    "max_fidelity": "int64",
    "started_at": "float64",  # unix seconds
    "finished_at": "float64",
    "train_seconds": "float64",
    "error": "str",
    "duplicate_of": "Int64",
    "warm_start": "str",  # a known result of --warm-start: where it came from (never counted; docs/search.md)
    "gate_open_rates": "str",  # JSON: SRTG block -> share of samples whose gate opened (None: T = 1 only)
    "params_json": "str",  # the Optuna parameters, JSON
    "latency_profile": "str",
    "latency_cv": "float64",  # coefficient of variation of its timings (over 15%: NOISY, re-measured: docs/costs.md)
    "latency_shape": "str",  # the latency profile's input, BxCxTxHxW (it may differ from deploy_shape: docs/costs.md)
    "deploy_shape": "str",
    "history": "str",  # JSON list of per-epoch results
}
TRIAL_COLUMNS = list(TRIAL_DTYPES)


def constraint_column(flag: str) -> str:
    """The optional column of an active constraint (``max_gmacs`` -> ``constraint_max_gmacs``): value - limit."""
    return f"constraint_{flag}"


def trials_table(rows: Iterable[Mapping[str, Any]], constraint_flags: Iterable[str] = ()) -> pd.DataFrame:
    """Rows -> the ``trials.parquet`` frame: every column, in order, with its dtype (missing values allowed)."""
    columns = TRIAL_COLUMNS + [constraint_column(flag) for flag in constraint_flags]
    frame = pd.DataFrame(list(rows), columns=columns)
    for column, dtype in TRIAL_DTYPES.items():
        if dtype in ("float64", "Int64"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(dtype)
        elif dtype == "int64":
            frame[column] = frame[column].astype("int64")
        elif dtype == "bool":
            frame[column] = frame[column].fillna(False).astype(bool)
        else:  # text (JSON included); a missing value stays missing
            frame[column] = frame[column].astype("str")
    return frame


def baseline_trial_id(number: int) -> int:
    """Baselines live in their own study; their ids are negative so they never collide with search trials."""
    return -(number + 1)


def is_baseline(frame: pd.DataFrame) -> pd.Series:
    return frame["baseline"].map(lambda v: isinstance(v, str) and v != "")


def front_candidate_mask(frame: pd.DataFrame) -> pd.Series:
    """Rows that may be on the Pareto front: COMPLETE, feasible and not a baseline (``docs/search.md``, Baselines).

    Baselines are the papers' designs measured for comparison: shown beside the front, never in it.
    """
    if frame.empty:
        return pd.Series(False, index=frame.index, dtype=bool)
    feasible = frame["feasible"].map(lambda v: v is True or (not pd.isna(v) and bool(v)))
    return (frame["status"] == "COMPLETE") & feasible & ~is_baseline(frame)


def front_candidates(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[front_candidate_mask(frame)]


def completed_baselines(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[(frame["status"] == "COMPLETE") & is_baseline(frame)]


def gate_rates(value: Any) -> dict[str, float | None]:
    """The ``gate_open_rates`` cell as a dict (JSON in the file; an empty dict when absent)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value:
        parsed = json.loads(value)
        return dict(parsed) if isinstance(parsed, Mapping) else {}
    return {}


def arch_label(row: Mapping[str, Any]) -> str:
    """A short human name of a row's architecture (``r3d-18 srtg@final gru cyclic``, ``r3d-18 (baseline)``)."""
    if isinstance(row.get("baseline"), str) and row["baseline"]:
        return f"{row['baseline']} (baseline)"
    if not isinstance(row.get("spec"), str):
        return "-"
    spec = json.loads(row["spec"])
    if spec["family"] == "mtnet":
        return f"mtnet-{spec['depth']} r={spec['ratio']} g={spec['substreams']} {spec['recurrent']}"
    srtg = spec["srtg"]
    extra = "" if srtg["placement"] == "none" else f" srtg@{srtg['placement']} {srtg['recurrent']} {srtg['gate']}"
    return f"{spec['conv']}-{spec['depth']}{extra}"


def parse_run_trial(text: str) -> tuple[Path, int] | None:
    """``RUN_DIR:TRIAL_ID`` -> (run dir, trial id), negative ids (baselines) included; anything else -> None."""
    run_dir, sep, trial = text.rpartition(":")
    digits = trial[1:] if trial.startswith("-") else trial
    if sep and run_dir and digits.isascii() and digits.isdigit():  # "²".isdigit() is True
        return Path(run_dir), int(trial)
    return None


# ---- the directory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory and its two tables: ``search.yaml`` and ``trials.parquet``."""

    path: Path

    @property
    def search_file(self) -> Path:
        return self.path / SEARCH_FILE

    @property
    def space_file(self) -> Path:
        return self.path / SPACE_FILE

    @property
    def trials_file(self) -> Path:
        return self.path / TRIALS_FILE

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    @property
    def study_file(self) -> Path:
        return self.path / STUDY_FILE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def costs_dir(self) -> Path:
        return self.path / "costs"

    @property
    def ray_dir(self) -> Path:
        return self.path / "ray"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    @property
    def retrain_dir(self) -> Path:
        return self.path / RETRAIN_DIR

    @property
    def confirm_dir(self) -> Path:
        return self.path / CONFIRM_DIR

    @property
    def confirmed_file(self) -> Path:
        return self.path / CONFIRMED_FILE

    def storage_url(self, override: str | None = None) -> str:
        return override or f"sqlite:///{self.study_file.resolve()}"

    def exists(self) -> bool:
        return self.search_file.is_file()

    def read_search(self) -> dict[str, Any]:
        if not self.search_file.is_file():
            if self.search_file.exists():
                raise UserInputError(f"{self.search_file} is not a file")
            if self.study_file.exists():  # the driver stopped before the run's config was written
                raise UserInputError(f"{self.path} has no {SEARCH_FILE}: a search that stopped while starting; "
                                     f"`nas search --name {self.path.name}` starts it again")
            raise UserInputError(f"{self.path} is not a run directory (no {SEARCH_FILE}); see `nas runs`")
        try:
            content = yaml.safe_load(self.search_file.read_text()) or {}
        except (yaml.YAMLError, ValueError) as exc:  # ValueError: bytes that are not UTF-8 text
            raise UserInputError(f"{self.search_file} is not valid YAML: {exc}".split("\n")[0]) from None
        if not isinstance(content, dict):
            raise UserInputError(f"{self.search_file} is not a mapping")
        check_run_format(self.search_file, content.get("format", 1))
        return content

    def objectives(self) -> list[str]:
        """The run's objective names, in order (``search.yaml`` ``objectives``)."""
        raw = self.read_search().get("objectives", [])
        return [o["name"] if isinstance(o, dict) else str(o) for o in raw]

    def write_search(self, content: dict[str, Any]) -> None:
        atomic_write(self.search_file, yaml.safe_dump(content, sort_keys=False))

    def read_state(self) -> dict[str, Any] | None:
        """How the last driver left the run (``state.yaml``), or None for a run written before it existed.

        ``state: running`` with no driver holding the lock means that driver died (SIGKILL, power loss).
        """
        if not self.state_file.is_file():
            return None
        try:
            content = yaml.safe_load(self.state_file.read_text())
        except (yaml.YAMLError, ValueError) as exc:
            raise UserInputError(f"{self.state_file} is not valid YAML: {exc}".split("\n")[0]) from None
        return content if isinstance(content, dict) else None

    def write_state(self, content: dict[str, Any]) -> None:
        atomic_write(self.state_file, yaml.safe_dump(content, sort_keys=False))

    def read_trials(self) -> pd.DataFrame:
        if not self.trials_file.exists():  # no trial finished yet
            return trials_table([])
        if not self.trials_file.is_file():
            raise UserInputError(f"cannot read {self.trials_file}: not a file")
        try:
            return pd.read_parquet(self.trials_file)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise UserInputError(f"cannot read {self.trials_file}: {exc}".split("\n")[0]) from None

    def write_trials(self, frame: pd.DataFrame) -> None:
        atomic_write(self.trials_file, lambda tmp: frame.to_parquet(tmp, index=False))


def check_run_format(search_file: Path, version: Any) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UserInputError(f"{search_file}: format {version!r} is not a run format (an integer >= 1)")
    if version > RUN_FORMAT:
        raise UserInputError(
            f"{search_file.parent} was written by a newer videonas (run format {version}; this one reads up to "
            f"{RUN_FORMAT}): upgrade videonas to read or resume it; nothing in it was changed"
        )


def trial_row(run_dir: str | Path, trial_id: int) -> dict[str, Any]:
    """One row of ``trials.parquet`` as a dict; a missing run or trial is a user error."""
    run = RunDir(Path(run_dir))
    if not run.path.is_dir():
        raise UserInputError(f"run directory {run_dir} does not exist")
    frame = run.read_trials()
    rows = frame[frame["trial_id"] == trial_id]
    if rows.empty:
        known = ", ".join(str(t) for t in frame["trial_id"].tolist()[:20]) or "none"
        raise UserInputError(f"{run_dir} has no trial {trial_id}; trials: {known}")
    return rows.iloc[0].to_dict()
