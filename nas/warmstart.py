"""Warm start (``nas search --warm-start RUN|TABLE``): known results enter a new search's study before its first trial.

What Optuna offers for this is ``Study.add_trial`` (its answer to users asking to warm-start a study); this
module decides *which* results may be added and writes them as the search itself would have (docs/search.md,
"Warm start"):

* **From a run** (a run directory of ``nas search``): its COMPLETE, feasible trials (not baselines: they live in
  their own study), each with its accuracy at the full proxy budget, its costs, latency and per-epoch history.
* **From a recorded table** (``demo``, ``small``, a ``nas bench record`` table): every architecture of the table
  that is a point of the new space, valued at its seed-mean accuracy at the table's last epoch (which must be
  the search's ``--proxy-epochs``), with the table's costs and its seed-mean per-epoch curve as history.

A known result is only as good as the match of what produced it: the space's parameters (the sampler's
distributions), the objectives, and every setting a trial's figures depend on (:data:`MATCHED_SETTINGS`: the
proxy, the data, the deployment shape and, when latency is an objective, the latency profile) must be the
same, else the warm start is refused with one ``error:`` line naming the first difference. The search seed may
differ (another seed's run is the common case). A result that breaks the new search's static or latency
constraints is left out (the search would not train it either), and so is a second result for one architecture.

Known results enter as COMPLETE trials with ``counted`` false (they never count towards ``--trials``) and a
``warm_start`` attribute naming their source (``trials.parquet``'s ``warm_start`` column). Because they are
COMPLETE they are what the sampler learns from, a re-proposal of one of them is a DUPLICATE (never trained
again), the rung rules rank new trials against their histories (:mod:`nas.core.resume`), and they may sit on
the search's front: they are results of the same proxy, measured earlier.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nas.config import FLAT_SAMPLERS, SearchConfig, flag_of
from nas.executors.contracts import StaticCosts
from nas.core.searchcore import constraint_values
from nas.objectives import OBJECTIVES
from space import ArchSpec, spec_from_dict
from space.errors import UserInputError
from space.searchspace import SearchSpace, load_space

# The flags whose values a trial's figures depend on: a known result must have been produced with the same.
MATCHED_SETTINGS = ("proxy_epochs", "proxy_width", "proxy_frames", "proxy_size", "proxy_batch_size", "proxy_lr",
                    "data", "cache", "num_clips", "num_classes", "deploy_shape")
WARM_START_ATTR = "warm_start"  # trial user attribute: where a known result came from


@dataclass(frozen=True)
class KnownResult:
    """One architecture's result at the full proxy budget, as a warm start hands it to the new study."""

    spec: ArchSpec
    params: dict[str, Any]  # the sampler parameters that make ``spec`` in the new space
    accuracy: float
    costs: StaticCosts
    latency_ms: float | None
    latency_profile: str | None
    history: tuple[dict[str, Any], ...]  # per epoch: epoch, accuracy, loss (what the rung rules replay)
    val_clips: int | None
    num_classes: int | None
    origin: str  # "run runs/a, trial 7" / "table demo"


@dataclass(frozen=True)
class WarmStart:
    """What ``--warm-start`` found: the results to add, and how many of the source's were left out and why."""

    source: str
    results: tuple[KnownResult, ...]
    left_out: dict[str, int]  # reason -> count

    def describe(self) -> str:
        skipped = "; ".join(f"{n} {reason}" for reason, n in self.left_out.items() if n)
        return (f"warm start from {self.source}: {len(self.results)} known results"
                + (f" ({skipped} left out)" if skipped else ""))


# ---- loading (before the run directory, the study or Ray exists: docs/reliability.md) -----------------------


def load_warm_start(config: SearchConfig, space: SearchSpace) -> WarmStart:
    """The known results ``config.warm_start`` names, checked against ``config`` and ``space``; raises a
    :class:`UserInputError` (one line) when they may not be used."""
    source = str(config.warm_start)
    path = Path(source)
    if (path / "search.yaml").is_file():
        return _from_run(path, config, space)
    from nas.sim.shipped import SHIPPED_TABLES

    if source in SHIPPED_TABLES or path.is_file() or (path / "table.parquet").is_file():
        return _from_table(source, config, space)
    raise UserInputError(f"--warm-start {source}: not a run directory (no search.yaml), a table file or a shipped "
                         f"table; allowed: a run of `nas search`, or one of {', '.join(SHIPPED_TABLES)} or a "
                         "table.parquet of `nas bench record`")


def _refuse(source: str, what: str) -> UserInputError:
    return UserInputError(f"--warm-start {source}: {what}; a warm start needs the same space, objectives and proxy "
                          "settings (start from a matching run, or search without --warm-start)")


