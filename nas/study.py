"""The Optuna study of a run: storage, samplers, and how our trial statuses map onto Optuna's.

Only the search driver talks to the storage (trials on Ray workers never do). Statuses (SPEC 5) live in
the trial's ``status`` user attribute; Optuna's own state is chosen so samplers learn the right thing:

==============  ===============  ===========================================================
ours            Optuna state     values told
==============  ===============  ===========================================================
COMPLETE        COMPLETE         proxy accuracy and real costs
PRUNED          PRUNED           none (partial accuracy must not enter the front)
FAIL            FAIL             none; ``--retries`` re-enqueues the same parameters
INFEASIBLE      COMPLETE         accuracy 0 and the real costs; ``constraints`` > 0
INVALID         COMPLETE         accuracy 0 and the costs' upper bounds; ``constraints`` > 0
DUPLICATE       as the original  the original's values (never re-trained)
==============  ===============  ===========================================================

Every told trial carries its constraint values (``invalid``, then ``value - limit`` per active constraint;
feasible iff all <= 0), set with ``Trial.set_constraint`` (Optuna >= 5), so constrained TPE / NSGA-II / GP
learn from infeasible and invalid samples without them ever being trained. The same list is kept in the
``constraints`` user attribute for the reports.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.samplers import BaseSampler

from nas.config import SearchConfig
from runners.costs import shape_label

BASELINE_SUFFIX = "-baselines"


def metric_names(config: SearchConfig) -> list[str]:
    """What each told value is, in its unit, so optuna-dashboard labels its axes (``Study.set_metric_names``)."""
    shape = shape_label(config.deploy_shape)
    names = {
        "accuracy": "accuracy (proxy val top-1, fraction)",
        "gmacs": f"GMACs @ {shape}",
        "latency": f"latency ms (median, profile {config.latency_profile})",
        "params": "parameters (count)",
    }
    return [names[o] for o in config.objectives]


def _name_metrics(study: optuna.Study, config: SearchConfig) -> optuna.Study:
    """Name the objectives once (runs created before names existed get them on resume)."""
    if study.metric_names is None:
        with warnings.catch_warnings():  # set_metric_names is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metric_names(config))
    return study


def make_sampler(config: SearchConfig, num_params: int) -> BaseSampler:
    """The sampler ``--sampler`` names, constructed explicitly with its arguments and the seed."""
    seed = config.seed
    if config.sampler == "tpe":
        with warnings.catch_warnings():  # `group` is marked experimental; it is what conditional spaces need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed,
                multivariate=True,
                group=True,  # conditional spaces: model each parameter group on the trials that have it
                constant_liar=True,  # concurrent trials: do not propose the same point to parallel workers
                n_startup_trials=min(10, max(2, config.trials // 4)),
            )
    if config.sampler == "nsga2":
        population = max(4, min(50, config.trials // 4))  # sized to the budget: ~4 generations at least
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if config.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(10, max(2, config.trials // 4)))
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(config: SearchConfig, storage_url: str, *, num_params: int, create: bool) -> optuna.Study:
    """Create (new run) or load (resume) the run's study (``config.study``: named once, at creation)."""
    sampler = make_sampler(config, num_params)
    if create:
        study = optuna.create_study(
            study_name=config.study, storage=storage_url, sampler=sampler, directions=config.directions
        )
    else:
        study = optuna.load_study(study_name=config.study, storage=storage_url, sampler=sampler)
    return _name_metrics(study, config)


def open_baseline_study(config: SearchConfig, storage_url: str) -> optuna.Study:
    """Baselines live in their own study: they are not samples of the space and must not steer the sampler."""
    study = optuna.create_study(
        study_name=config.study + BASELINE_SUFFIX,
        storage=storage_url,
        directions=config.directions,
        load_if_exists=True,
    )
    return _name_metrics(study, config)
