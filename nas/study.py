"""The Optuna study of a run: storage, samplers, and how our trial statuses map onto Optuna's.

Only the search driver talks to the storage (trials on Ray workers never do). Statuses (``docs/search.md``, Trial lifecycle) live in
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

Trials a dead driver left RUNNING are told FAIL on resume (:func:`requeue_interrupted`). A new driver holds no
``optuna.Trial`` for them, and Optuna's public API writes a trial's user attributes only through one, so the
interruption is recorded on the study instead (user attribute ``interrupted_trials``: trial number -> message)
and the export reads it from there (:func:`interrupted_trials`).
"""

from __future__ import annotations

import warnings

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from nas.config import Problem, SearchConfig
from runners.costs import shape_label
from space.errors import UserInputError

BASELINE_SUFFIX = "-baselines"


def metric_names(problem: Problem) -> list[str]:
    """What each told value is, in its unit, so optuna-dashboard labels its axes (``Study.set_metric_names``)."""
    shape = shape_label(problem.deploy_shape)
    names = {
        "accuracy": "accuracy (proxy val top-1, fraction)",
        "gmacs": f"GMACs @ {shape}",
        "latency": f"latency ms (median, profile {problem.latency_profile} @ {_latency_input(problem)})",
        "params": "parameters (count)",
    }
    return [names[o] for o in problem.objectives]


def _latency_input(problem: Problem) -> str:
    """The clip the latency profile times (``cpu-quick``: 8 frames, where GMACs count 16; docs/costs.md)."""
    from runners.latencyprofile import get_profile

    return get_profile(problem.latency_profile).input_label


def _name_metrics(study: optuna.Study, problem: Problem) -> optuna.Study:
    """Name the objectives once (runs created before names existed get them on resume)."""
    if study.metric_names is None:
        with warnings.catch_warnings():  # set_metric_names is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metric_names(problem))
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
    """Create (new run) or load (resume) the study named after the run."""
    sampler = make_sampler(config, num_params)
    try:
        if create:
            study = optuna.create_study(
                study_name=config.study, storage=storage_url, sampler=sampler, directions=config.problem.directions
            )
        else:
            study = optuna.load_study(study_name=config.study, storage=storage_url, sampler=sampler)
    except RuntimeError as exc:
        raise (schema_error(storage_url, exc) or exc) from None
    return _name_metrics(study, config.problem)


def schema_error(storage_url: str, exc: RuntimeError) -> UserInputError | None:
    """Optuna's refusal of a storage whose schema another Optuna version wrote, as one user-facing line."""
    if "table schema" not in str(exc):
        return None
    return UserInputError(f"the study storage {storage_url} was written by another Optuna version: {exc}")


def open_baseline_study(config: SearchConfig, storage_url: str) -> optuna.Study:
    """Baselines live in their own study: they are not samples of the space and must not steer the sampler."""
    study = optuna.create_study(
        study_name=config.study + BASELINE_SUFFIX,
        storage=storage_url,
        directions=config.problem.directions,
        load_if_exists=True,
    )
    return _name_metrics(study, config.problem)


INTERRUPTED_ATTR = "interrupted_trials"  # study user attribute: trial number (as text) -> message
INTERRUPTED_MESSAGE = "interrupted (the driver died); re-run on resume"


def interrupted_trials(study: optuna.Study) -> dict[int, str]:
    """Trial number -> message, for the trials a dead driver left RUNNING and a resume told FAIL."""
    return {int(number): message for number, message in study.user_attrs.get(INTERRUPTED_ATTR, {}).items()}


def fail_interrupted(study: optuna.Study, message: str = INTERRUPTED_MESSAGE) -> list[FrozenTrial]:
    """Tell FAIL every trial left RUNNING, marked interrupted on the study first; returns those trials.

    Marked before told: a driver that dies in between leaves them RUNNING and marked, and the next resume
    finishes the job. Interrupted trials are never counted (the core counts ``counted`` user attributes).
    """
    left = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not left:
        return []
    marks = {**study.user_attrs.get(INTERRUPTED_ATTR, {}), **{str(t.number): message for t in left}}
    study.set_user_attr(INTERRUPTED_ATTR, marks)
    for trial in left:
        # One status everywhere (docs/reliability.md): the trial's own ``status`` attribute (what optuna-dashboard
        # shows beside Optuna's FAIL, the nearest state Optuna has), `nas trials`, the progress line, the report.
        live = optuna.trial.Trial(study, trial._trial_id)
        live.set_user_attr("status", "INTERRUPTED")
        live.set_user_attr("error", message)
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    return left


def requeue_interrupted(study: optuna.Study, baseline_study: optuna.Study | None,
                        message: str = INTERRUPTED_MESSAGE) -> int:
    """On resume: interrupted trials FAIL, and those that were training enqueued again with their parameters.

    Returns how many were enqueued. Baselines are not enqueued: the core re-runs every baseline without a
    finished trial anyway. A trial that was not training yet (no ``status`` RUNNING) is not re-run.
    """
    if baseline_study is not None:
        fail_interrupted(baseline_study, message)
    requeued = 0
    for trial in fail_interrupted(study, message):
        if trial.user_attrs.get("status") == "RUNNING":
            attrs = {"attempt": trial.user_attrs.get("attempt", 0), "retry_of": trial.number}
            study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)
            requeued += 1
    return requeued
