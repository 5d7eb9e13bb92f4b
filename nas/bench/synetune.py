"""``nas bench export-syne --table NAME|FILE --out DIR``: a recorded table as a Syne Tune tabular blackbox.

Syne Tune (https://github.com/syne-tune/syne-tune) benchmarks its schedulers on *blackboxes*: tables of
evaluations it replays on a simulated clock. This module writes a recorded table (the benchmark table of
``nas bench curves``, or an epoch table of ``nas bench record``: the shipped ``bench``, ``demo`` and ``small``)
in the on-disk format Syne Tune's ``blackbox_tabular.deserialize(DIR)`` reads (``BlackboxTabular``), so its
baselines run on our architectures. The files are written directly (numpy, pyarrow, json): the export needs no
Syne Tune; reading it back does (the ``synetune`` extra). The mapping (docs/bench/bench-table.md, "Using the
table in Syne Tune"):

* **configuration space**: one categorical hyperparameter ``hp_<field>`` per field of the architecture spec
  (nested fields joined by ``_``: ``hp_srtg_placement``) that takes more than one value among the table's
  architectures; every value is text (a string as it is, ``none`` for null, a number as JSON: ``18``,
  ``0.875``), ``absent`` where the field does not exist in that family (``hp_ratio`` of a ResNet). Fields equal for every
  architecture that has them are in the metadata (``constant_hyperparameters``). One row per architecture: the table's
  space is conditional, so most combinations of the categories were never recorded; a search draws from
  ``blackbox.all_configurations()`` (or puts a surrogate over the blackbox).
* **fidelity**: benchmark tables ``hp_steps``, optimisation steps at each recorded budget (0.5 epoch is 24
  steps: Syne Tune's schedulers and its simulator need whole-number resources); epoch tables ``hp_epoch``.
* **seeds**: the recorded training seeds, in order; an architecture with fewer complete runs repeats its own in
  order (slot i holds its seed number i modulo its count), and ``seed_slots`` in the metadata says which recorded
  seed each slot holds. Failed or unfinished runs are not exported (``dropped_runs``), nor an architecture
  without a complete run.
* **objectives** (float64; Syne Tune's own serialiser writes float32, its loader reads both):
  ``metric_valid_error`` (1 - accuracy, minimised: the default metric), ``metric_valid_accuracy``,
  ``metric_valid_loss`` (benchmark tables only), ``metric_train_loss``, ``metric_runtime`` (seconds of this
  fidelity step), ``metric_elapsed_time`` (cumulative: Syne Tune's time attribute), ``metric_elapsed_wall_time``,
  and the static costs ``metric_gmacs``, ``metric_params``, ``metric_latency_ms`` (the same at every fidelity;
  latency only when every architecture has one). The clock is our simulator's: a benchmark table's CPU seconds
  (one thread per run, what it takes alone on an idle core), an epoch table's wall seconds; wall seconds are kept
  in ``metric_elapsed_wall_time``.
* **task**: the table's dataset (``synthetic``); everything above and the table's whole manifest are in
  ``metadata.json`` under ``videonas``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

FORMAT_VERSION = 1
NOT_APPLICABLE = "absent"  # not "n/a", "null" or "None": pandas reads those as missing (Syne Tune's results CSV)
BLACKBOX_FILES = ("configspace.json", "fidelityspace.json", "hyperparameters.parquet",
                  "objectives_evaluations.npy", "fidelities_values.npy", "metadata.json")
DEFAULT_METRIC = "metric_valid_error"
ELAPSED_TIME = "metric_elapsed_time"
OBJECTIVES: dict[str, str] = {
    "metric_valid_error": "1 - validation top-1 (minimised)",
    "metric_valid_accuracy": "validation top-1 (fraction)",
    "metric_valid_loss": "mean validation cross-entropy",
    "metric_train_loss": "mean training loss since the previous fidelity",
    "metric_runtime": "seconds of this fidelity step on the clock",
    ELAPSED_TIME: "seconds from the start of training to this fidelity on the clock (cumulative)",
    "metric_elapsed_wall_time": "wall seconds from the start of training to this fidelity (cumulative)",
    "metric_gmacs": "GMACs of the deployment model (static)",
    "metric_params": "parameters of the deployment model (static)",
    "metric_latency_ms": "median forward latency on the table's latency profile, ms (static)",
}
PROGRESS_AFTER_S = 2.0


class _Progress:
    """One stderr line per phase, once the export has taken longer than ``PROGRESS_AFTER_S``."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, text: str) -> None:
        if time.monotonic() - self.start > PROGRESS_AFTER_S:
            print(f"export-syne: {text} ({time.monotonic() - self.start:.0f} s)", file=sys.stderr, flush=True)


