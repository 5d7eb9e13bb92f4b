"""The search core: every decision of a search as plain Python over an Optuna study (``docs/search.md``), no Ray.

An executor (:mod:`nas.executors`: Ray Tune, the simulator, a local process pool) drives it through
:class:`nas.executors.loop.SearchLoop`, with the typed contracts of :mod:`nas.executors.contracts`:

* :meth:`SearchCore.suggest` asks the study, samples a spec from the space, and settles on the spot (never
  trained) the samples that need no training: INVALID (``SpecError`` at full or proxy width), INFEASIBLE (a
  static constraint fails: GMACs, params) and DUPLICATE (a spec key already evaluated). Then it asks again,
  up to ``max_resamples`` times; a sampler that keeps proposing nothing new ends the search with a message.
  Static costs come from the fast meta-device count, so ``suggest()`` never blocks for long.
* :meth:`SearchCore.on_outcome` maps the outcome to its status (:func:`trained_status`) and tells the
  study: COMPLETE (trained to the full proxy budget), PRUNED (stopped earlier by a rung rule or the time
  budget; the fidelity reached is recorded), FAIL (an error or NaN loss, with the message; ``--retries``
  re-enqueues the same parameters; any exception while telling also ends the trial FAIL) or INFEASIBLE
  (latency over ``--max-latency-ms``, measured inside the trial before any training).

Why not Ray's stock ``OptunaSearch``: it tells an early-stopped trial COMPLETE with its partial accuracy,
which puts half-trained networks on the Pareto front. The rung rules (continue or stop at a rung) are
:mod:`nas.core.rungs`. Only this object writes to the study. ``--trials N`` counts trials that trained:
COMPLETE, PRUNED and FAIL after its last retry.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from nas.config import FLAT_SAMPLERS, Problem, SearchConfig
from nas.executors.contracts import EpochReport, LatencyReading, OutcomeKind, StaticCosts, TrialOutcome, TrialRequest
from nas.objectives import CONSTRAINTS, OBJECTIVES
from nas.runmodel import gate_rates
from space import ArchSpec, SpecError, catalog_spec
from space.searchspace import SearchSpace

FINISHED = "FINISHED"  # suggest(): the search is over (the value Ray Tune's Searcher.FINISHED also has)


def trained_status(fidelity: int, max_fidelity: int) -> str:
    """The status of a trial that trained without error: COMPLETE at the full budget, else PRUNED.

    Whatever a scheduler said at the last report: a trial trained to its full budget is COMPLETE (``docs/search-space.md``, MO-ASHA).
    """
    return "COMPLETE" if fidelity >= max_fidelity else "PRUNED"


COUNTED_STATUSES = ("COMPLETE", "PRUNED", "FAIL")


def trial_seed(search_seed: int, spec_key: str) -> int:
    """The seed a trial trains with: same (search seed, architecture) -> same proxy initialisation and data
    order, whatever the trial number (``nas bench record`` records exactly these seeds)."""
    return (search_seed * 1_000_003 + int(spec_key[:8], 16)) % (2**31)


StaticCostFn = Callable[[ArchSpec], StaticCosts]


def constraint_values(problem: Problem, costs: StaticCosts, latency_ms: float | None) -> dict[str, float]:
    """``value - limit`` per constraint flag of ``problem`` whose value is known (feasible iff all <= 0)."""
    measured = {"gmacs": costs.gmacs, "params": costs.params / 1e6, "latency_ms": latency_ms}
    return {flag: float(measured[CONSTRAINTS[flag]] - limit)
            for flag, limit in problem.constraints.items() if measured[CONSTRAINTS[flag]] is not None}


@dataclass
class LiveTrial:
    """A trial handed to an executor and not finished yet."""

    otrial: optuna.Trial
    study: optuna.Study
    spec: ArchSpec
    costs: StaticCosts
    started_at: float
    baseline: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class SearchCore:
    """The decisions of one search over its Optuna study; an executor asks it for trials and reports back.

    ``suggest(trial_id)`` -> a :class:`TrialRequest`, :data:`FINISHED`, or ``None`` (nothing to start now; ask
    again when a trial ends). ``on_report`` -> one epoch of a live trial. ``on_outcome`` -> the trial ended.
    """

    def __init__(
        self,
        *,
        config: SearchConfig,
        study: optuna.Study,
        baseline_study: optuna.Study | None,
        space: SearchSpace,
        static_costs: StaticCostFn,
        bounds: dict[str, tuple[float, float]],
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        val_clips: int | None = None,
        num_classes: int | None = None,
    ) -> None:
        self.config = config
        # the validation clips every accuracy is read on, and the classes (chance is 1/classes): stored with each trial
        self.val_clips, self.num_classes = val_clips, num_classes
        self.study = study
        self.baseline_study = baseline_study
        self.space = space
        self.static_costs = static_costs
        self.bounds = bounds
        self.on_change = on_change
        self.clock = clock  # unix seconds; a simulated executor passes its own discrete-event clock
        self.live: dict[str, LiveTrial] = {}
        self.deadline = self.clock() + config.time_budget_s if config.time_budget_s else None
        self.exhausted_message: str | None = None
        self.stopping = False  # Ctrl-C: start nothing more (see :meth:`stop`)
        self.evaluated: dict[str, optuna.trial.FrozenTrial] = {}
        self.waiting_duplicates: dict[str, list[optuna.Trial]] = {}
        for trial in study.get_trials(deepcopy=False):
            self._remember(trial)
        done_baselines = {
            t.user_attrs.get("baseline")
            for t in (baseline_study.get_trials(deepcopy=False) if baseline_study else [])
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        }
        self.baseline_queue = [b for b in config.problem.baselines if b not in done_baselines]

    # ---- bookkeeping ------------------------------------------------------------------------

    def counted(self) -> int:
        """Trials that count towards ``--trials`` (``docs/search.md``, Trial lifecycle)."""
        return sum(1 for t in self.study.get_trials(deepcopy=False) if t.user_attrs.get("counted"))

    def _live_counting(self) -> int:
        return sum(1 for live in self.live.values() if live.baseline is None)

    def out_of_budget(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def _remember(self, trial: optuna.trial.FrozenTrial) -> None:
        """Evaluated architectures: a re-proposal is a DUPLICATE. A FAIL counts only once it is final
        (no retry pending, not an interrupted run's casualty), so deterministic failures are not re-trained."""
        key = trial.user_attrs.get("spec_key")
        status = trial.user_attrs.get("status")
        final_fail = status == "FAIL" and trial.user_attrs.get("counted")
        if key and (status in ("COMPLETE", "PRUNED", "INFEASIBLE") or final_fail):
            self.evaluated.setdefault(key, trial)

    # ---- what an executor calls ---------------------------------------------------------------

    def stop(self) -> None:
        """The user interrupted the search: start nothing more, and leave the trials the executor now tears
        down RUNNING (an error reported for one of them is the teardown, not the trial's own failure);
        the driver then settles them FAIL ``interrupted`` and re-enqueues them."""
        self.stopping = True

    def suggest(self, trial_id: str) -> TrialRequest | None | str:
        if self.stopping:
            return FINISHED if not self.live else None
        if self.baseline_queue and not self.out_of_budget():
            return self._start_baseline(trial_id, self.baseline_queue.pop(0))
        if self.exhausted_message or self.out_of_budget():
            return FINISHED if not self.live else None
        if self.counted() + self._live_counting() >= self.config.trials:
            return FINISHED if not self.live else None
        for _ in range(self.config.max_resamples):
            started = self._try_sample(trial_id)
            if started is not None:
                return started
        self.exhausted_message = (
            f"the sampler proposed nothing new in {self.config.max_resamples} samples in a row "
            f"(every sample was a duplicate, invalid or infeasible): the space looks exhausted"
        )
        return FINISHED if not self.live else None

    def on_report(self, report: EpochReport) -> None:
        live = self.live.get(report.trial_id)
        if live is not None:
            self._record_epoch(live, report)

    @staticmethod
    def _record_epoch(live: LiveTrial, report: EpochReport | None) -> None:
        """Add an epoch to the trial's history (once: an executor may hand the last one again with the outcome).

        The history keeps what a rung rule ranked (with the trial's static costs), so a resumed search can
        replay it into its rules (:mod:`nas.core.resume`); it is stored in the study as JSON."""
        if report is None or (live.history and live.history[-1]["epoch"] >= report.epoch):
            return
        live.history.append({
            "epoch": report.epoch, "accuracy": report.accuracy, "loss": report.loss, "seconds": report.seconds,
            "data_wait_seconds": report.data_wait_seconds, "train_started_at": report.train_started_at,
            "reported_at": report.reported_at, "latency_ms": report.latency.ms if report.latency else None,
        })

    def on_outcome(self, outcome: TrialOutcome) -> None:
        live = self.live.pop(outcome.trial_id, None)
        died = outcome.kind is OutcomeKind.DIED
        if live is None or (self.stopping and outcome.kind in (OutcomeKind.DIED, OutcomeKind.FAILED)):
            return  # after Ctrl-C an error is the executor's teardown, not the trial's own failure
        self._record_epoch(live, outcome.last)
        try:
            if died:
                self._fail(live, outcome.error or "the trial's process died (out of memory or killed); see the executor's logs")
            elif outcome.kind is OutcomeKind.INFEASIBLE:
                self._tell_infeasible(live.otrial, live.study, live.costs, outcome.latency)
            elif outcome.kind is OutcomeKind.FAILED:
                self._fail(live, str(outcome.error))
            else:
                self._finish_trained(live, outcome)
        except Exception as exc:  # a trial left RUNNING is never counted: the search would run forever
            self._end_as_fail(live, f"telling the study failed: {type(exc).__name__}: {exc}")
        self.on_change()

    def _end_as_fail(self, live: LiveTrial, message: str) -> None:
        """Last resort when telling an outcome raised: FAIL with the message, counted like any trained trial."""
        self._set_attrs(live.otrial, status="FAIL", error=message, counted=live.baseline is None,
                        finished_at=self.clock(), fidelity=len(live.history), history=live.history)
        frozen = live.study.get_trials(deepcopy=False)[live.otrial.number]
        if frozen.state == TrialState.RUNNING:
            live.study.tell(live.otrial, state=TrialState.FAIL)
        if live.study is self.study:
            self._remember(self._frozen(live.otrial))
            self._settle_waiting_duplicates(live.spec.key(), None)

    # ---- sampling -----------------------------------------------------------------------------

    def _try_sample(self, trial_id: str) -> TrialRequest | None:
        otrial = self.study.ask()
        try:
            sample = self.space.sample_flat if self.config.sampler in FLAT_SAMPLERS else self.space.sample
            spec = sample(lambda name, choices: otrial.suggest_categorical(name, choices))
        except SpecError as exc:
            self._tell_invalid(otrial, None, str(exc))
            return None
        key = spec.key()
        self._set_attrs(otrial, spec=spec.to_json(), spec_key=key, family=spec.family,
                        attempt=otrial.user_attrs.get("attempt", 0))
        error = self.space.build_error(spec, 1.0) or self.space.build_error(spec, self.config.proxy.width_mult)
        if error:
            self._tell_invalid(otrial, spec, error)
            return None
        if key in self.evaluated:
            self._tell_duplicate(otrial, self.evaluated[key])
            return None
        if any(live.spec.key() == key for live in self.live.values() if live.baseline is None):
            self._set_attrs(otrial, status="DUPLICATE", counted=False)
            self.waiting_duplicates.setdefault(key, []).append(otrial)
            return None
        costs = self.static_costs(spec)
        violations = self._constraint_values(costs, latency_ms=None)
        if any(v > 0 for v in violations.values()):
            self._tell_infeasible(otrial, self.study, costs, None)
            return None
        return self._start(trial_id, otrial, self.study, spec, costs, baseline=None)

    def _start_baseline(self, trial_id: str, name: str) -> TrialRequest:
        spec = catalog_spec(name)
        assert self.baseline_study is not None
        otrial = self.baseline_study.ask()
        self._set_attrs(otrial, spec=spec.to_json(), spec_key=spec.key(), family=spec.family, baseline=name)
        return self._start(trial_id, otrial, self.baseline_study, spec, self.static_costs(spec), baseline=name)

    def _start(self, trial_id: str, otrial: optuna.Trial, study: optuna.Study, spec: ArchSpec,
               costs: StaticCosts, baseline: str | None) -> TrialRequest:
        started = self.clock()
        self._set_attrs(otrial, status="RUNNING", started_at=started, gmacs=costs.gmacs, params=costs.params,
                        recurrent_params=costs.recurrent_params)
        self.live[trial_id] = LiveTrial(otrial, study, spec, costs, started, baseline)
        self.on_change()
        return TrialRequest(trial_id=trial_id, number=otrial.number, spec=spec, seed=self._trial_seed(spec),
                            costs=costs, baseline=baseline)

    def _trial_seed(self, spec: ArchSpec) -> int:
        return trial_seed(self.config.seed, spec.key())

    # ---- telling ------------------------------------------------------------------------------

    def _constraint_values(self, costs: StaticCosts, latency_ms: float | None) -> dict[str, float]:
        return constraint_values(self.config.problem, costs, latency_ms)

    def _constraint_list(self, invalid: bool, violations: dict[str, float]) -> list[float]:
        """``[invalid, gmacs - limit, ...]`` in a fixed order (feasible iff all <= 0)."""
        values = [1.0 if invalid else 0.0]
        for flag in self.config.problem.constraints:
            values.append(violations.get(flag, 0.0))
        return values

    def _set_constraints(self, otrial: optuna.Trial, invalid: bool, violations: dict[str, float]) -> list[float]:
        """Tell Optuna the trial's constraint values (constrained samplers learn from them) and return them."""
        values = self._constraint_list(invalid, violations)
        for name, value in zip(("invalid", *self.config.problem.constraints), values):
            otrial.set_constraint(name, value)
        return values

    def _objective_values(self, accuracy: float, costs: dict[str, float | None]) -> list[float]:
        values = []
        for name in self.config.problem.objectives:
            column = OBJECTIVES[name].column
            if column == "accuracy":
                values.append(float(accuracy))
            else:
                value = costs.get(column)
                values.append(float(value) if value is not None else float(self.bounds[name][1]))
        return values

    def _cost_columns(self, costs: StaticCosts, latency_ms: float | None) -> dict[str, float | None]:
        return {"gmacs": costs.gmacs, "params": costs.params, "latency_ms": latency_ms}

    def _tell_invalid(self, otrial: optuna.Trial, spec: ArchSpec | None, message: str) -> None:
        upper = {OBJECTIVES[name].column: self.bounds[name][1] for name in self.config.problem.objectives}
        self._set_attrs(otrial, status="INVALID", counted=False, error=message, accuracy=0.0,
                        constraints=self._set_constraints(otrial, True, {}), finished_at=self.clock())
        self.study.tell(otrial, self._objective_values(0.0, upper))

    def _tell_infeasible(self, otrial: optuna.Trial, study: optuna.Study, costs: StaticCosts,
                         latency: LatencyReading | None) -> None:
        latency_ms = latency.ms if latency is not None else None
        violations = self._constraint_values(costs, latency_ms)
        broken = ", ".join(f"{flag} by {value:.3g}" for flag, value in violations.items() if value > 0)
        self._set_attrs(otrial, status="INFEASIBLE", counted=False, accuracy=0.0, latency_ms=latency_ms,
                        gmacs=costs.gmacs, params=costs.params, recurrent_params=costs.recurrent_params,
                        constraints=self._set_constraints(otrial, False, violations),
                        **{f"constraint_{k}": v for k, v in violations.items()},
                        error=f"infeasible: exceeds {broken}", finished_at=self.clock(),
                        latency_profile=latency.profile if latency is not None else None,
                        latency_cv=latency.cv if latency is not None else None)
        study.tell(otrial, self._objective_values(0.0, self._cost_columns(costs, latency_ms)))
        frozen = self._frozen(otrial) if study is self.study else None
        if frozen is not None:
            self._remember(frozen)

    def _tell_duplicate(self, otrial: optuna.Trial, original: optuna.trial.FrozenTrial) -> None:
        copied = {k: original.user_attrs.get(k) for k in (
            "accuracy", "gmacs", "params", "recurrent_params", "latency_ms", "fidelity", "max_fidelity",
            "constraints", "gate_open_rates", "latency_profile", "feasible", "error")}
        self._set_attrs(otrial, **{k: v for k, v in copied.items() if v is not None}, status="DUPLICATE",
                        counted=False, duplicate_of=original.number, finished_at=self.clock())
        for name, value in zip(("invalid", *self.config.problem.constraints), original.user_attrs.get("constraints") or []):
            otrial.set_constraint(name, value)
        if original.state == TrialState.COMPLETE:
            self.study.tell(otrial, list(original.values))
        else:
            self.study.tell(otrial, state=original.state)

    def _fail(self, live: LiveTrial, message: str) -> None:
        attempt = int(live.otrial.user_attrs.get("attempt", 0))
        retry = live.baseline is None and attempt < self.config.retries
        self._set_attrs(live.otrial, status="FAIL", error=message, counted=live.baseline is None and not retry,
                        finished_at=self.clock(), fidelity=len(live.history), history=live.history,
                        train_seconds=self.clock() - live.started_at)
        live.study.tell(live.otrial, state=TrialState.FAIL)
        if live.study is not self.study:
            return
        frozen = self._frozen(live.otrial)
        self._remember(frozen)
        if retry:
            self.study.enqueue_trial(live.otrial.params, user_attrs={"attempt": attempt + 1,
                                                                      "retry_of": live.otrial.number})
        self._settle_waiting_duplicates(live.spec.key(), None if retry else frozen)

    def _finish_trained(self, live: LiveTrial, outcome: TrialOutcome) -> None:
        last = outcome.last
        fidelity = last.epoch if last is not None else len(live.history)
        complete = trained_status(fidelity, self.config.proxy.epochs) == "COMPLETE"
        reading = (last.latency if last is not None else None) or outcome.latency
        latency = reading.ms if reading is not None else None
        violations = self._constraint_values(live.costs, latency)
        accuracy = float(last.accuracy) if last is not None else 0.0
        attrs = dict(
            status="COMPLETE" if complete else "PRUNED", counted=live.baseline is None, accuracy=accuracy,
            val_clips=self.val_clips, num_classes=self.num_classes,
            latency_ms=latency, latency_profile=reading.profile if reading is not None else None, fidelity=fidelity,
            latency_cv=reading.cv if reading is not None else None,
            max_fidelity=self.config.proxy.epochs, finished_at=self.clock(), history=live.history,
            train_seconds=float(last.train_seconds) if last is not None else self.clock() - live.started_at,
            gate_open_rates=gate_rates(last.gate_open_rates if last is not None else None),
            constraints=self._set_constraints(live.otrial, False, violations),
            feasible=all(v <= 0 for v in violations.values()),
            **{f"constraint_{k}": v for k, v in violations.items()},
        )
        self._set_attrs(live.otrial, **attrs)
        if complete:
            live.study.tell(live.otrial, self._objective_values(accuracy, self._cost_columns(live.costs, latency)))
        else:
            live.study.tell(live.otrial, state=TrialState.PRUNED)
        if live.study is self.study:
            frozen = self._frozen(live.otrial)
            self._remember(frozen)
            self._settle_waiting_duplicates(live.spec.key(), frozen)

    def _settle_waiting_duplicates(self, key: str, original: optuna.trial.FrozenTrial | None) -> None:
        """Samples that duplicated a then-running trial: tell them its outcome, or re-ask if it failed."""
        for otrial in self.waiting_duplicates.pop(key, []):
            if original is not None:
                self._tell_duplicate(otrial, original)
            else:  # the original failed: nothing to copy; this sample was never trained
                self._set_attrs(otrial, status="FAIL", counted=False, error="duplicate of a trial that failed")
                self.study.tell(otrial, state=TrialState.FAIL)

    def _frozen(self, otrial: optuna.Trial) -> optuna.trial.FrozenTrial:
        return self.study.get_trials(deepcopy=False)[otrial.number]

    @staticmethod
    def _set_attrs(otrial: optuna.Trial, **attrs: Any) -> None:
        for key, value in attrs.items():
            otrial.set_user_attr(key, _jsonable(value))

    def close_pending(self) -> None:
        """At the end of a run: waiting duplicates whose original never finished are told FAIL."""
        for key in list(self.waiting_duplicates):
            self._settle_waiting_duplicates(key, None)


def _jsonable(value: Any) -> Any:
    """Optuna stores user attributes as JSON."""
    return json.loads(json.dumps(value, default=float))