def _check_settings(source: str, theirs: dict[str, Any], config: SearchConfig, *, objectives: tuple[str, ...] | None,
                    latency_profile: str | None) -> None:
    ours = config.to_dict()
    for name in MATCHED_SETTINGS:
        if json.dumps(theirs.get(name)) != json.dumps(ours[name]):
            raise _refuse(source, f"its {flag_of(name)} is {theirs.get(name)!r}, this search's {ours[name]!r}")
    if objectives is not None and set(objectives) != set(config.problem.objectives):
        raise _refuse(source, f"its objectives are {','.join(objectives)}, this search's "
                              f"{','.join(config.problem.objectives)}")
    if config.problem.needs_latency and latency_profile != config.problem.latency_profile:
        raise _refuse(source, f"its latencies were measured with profile {latency_profile!r}, this search's "
                              f"with {config.problem.latency_profile!r}")


def _parameters(space: SearchSpace) -> list[tuple[str, tuple]]:
    return [(d.name, tuple(d.encoded_choices())) for d in space.parameters()]


def _from_run(path: Path, config: SearchConfig, space: SearchSpace) -> WarmStart:
    from nas.config import load_run_config
    from nas.runmodel import RunDir

    source = f"run {path}"
    run = RunDir(path)
    earlier = load_run_config(path)
    their_space = load_space(str(run.space_file) if run.space_file.is_file() else earlier.space)
    if _parameters(their_space) != _parameters(space):
        raise _refuse(str(path), f"its space {earlier.space!r} has other parameters than {config.space!r}")
    _check_settings(str(path), earlier.to_dict(), config, objectives=earlier.problem.objectives,
                    latency_profile=earlier.problem.latency_profile)
    try:
        storage = optuna.storages.RDBStorage(run.storage_url(earlier.execution.storage), skip_table_creation=True)
        trials = optuna.load_study(study_name=earlier.study, storage=storage).get_trials(deepcopy=False)
    except Exception as exc:  # a damaged, locked or unreachable study is the user's to fix, in one line
        raise UserInputError(f"--warm-start {path}: cannot read its study ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return _select(source, [_result_of_trial(t, source, space) for t in trials if _is_known(t)], config)


def from_study(study: optuna.Study, source: str, config: SearchConfig, space: SearchSpace) -> WarmStart:
    """The known results of a study of the same space and settings (a simulated run's: ``nas bench warm-start``)."""
    return _select(source, [_result_of_trial(t, source, space) for t in study.get_trials(deepcopy=False)
                            if _is_known(t)], config)


def _is_known(trial: optuna.trial.FrozenTrial) -> bool:
    attrs = trial.user_attrs
    return (trial.state == TrialState.COMPLETE and attrs.get("status") == "COMPLETE"
            and attrs.get("feasible", True) and attrs.get("spec") is not None)


def _result_of_trial(trial: optuna.trial.FrozenTrial, source: str, space: SearchSpace) -> KnownResult | None:
    attrs = trial.user_attrs
    spec = spec_from_dict(json.loads(attrs["spec"]) if isinstance(attrs["spec"], str) else attrs["spec"])
    params = space.params_for(spec)
    if params is None:
        return None
    history = tuple({"epoch": int(h["epoch"]), "accuracy": h.get("accuracy"), "loss": h.get("loss")}
                    for h in attrs.get("history") or [])
    return KnownResult(
        spec=spec, params=params, accuracy=float(attrs["accuracy"]),
        costs=StaticCosts(gmacs=float(attrs["gmacs"]), params=int(attrs["params"]),
                          recurrent_params=int(attrs.get("recurrent_params") or 0)),
        latency_ms=attrs.get("latency_ms"), latency_profile=attrs.get("latency_profile"), history=history,
        val_clips=attrs.get("val_clips"), num_classes=attrs.get("num_classes"),
        origin=attrs.get(WARM_START_ATTR) or f"{source}, trial {trial.number}")


def _from_table(source: str, config: SearchConfig, space: SearchSpace) -> WarmStart:
    from nas.sim.shipped import load_table
    from nas.sim.table import table_val_clips

    try:
        _, table = load_table(source, quick=False)
    except UserInputError as exc:
        raise UserInputError(f"--warm-start {source}: {exc}") from None
    settings = dict(table.manifest.get("settings") or {})
    _check_settings(source, settings, config, objectives=None, latency_profile=settings.get("latency_profile"))
    epochs = int(settings["proxy_epochs"])
    rows = table.rows[table.rows["error"].isna() & table.rows["baseline"].isna()]
    results: list[KnownResult | None] = []
    for key, curve in rows.groupby("spec_key", sort=True):
        per_epoch = curve.groupby("epoch").agg(accuracy=("accuracy", "mean"), loss=("loss", "mean"))
        if epochs not in per_epoch.index:
            continue
        first = curve.iloc[0]
        spec = spec_from_dict(json.loads(first["spec"]))
        params = space.params_for(spec)
        latency = curve["latency_ms"].dropna()
        results.append(None if params is None else KnownResult(
            spec=spec, params=params, accuracy=float(per_epoch.loc[epochs, "accuracy"]),
            costs=StaticCosts(gmacs=float(first["gmacs"]), params=int(first["params"]),
                              recurrent_params=int(first["recurrent_params"])),
            latency_ms=float(latency.mean()) if len(latency) else None,
            latency_profile=settings.get("latency_profile"),
            history=tuple({"epoch": int(e), "accuracy": float(r.accuracy), "loss": float(r.loss)}
                          for e, r in per_epoch.iterrows() if e > 0),
            val_clips=table_val_clips(table), num_classes=settings.get("num_classes"), origin=f"table {source}"))
    return _select(f"table {source}", results, config, empty_reason="none of its architectures is in this space")


def _select(source: str, found: list[KnownResult | None], config: SearchConfig,
            empty_reason: str = "it has no COMPLETE, feasible trial of this space") -> WarmStart:
    """Drop what the new search could not use: outside the space, over a constraint, a second result of one
    architecture. Refuses a source with nothing left."""
    left_out = {"outside this space": 0, "over a constraint": 0, "repeated architectures": 0}
    chosen: dict[str, KnownResult] = {}
    for result in found:
        if result is None:
            left_out["outside this space"] += 1
        elif any(v > 0 for v in constraint_values(config.problem, result.costs, result.latency_ms).values()):
            left_out["over a constraint"] += 1
        elif result.spec.key() in chosen:
            left_out["repeated architectures"] += 1
        elif config.problem.needs_latency and result.latency_ms is None:
            left_out["outside this space"] += 1
        else:
            chosen[result.spec.key()] = result
    if not chosen:
        raise _refuse(source.split(" ", 1)[1], empty_reason if not found else
                      f"none of its {len(found)} results can be used here ({_reasons(left_out)})")
    return WarmStart(source, tuple(chosen.values()), left_out)


def _reasons(left_out: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in left_out.items() if n)


# ---- adding (a fresh run's study, right after it is created) ----------------------------------------------


def add_known_results(study: optuna.Study, warm: WarmStart, config: SearchConfig, space: SearchSpace, *,
                      at: float) -> int:
    """Add ``warm``'s results to ``study`` as COMPLETE, uncounted trials; returns how many were added.

    ``at``: the time they are stamped with (the search's start; the simulator's clock 0)."""
    added = 0
    distributions = {d.name: CategoricalDistribution(d.encoded_choices()) for d in space.parameters()}
    flat = config.sampler in FLAT_SAMPLERS  # breeds only the genes all trials carry (docs/search.md)
    for result in warm.results:
        violations = constraint_values(config.problem, result.costs, result.latency_ms)
        constraints = {"invalid": 0.0, **{flag: violations.get(flag, 0.0) for flag in config.problem.constraints}}
        values = []
        for name in config.problem.objectives:
            column = OBJECTIVES[name].column
            values.append(result.accuracy if column == "accuracy" else
                          float({"gmacs": result.costs.gmacs, "params": result.costs.params,
                                 "latency_ms": result.latency_ms}[column]))
        if not all(math.isfinite(v) for v in values):
            continue
        added += 1
        attrs = {
            "status": "COMPLETE", "counted": False, WARM_START_ATTR: result.origin, "spec": result.spec.to_json(),
            "spec_key": result.spec.key(), "family": result.spec.family, "accuracy": result.accuracy,
            "gmacs": result.costs.gmacs, "params": result.costs.params,
            "recurrent_params": result.costs.recurrent_params, "latency_ms": result.latency_ms,
            "latency_profile": result.latency_profile, "fidelity": config.proxy.epochs,
            "max_fidelity": config.proxy.epochs, "history": [dict(h) for h in result.history],
            "constraints": list(constraints.values()), "feasible": True, "val_clips": result.val_clips,
            "num_classes": result.num_classes, "started_at": at, "finished_at": at,
        }
        params = space.flat_params(result.params) if flat else result.params
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: distributions[k] for k in params}, values=values,
            user_attrs=json.loads(json.dumps(attrs, default=float)), constraints=constraints))
    return added