def _table_path(table: str | Path) -> Path:
    """A shipped table's name, a table file or its folder -> the Parquet file (refused when missing)."""
    from nas.sim.shipped import SHIPPED_TABLES, shipped_table
    from nas.sim.table import TABLE_FILE
    from space.errors import UserInputError

    if str(table) in SHIPPED_TABLES:
        return shipped_table(str(table))
    path = Path(table)
    path = path / TABLE_FILE if path.is_dir() else path
    if not path.is_file():
        raise UserInputError(f"no recorded table at {path}; allowed: {', '.join(SHIPPED_TABLES)}, "
                             "a table.parquet of `nas bench curves` / `nas bench record`, or its folder")
    return path


def _runs(path: Path) -> tuple["pd.DataFrame", dict[str, Any], str, dict[str, str]]:
    """The table's complete runs as rows (spec_key, spec, baseline, seed, fidelity, accuracy, val_loss,
    train_loss, seconds, wall_seconds, gmacs, params, latency_ms), its manifest, its fidelity's name and the runs
    left out (``"SPEC_KEY seed S"`` -> why)."""
    import pyarrow.parquet as pq

    from nas.sim import curvetable
    from space.errors import UserInputError

    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read table {path}: {exc}".split("\n")[0]) from None
    if curvetable.MANIFEST_KEY in metadata:
        return _curve_runs(curvetable.read_curve_table(path))
    from nas.sim.table import read_table

    return _epoch_runs(read_table(path))


def _complete(rows: "pd.DataFrame", done: set[tuple[str, int]], fidelity: str) -> tuple["pd.DataFrame", dict[str, str]]:
    """The rows of runs that trained to the largest budget, and the others: failed, or unfinished."""
    import pandas as pd

    failed = rows["error"].map(lambda e: isinstance(e, str) and e != "")
    skipped = {f"{k} seed {int(s)}": "failed: " + str(e).strip().split("\n")[0][:200]
               for k, s, e in zip(rows.loc[failed, "spec_key"], rows.loc[failed, "seed"], rows.loc[failed, "error"])}
    for key, seed in sorted(set(zip(rows["spec_key"], rows["seed"].astype(int))) - done):
        skipped[f"{key} seed {seed}"] = "unfinished: not evaluated at the largest budget"
    listed = pd.Series([f"{k} seed {int(s)}" in skipped for k, s in zip(rows["spec_key"], rows["seed"])],
                       index=rows.index, dtype=bool)
    return rows[~listed & (rows[fidelity] > 0) & ~failed], skipped


def _curve_runs(table: Any) -> tuple["pd.DataFrame", dict[str, Any], str, dict[str, str]]:
    """A benchmark table (:class:`nas.sim.curvetable.CurveTable`): fidelity = optimisation steps."""
    import pandas as pd

    from space.errors import UserInputError

    rows, skipped = _complete(table.rows, table.done(), "budget")
    steps = rows.groupby("budget")["steps"].nunique()
    if (steps > 1).any():
        raise UserInputError(f"the table's runs took different numbers of steps to budget {steps[steps > 1].index[0]}; "
                             "allowed: one step count per budget (the same data and batch size for every run)")
    frame = pd.DataFrame({
        "spec_key": rows["spec_key"], "spec": rows["spec"], "baseline": None, "seed": rows["seed"].astype(int),
        "fidelity": rows["steps"].astype("int64"), "accuracy": rows["accuracy"], "val_loss": rows["val_loss"],
        "train_loss": rows["train_loss"], "seconds": rows["cpu_seconds"], "wall_seconds": rows["seconds"],
        "gmacs": rows["gmacs"], "params": rows["params"].astype(float), "latency_ms": rows["latency_ms"]})
    return frame.reset_index(drop=True), table.manifest, "hp_steps", skipped


