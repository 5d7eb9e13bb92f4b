"""Parameter importance per objective, with Optuna's PED-ANOVA evaluator.

The importance is computed on an in-memory study holding only the front candidates (searched trials,
COMPLETE and feasible, see :func:`reports.analysis.front_candidates`), because the stored study also
holds INFEASIBLE / INVALID trials told "accuracy 0" and DUPLICATE copies, which would distort it.
Parameter distributions come from ``study.db`` when it is there (the real search-space ranges and
choices); otherwise they are rebuilt from ``trials.parquet``'s ``params_json`` (numbers -> a float or
int range over the observed values, anything else -> a categorical of the observed values).

PED-ANOVA is used rather than fANOVA because it needs no scikit-learn and handles the conditional
(``joint``) space; each objective is turned into "lower is better" as the evaluator expects.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from reports.analysis import front_candidates, objective_values, sampled_params
from reports.load import RunData

MIN_TRIALS = 5  # fewer completed trials carry no usable signal


@dataclass(frozen=True)
class Importance:
    per_objective: dict[str, dict[str, float]]  # objective name -> parameter -> importance (sums to 1)
    source: str  # where the parameter distributions came from
    n_trials: int
    note: str  # why it is empty, when it is


def parameter_importance(run: RunData) -> Importance:
    candidates = front_candidates(run)
    if len(candidates) < MIN_TRIALS:
        note = f"needs at least {MIN_TRIALS} completed feasible searched trials, the run has {len(candidates)}"
        return Importance({}, "", len(candidates), note)
    params = [sampled_params(text) for text in candidates["params_json"]]
    distributions, source = _stored_distributions(run, candidates)
    if not distributions:
        distributions, source = _observed_distributions(params), "trials.parquet params_json (observed values)"
    values = objective_values(candidates, run.objectives)
    study = _in_memory_study(run, params, values, distributions)
    if not any(not d.single() for d in distributions.values()):
        return Importance({}, source, len(candidates), "every sampled parameter took a single value")
    per_objective = {o.name: _importance_of(study, i, o.direction) for i, o in enumerate(run.objectives)}
    return Importance(per_objective, source, len(candidates), "")


def _in_memory_study(
    run: RunData, params: list[dict[str, Any]], values: Any, distributions: dict[str, BaseDistribution]
) -> optuna.Study:
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" chatter on the CLI
    try:
        study = optuna.create_study(directions=[o.direction for o in run.objectives])
    finally:
        optuna.logging.set_verbosity(verbosity)
    for trial_params, trial_values in zip(params, values):
        usable = {k: v for k, v in trial_params.items() if k in distributions and _fits(distributions[k], v)}
        study.add_trial(
            optuna.trial.create_trial(
                params=usable,
                distributions={k: distributions[k] for k in usable},
                values=[float(v) for v in trial_values],
            )
        )
    return study


def _fits(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` lies in ``distribution`` (a stored space may have changed on resume)."""
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return distribution.low <= value <= distribution.high


def _importance_of(study: optuna.Study, index: int, direction: str) -> dict[str, float]:
    sign = -1.0 if direction == "maximize" else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PED-ANOVA warns that it minimises; the target already does
        return optuna.importance.get_param_importances(
            study,
            evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
            target=lambda trial: sign * trial.values[index],
        )


def _stored_distributions(run: RunData, candidates: pd.DataFrame) -> tuple[dict[str, BaseDistribution], str]:
    """The distributions recorded in study.db for the candidate trials (empty if unreadable).

    The search's study is named after the run (search.yaml ``name``); baselines live in a second study
    (``NAME-baselines``) and are not read.
    """
    if run.study_path is None:
        return {}, ""
    try:
        trials = _load_stored_trials(run.study_path, run.config.get("name"))
    except Exception:  # a study being written or of another layout: fall back to params_json
        return {}, ""
    wanted = set(int(t) for t in candidates["trial_id"])
    distributions: dict[str, BaseDistribution] = {}
    for trial in trials:
        if trial.number in wanted:
            distributions.update(trial.distributions)
    return distributions, "study.db (the search-space distributions)"


def _load_stored_trials(path: Path, study_name: Any) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}", skip_table_creation=True)
    names = optuna.get_all_study_names(storage)
    name = str(study_name) if study_name in names else (names[0] if len(names) == 1 else None)
    if name is None:
        return []
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def _observed_distributions(params: list[dict[str, Any]]) -> dict[str, BaseDistribution]:
    observed: dict[str, list[Any]] = {}
    for trial_params in params:
        for key, value in trial_params.items():
            observed.setdefault(key, []).append(value)
    distributions: dict[str, BaseDistribution] = {}
    for key, values in observed.items():
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == len(values):
            if all(isinstance(v, int) for v in numbers):
                distributions[key] = IntDistribution(min(numbers), max(numbers))
            else:
                distributions[key] = FloatDistribution(float(min(numbers)), float(max(numbers)))
        else:
            choices = sorted({v for v in values}, key=lambda v: (type(v).__name__, str(v)))
            distributions[key] = CategoricalDistribution(choices)
    return distributions