def _epoch_runs(table: Any) -> tuple["pd.DataFrame", dict[str, Any], str, dict[str, str]]:
    """An epoch table (:class:`nas.sim.table.Table`): fidelity = epochs; no validation loss was recorded."""
    import numpy as np
    import pandas as pd

    rows, skipped = _complete(table.rows, table.done(), "epoch")
    frame = pd.DataFrame({
        "spec_key": rows["spec_key"], "spec": rows["spec"], "baseline": rows["baseline"],
        "seed": rows["seed"].astype(int), "fidelity": rows["epoch"].astype("int64"), "accuracy": rows["accuracy"],
        "val_loss": np.nan, "train_loss": rows["loss"], "seconds": rows["seconds"], "wall_seconds": rows["seconds"],
        "gmacs": rows["gmacs"], "params": rows["params"].astype(float), "latency_ms": rows["latency_ms"]})
    return frame.reset_index(drop=True), table.manifest, "hp_epoch", skipped


def _flatten(spec: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], str]:
    """A spec's fields as text, nested fields by their path (``("srtg", "placement")``)."""
    out: dict[tuple[str, ...], str] = {}
    for name, value in spec.items():
        if isinstance(value, dict):
            out.update(_flatten(value, prefix + (name,)))
        else:
            out[prefix + (name,)] = value if isinstance(value, str) else "none" if value is None else json.dumps(value)
    return out


def _category_order(text: str) -> tuple[int, float, str]:
    try:
        return (text == NOT_APPLICABLE, float(text), text)
    except ValueError:
        return (text == NOT_APPLICABLE, float("inf"), text)


def _hyperparameters(specs: list[str]) -> tuple["pd.DataFrame", dict[str, list[str]], dict[str, str], dict[str, str]]:
    """One row per architecture: the varying spec fields as categorical text columns; their categories, the
    column -> field path map, and the fields every architecture shares."""
    import pandas as pd

    from space.errors import UserInputError

    flat = [_flatten(json.loads(spec)) for spec in specs]
    paths = sorted({path for fields in flat for path in fields})
    values = {path: [fields.get(path, NOT_APPLICABLE) for fields in flat] for path in paths}
    varying = [path for path in paths if len(set(values[path]) - {NOT_APPLICABLE}) > 1] or paths
    names = {path: "hp_" + "_".join(path) for path in varying}
    frame = pd.DataFrame({names[p]: pd.Series(values[p], dtype=object) for p in varying})
    constant = {".".join(p): next(v for v in values[p] if v != NOT_APPLICABLE) for p in paths if p not in names}
    repeated = frame.duplicated()
    if repeated.any():
        raise UserInputError(f"two architectures of the table have the same spec fields (row {int(repeated.idxmax())})")
    categories = {names[p]: sorted(set(values[p]), key=_category_order) for p in varying}
    return frame, categories, {names[p]: ".".join(p) for p in varying}, constant


def _seed_slots(runs: "pd.DataFrame", keys: list[str]) -> tuple[list[int], list[list[int]]]:
    """The recorded seeds, and per architecture the recorded seed each slot holds (its own, repeated in order)."""
    seeds = sorted(int(s) for s in runs["seed"].unique())
    own = runs.groupby("spec_key")["seed"].unique()
    slots = []
    for key in keys:
        available = sorted(int(s) for s in own[key])
        slots.append([available[i % len(available)] for i in range(len(seeds))])
    return seeds, slots


def _objective_names(runs: "pd.DataFrame") -> list[str]:
    names = list(OBJECTIVES)
    if runs["val_loss"].isna().all():
        names.remove("metric_valid_loss")
    if runs["latency_ms"].isna().any():
        names.remove("metric_latency_ms")
    return names


def _run_objectives(run: "pd.DataFrame", names: list[str]) -> "np.ndarray":
    """One run's objectives: shape (fidelities, objectives), the run's rows sorted by fidelity."""
    import numpy as np

    columns = {
        "metric_valid_error": 1.0 - run["accuracy"], "metric_valid_accuracy": run["accuracy"],
        "metric_valid_loss": run["val_loss"], "metric_train_loss": run["train_loss"],
        "metric_runtime": run["seconds"], ELAPSED_TIME: run["seconds"].cumsum(),
        "metric_elapsed_wall_time": run["wall_seconds"].cumsum(), "metric_gmacs": run["gmacs"],
        "metric_params": run["params"], "metric_latency_ms": run["latency_ms"]}
    return np.stack([np.asarray(columns[name], dtype=np.float64) for name in names], axis=-1)


def _drop_incomplete(runs: "pd.DataFrame", fidelities: list[int]) -> tuple["pd.DataFrame", dict[str, str]]:
    """Runs evaluated at every fidelity; the others, named ``"SPEC_KEY seed S"`` with why they were dropped."""
    import pandas as pd

    kept, dropped = [], {}
    for (key, seed), run in runs.groupby(["spec_key", "seed"], sort=False):
        run = run.sort_values("fidelity")
        if run["fidelity"].tolist() == fidelities:
            kept.append(run)
        else:
            dropped[f"{key} seed {int(seed)}"] = f"evaluated at {run['fidelity'].tolist()}, not at {fidelities}"
    return pd.concat(kept, ignore_index=True) if kept else runs.iloc[:0], dropped


def _evaluations(runs: "pd.DataFrame", keys: list[str], slots: list[list[int]], names: list[str]) -> "np.ndarray":
    """(architectures, seeds, fidelities, objectives) from complete runs sorted by fidelity."""
    import numpy as np

    by_run = {(k, int(s)): run for (k, s), run in runs.groupby(["spec_key", "seed"], sort=False)}
    return np.stack([np.stack([_run_objectives(by_run[(key, seed)], names) for seed in seeds])
                     for key, seeds in zip(keys, slots)])


def build_blackbox(table: str | Path) -> dict[str, Any]:
    """The blackbox of ``table`` (a shipped table's name, a file or its folder) in memory: ``hyperparameters``
    (DataFrame), ``configspace`` / ``fidelityspace`` (Syne Tune's JSON form), ``fidelity_values``,
    ``evaluations`` (tasks x architectures x seeds x fidelities x objectives) and ``metadata``. Writes nothing."""
    import numpy as np

    from space.errors import UserInputError

    path = _table_path(table)
    runs, manifest, fidelity, skipped = _runs(path)
    fidelities = sorted(int(f) for f in runs["fidelity"].unique())
    runs, dropped = _drop_incomplete(runs, fidelities)
    dropped = {**skipped, **dropped}
    if runs.empty:
        raise UserInputError(f"{path} holds no complete run to export")
    keys = list(dict.fromkeys(runs["spec_key"]))
    seeds, slots = _seed_slots(runs, keys)
    names = _objective_names(runs)
    first = runs.drop_duplicates("spec_key").set_index("spec_key")
    hyperparameters, categories, fields, constant = _hyperparameters([first.loc[k, "spec"] for k in keys])
    configspace = {name: {"domain_cls": "Categorical", "domain_kwargs": {"categories": values},
                          "sampler_cls": "Uniform", "sampler_kwargs": {}} for name, values in categories.items()}
    bounds = {"lower": fidelities[0], "upper": fidelities[-1]}
    fidelityspace = {fidelity: {"domain_cls": "Integer", "domain_kwargs": bounds, "sampler_cls": "Uniform",
                                "sampler_kwargs": {}}}
    task = str(manifest.get("data", {}).get("kind") or manifest.get("settings", {}).get("data") or "synthetic")
    videonas = {
        "format": FORMAT_VERSION, "table": str(table), "table_kind": "curves" if fidelity == "hp_steps" else "epochs",
        "spec_keys": keys, "hyperparameter_fields": fields, "constant_hyperparameters": constant,
        "not_applicable": NOT_APPLICABLE,
        "baselines": {k: b for k, b in zip(keys, first.loc[keys, "baseline"]) if isinstance(b, str) and b},
        "fidelity": {"name": fidelity, "unit": "optimisation steps" if fidelity == "hp_steps" else "epochs",
                     "epochs": manifest.get("budgets") or fidelities},
        "seeds": seeds, "seed_slots": slots,
        "seed_rule": "slot i holds the architecture's recorded seed number i modulo its count of complete runs",
        "objectives": {name: OBJECTIVES[name] for name in names},
        "clock": "CPU seconds of a one-thread run" if fidelity == "hp_steps" else "epoch wall seconds",
        "latency": "exported" if "metric_latency_ms" in names else "left out: not every architecture has one",
        "dropped_runs": dropped, "table_manifest": manifest,
    }
    metadata = {"objectives_names": names, "task_names": [task], "metric_elapsed_time": ELAPSED_TIME,
                "metric_default": DEFAULT_METRIC, "time_attr": fidelity, "videonas": videonas}
    return {"hyperparameters": hyperparameters, "configspace": configspace, "fidelityspace": fidelityspace,
            "fidelity_values": np.asarray(fidelities, dtype=np.int64),
            "evaluations": _evaluations(runs, keys, slots, names)[None], "metadata": metadata}


def _check_out(out: Path) -> None:
    """``out`` may be missing, an empty folder or an earlier export (replaced whole); nothing else."""
    from space.errors import UserInputError

    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file; allowed: a new or empty folder, or an earlier export")
    blocked = next((parent for parent in out.parents if parent.exists() and not parent.is_dir()), None)
    if blocked is not None:
        raise UserInputError(f"--out {out}: {blocked} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            earlier = "videonas" in dict(json.loads((out / "metadata.json").read_text()))
        except (OSError, ValueError, TypeError):
            earlier = False
        if not earlier:
            raise UserInputError(f"--out {out} is a folder that holds other files; allowed: a new or empty "
                                 "folder, or an earlier `nas bench export-syne` output (replaced whole)")


def write_blackbox(blackbox: dict[str, Any], out: Path) -> None:
    """Write the files Syne Tune's ``blackbox_tabular.deserialize`` reads, all at once (:func:`atomic_dir`)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from space.files import atomic_dir

    with atomic_dir(out) as staged:
        for name in ("configspace", "fidelityspace"):
            (staged / f"{name}.json").write_text(json.dumps(blackbox[name], indent=1))
        hyperparameters = pa.Table.from_pandas(blackbox["hyperparameters"].astype(str), preserve_index=False)
        pq.write_table(hyperparameters, staged / "hyperparameters.parquet", compression="gzip")
        np.save(staged / "objectives_evaluations.npy", blackbox["evaluations"], allow_pickle=False)
        np.save(staged / "fidelities_values.npy", blackbox["fidelity_values"], allow_pickle=False)
        (staged / "metadata.json").write_text(json.dumps(blackbox["metadata"], indent=1, default=str))


def export_syne_blackbox(table: str | Path, out: str | Path) -> dict[str, Any]:
    """Write ``table`` (``bench``, ``demo``, ``small``, a table file or its folder) as a Syne Tune blackbox in
    ``out`` (a new or empty folder, or an earlier export, replaced whole); returns what was written.

    Load it back with Syne Tune: ``blackbox_tabular.deserialize(out)[task]`` (docs/bench/bench-table.md)."""
    out = Path(out)
    progress = _Progress()
    _check_out(out)
    blackbox = build_blackbox(table)
    progress(f"writing {out}")
    write_blackbox(blackbox, out)
    meta = blackbox["metadata"]
    shape = blackbox["evaluations"].shape
    return {"blackbox": str(out), "task": meta["task_names"][0], "architectures": shape[1], "seeds": shape[2],
            "fidelity": meta["time_attr"], "fidelity_values": blackbox["fidelity_values"].tolist(),
            "objectives": meta["objectives_names"], "hyperparameters": list(blackbox["configspace"]),
            "filled_seed_slots": sum(len(set(s)) < len(s) for s in meta["videonas"]["seed_slots"]),
            "dropped_runs": len(meta["videonas"]["dropped_runs"])}


def run_export_syne_benchmark(out_dir: Path, *, quick: bool = False, table: str | None = None) -> dict[str, Any]:
    """``nas bench export-syne [--table bench] [--out DIR]``: the table (default ``bench``) as a Syne Tune
    blackbox in ``out_dir``. ``--quick`` changes nothing (the export takes seconds)."""
    return export_syne_blackbox(table or "bench", out_dir)
