"""Syne Tune's own schedulers on the same recorded table, beside ours in ``nas bench search`` (its "peers").

``nas bench search`` compares our samplers and rung rules (:mod:`nas.sim.compare`). This module runs two
strategies of Syne Tune (https://github.com/syne-tune/syne-tune, the ``synetune`` extra, alias ``peers``) on the
same table, objectives, budget and workers, through Syne Tune's own simulator (its ``Tuner`` with
``UserBlackboxBackend`` and ``SimulatorCallback``) on the table exported as a Syne Tune blackbox
(:mod:`nas.bench.synetune`), and maps every Syne Tune trial back to our architectures, so that their
hypervolume curves are valued exactly as ours (:func:`nas.sim.compare.hv_curve`, truth = seed-mean final
accuracy). Decisions (docs/simulator.md, "Syne Tune peers"):

* **strategies**: ``syne-random + syne-moasha``: Syne Tune's ``MOASHA`` (non-dominated sort, one bracket) with
  our rungs (``time_attr`` = epochs, ``max_t`` = the proxy epochs, our grace period and reduction factor);
  ``syne-random + syne-fifo``: its ``SingleFidelityScheduler`` (FIFO) with its ``MultiObjectiveRandomSearcher``.
  Its model-based multi-objective searchers are not used: ``EHVI`` needs BoTorch (not in the extra), the
  multi-surrogate searcher does not import in 0.16, and regularised evolution mutates one field at a time,
  which on this sparse space almost always gives an architecture that was never recorded.
* **objectives**: ours, as Syne Tune metrics, all minimised: accuracy as ``metric_valid_error``, then
  ``metric_gmacs`` and ``metric_latency_ms`` (``metric_params`` on a table without latencies).
* **only recorded architectures**: the space is conditional, so most combinations of the blackbox's categories
  were never recorded. Both draw the search's architectures (the table's baselines left out) in an order
  shuffled by the seed: the searcher gets them as ``points_to_evaluate`` and stops when they run out (random
  search without replacement; FIFO completes everything it starts, so a second pass would add nothing);
  MOASHA's own ``suggest`` (uniform draws from its configuration space) is replaced by the same shuffled
  order, shuffled again when it runs out, so a stopped architecture can come back, as with MOASHA's own
  sampling with replacement. Its stopping decisions are Syne Tune's, unchanged.
* **one clock**: Syne Tune's simulator places each result ``metric_elapsed_time`` after the trial starts;
  our simulator's overheads (:class:`nas.executors.simulated.Overheads`: start-up, the latency measurement
  overlapping the first epoch) are added to it, Syne Tune's own delays are 0, its polling step (its
  ``tuner_sleep_time``, 5 s by default) is ``POLL_S``, and the real time its scheduler calls take is not
  charged to the simulated clock (ours charges none for sampling either), so a seed's run is reproducible.
  The budget is Syne Tune's ``StoppingCriterion(max_wallclock_time=...)`` on that clock.
* **seeds**: each trial replays one recorded seed drawn by Syne Tune's backend, from numpy's global generator
  seeded with the run's seed (restored afterwards).
* **mapping**: each trial's configuration -> its spec key; a trial that reported the last epoch is COMPLETE, one
  stopped before it (by MOASHA, or by the budget) PRUNED with the epochs reached; ``finished_at`` is the
  simulated time of its last result. Trials trained = trials with at least one reported epoch.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import json
import logging
import random
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from nas.config import SearchConfig
from nas.sim.compare import Run
from nas.sim.replay import Overheads
from nas.sim.table import Table

SAMPLER = "syne-random"
SCHEDULERS = ("syne-fifo", "syne-moasha")
MISSING = "Syne Tune peers not run: pip install 'videonas[synetune]' (alias 'videonas[peers]')"
POLL_S = 0.1  # simulated seconds between two looks of Syne Tune's tuner at its backend
ELAPSED = "metric_elapsed_time"
TUNER_TIME = "st_tuner_time"
METRICS = {"accuracy": "metric_valid_error", "gmacs": "metric_gmacs", "latency": "metric_latency_ms",
           "params": "metric_params"}


def peers_installed() -> bool:
    """Syne Tune and the Parquet engine its blackbox loader reads with (the ``synetune`` extra)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("syne_tune", "fastparquet"))
    except (ImportError, ValueError):  # a finder that refuses the name; a module set to None in sys.modules
        return False


@dataclass
class PeerSetup:
    """The table as Syne Tune's blackbox and what maps its trials back to our architectures."""

    blackbox: Any  # syne_tune's BlackboxTabular
    configs: dict[str, dict[str, str]]  # spec key -> configuration: the search's architectures (no baselines)
    key_of: dict[tuple[str, ...], str]  # a configuration's values (configuration-space order) -> spec key
    static: pd.DataFrame  # per spec key: spec, family, gmacs, params, recurrent_params, latency_ms
    config: SearchConfig
    overheads: Overheads
    workers: int
    budget_s: float

    def spec_key(self, config: dict[str, Any]) -> str:
        return self.key_of[tuple(str(config[name]) for name in self.blackbox.configuration_space)]

    def first_report_delay(self, key: str, first_epoch_s: float) -> float:
        """Seconds our simulator adds before a trial's first report (nas.executors.simulated)."""
        latency = self.overheads.latency_s.get(key, 0.0) if self.config.problem.needs_latency else 0.0
        return self.overheads.startup_s + max(0.0, latency - first_epoch_s)


def peer_setup(table: Table, *, config: SearchConfig, overheads: Overheads, workers: int, budget_s: float,
               folder: Path) -> PeerSetup:
    """Export ``table`` (as ``nas bench search`` reads it) in ``folder`` and load it with Syne Tune's own loader."""
    from syne_tune.blackbox_repository.blackbox_tabular import deserialize

    from nas.bench.synetune import export_syne_blackbox
    from nas.sim.table import write_table

    write_table(folder / "table.parquet", table)
    export_syne_blackbox(folder / "table.parquet", folder / "blackbox")
    with warnings.catch_warnings():  # pandas' deprecation notes about how Syne Tune reads Parquet
        warnings.simplefilter("ignore")
        (blackbox,) = deserialize(str(folder / "blackbox")).values()
    keys = json.loads((folder / "blackbox" / "metadata.json").read_text())["videonas"]["spec_keys"]
    baselines = set(table.rows.loc[table.rows["baseline"].notna(), "spec_key"])
    names = list(blackbox.configuration_space)
    configs = blackbox.all_configurations()
    static = table.rows.drop_duplicates("spec_key").set_index("spec_key")
    return PeerSetup(blackbox=blackbox, configs={k: c for c, k in zip(configs, keys) if k not in baselines},
                     key_of={tuple(str(c[n]) for n in names): k for c, k in zip(configs, keys)},
                     static=static[["spec", "family", "gmacs", "params", "recurrent_params", "latency_ms"]],
                     config=config, overheads=overheads, workers=workers, budget_s=budget_s)


@functools.lru_cache(maxsize=1)
def _syne_classes() -> dict[str, type]:
    """Syne Tune's simulator backend, MOASHA and random searcher, with the changes the module docstring lists."""
    from syne_tune.backend.simulator_backend.time_keeper import SimulatedTimeKeeper
    from syne_tune.blackbox_repository import UserBlackboxBackend
    from syne_tune.optimizer.scheduler import TrialSuggestion
    from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA
    from syne_tune.optimizer.schedulers.searchers.random_searcher import MultiObjectiveRandomSearcher

    class SimulatedTimeOnly(SimulatedTimeKeeper):
        def real_time_since_last_recent_exit(self) -> float:
            return 0.0  # the scheduler's own computing time is not charged to the simulated clock

    class TableBackend(UserBlackboxBackend):
        def __init__(self, setup: PeerSetup, **kwargs):
            super().__init__(blackbox=setup.blackbox, elapsed_time_attr=ELAPSED, **kwargs)
            self._time_keeper = SimulatedTimeOnly()  # where SimulatorBackend keeps its clock (no public setter)
            self.setup = setup

        def config_objectives(self, config: dict, seed: int) -> list[dict]:
            results = super().config_objectives(config, seed)
            delay = self.setup.first_report_delay(self.setup.spec_key(config), float(results[0]["metric_runtime"]))
            for result in results:
                result[ELAPSED] += delay
            return results

    class RecordedMOASHA(MOASHA):
        def __init__(self, configs: list[dict], **kwargs):
            super().__init__(**kwargs)
            self.recorded, self.order, self.draws = configs, random.Random(self.random_seed), list(configs)

        def suggest(self) -> TrialSuggestion:
            if not self.draws:  # every architecture drawn once: a fresh shuffle
                self.draws = list(self.recorded)
                self.order.shuffle(self.draws)
            return TrialSuggestion.start_suggestion(dict(self.draws.pop(0)))

    class RecordedRandomSearcher(MultiObjectiveRandomSearcher):
        def suggest(self, **kwargs) -> dict | None:
            return self._next_points_to_evaluate()  # None once every architecture was drawn: the tuner ends

    return {"backend": TableBackend, "moasha": RecordedMOASHA, "searcher": RecordedRandomSearcher}


def peer_scheduler(scheduler: str, seed: int, setup: PeerSetup, order: list[str] | None = None):
    """``syne-moasha`` or ``syne-fifo`` for ``seed``, on the blackbox's configuration space and our objectives;
    ``order``: the spec keys to draw, in this order (default: every architecture, shuffled by ``seed``)."""
    from syne_tune.optimizer.schedulers.single_fidelity_scheduler import SingleFidelityScheduler

    classes = _syne_classes()
    space = setup.blackbox.configuration_space
    metrics = [METRICS[name] for name in setup.config.problem.objectives]
    if order is None:
        order = list(setup.configs)
        random.Random(seed).shuffle(order)
    configs = [setup.configs[key] for key in order]
    if scheduler == "syne-moasha":
        return classes["moasha"](configs, config_space=space, metrics=metrics, do_minimize=True,
                                 time_attr=setup.blackbox.fidelity_name(), max_t=setup.config.proxy.epochs,
                                 grace_period=setup.config.scheduler.grace_period,
                                 reduction_factor=setup.config.scheduler.reduction_factor, random_seed=seed)
    if scheduler == "syne-fifo":
        searcher = classes["searcher"](space, points_to_evaluate=configs, random_seed=seed)
        return SingleFidelityScheduler(space, metrics=metrics, do_minimize=True, searcher=searcher, random_seed=seed)
    raise ValueError(f"no Syne Tune peer {scheduler!r}; allowed: {', '.join(SCHEDULERS)}")


def run_peer(scheduler: str, seed: int, setup: PeerSetup, folder: Path, *, order: list[str] | None = None,
             seed_slot: int | None = None) -> Run:
    """One Syne Tune run on its simulator; Syne Tune's files go to ``folder``. ``order``: see
    :func:`peer_scheduler`; ``seed_slot``: every trial replays this seed slot of the blackbox (default: one drawn
    per trial by Syne Tune's backend)."""
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_backend import SimulatorConfig
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback

    backend = _syne_classes()["backend"](setup, simulator_config=SimulatorConfig(0, 0, 0, 0, 0), tuner_sleep_time=POLL_S,
                                         seed=seed_slot)
    callback = SimulatorCallback()
    name = f"{scheduler}-{seed}"
    tuner = Tuner(trial_backend=backend, scheduler=peer_scheduler(scheduler, seed, setup, order), n_workers=setup.workers,
                  stop_criterion=StoppingCriterion(max_wallclock_time=setup.budget_s), sleep_time=0,
                  callbacks=[callback], save_tuner=False, tuner_name=name, suffix_tuner_name=False)
    tuner.tuner_path = folder / name  # not $SYNETUNE_FOLDER (~/syne-tune): nothing outside ``folder``
    tuner.trial_backend_path = str(tuner.tuner_path)
    backend.set_path(results_root=tuner.trial_backend_path, tuner_name=name)
    with _quiet_and_seeded(seed):
        tuner.run()
    frame = peer_frame(callback.dataframe(), setup)
    elapsed = float(frame["finished_at"].max()) if len(frame) else 0.0
    return Run(SAMPLER, scheduler, seed, frame, trained=len(frame), elapsed_s=elapsed)


@contextlib.contextmanager
def _quiet_and_seeded(seed: int):
    """Syne Tune's tuner prints its progress and logs at INFO; numpy's global generator draws its trials' seeds.
    Both are set for the run and restored after (a library call leaves the process as it found it)."""
    import numpy as np

    logger = logging.getLogger("syne_tune")
    propagate, state = logger.propagate, np.random.get_state()
    logger.propagate = False
    np.random.seed(seed)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.propagate = propagate
        np.random.set_state(state)


def peer_frame(results: pd.DataFrame, setup: PeerSetup) -> pd.DataFrame:
    """Syne Tune's results (one row per reported epoch) -> one ``trials.parquet`` row per trial."""
    from nas.runmodel import trials_table

    epochs = setup.config.proxy.epochs
    fidelity = setup.blackbox.fidelity_name()
    names = list(setup.blackbox.configuration_space)
    profile = setup.config.problem.latency_profile if setup.config.problem.needs_latency else None
    rows = []
    for trial_id, reports in (results.groupby("trial_id", sort=True) if len(results) else ()):
        reports = reports.sort_values(fidelity)
        first, last = reports.iloc[0], reports.iloc[-1]
        key = setup.spec_key({n: last[f"config_{n}"] for n in names})
        static = setup.static.loc[key]
        started = float(first[TUNER_TIME]) - float(first[ELAPSED])
        reached = int(last[fidelity])
        rows.append({
            "trial_id": int(trial_id), "status": "COMPLETE" if reached >= epochs else "PRUNED", "spec": static["spec"],
            "spec_key": key, "family": static["family"], "baseline": None,
            "accuracy": float(last["metric_valid_accuracy"]), "gmacs": float(static["gmacs"]),
            "latency_ms": static["latency_ms"], "params": int(static["params"]),
            "recurrent_params": int(static["recurrent_params"]), "feasible": True, "fidelity": reached,
            "max_fidelity": epochs, "started_at": started, "finished_at": float(last[TUNER_TIME]),
            "train_seconds": float(last[TUNER_TIME]) - started, "latency_profile": profile})
    return trials_table(rows)


def run_peers(*, config: SearchConfig, table: Table, seeds: int, workers: int, budget_s: float,
              overheads: Overheads, on_run: Callable[[Run], None] = lambda run: None,
              schedulers: Sequence[str] = SCHEDULERS) -> list[Run]:
    """Each peer scheduler of ``schedulers`` x seed at ``budget_s`` simulated seconds and ``workers`` workers
    (Syne Tune needed)."""
    if config.problem.constraints:
        raise ValueError("the Syne Tune peers take no constraints (nas bench search sets none)")
    runs = []
    with tempfile.TemporaryDirectory(prefix="videonas-peers-") as tmp:
        setup = peer_setup(table, config=config, overheads=overheads, workers=workers, budget_s=budget_s,
                           folder=Path(tmp))
        for scheduler in schedulers:
            for seed in range(seeds):
                runs.append(run_peer(scheduler, seed, setup, Path(tmp) / "syne-tune"))
                on_run(runs[-1])
    return runs


def peer_runs_or_note(**kwargs: Any) -> tuple[list[Run], str]:
    """:func:`run_peers` and the report's line about them, or no runs and the line saying how to get them."""
    if not peers_installed():
        return [], MISSING
    from importlib.metadata import version

    runs = run_peers(**kwargs)
    return runs, (f"Syne Tune peers (syne-tune {version('syne-tune')}, its own simulator on the table exported as "
                  "its blackbox): syne-random + syne-fifo = its FIFO scheduler with its multi-objective random "
                  "searcher; syne-random + syne-moasha = its MOASHA; both draw only the recorded architectures, "
                  "in a seed-shuffled order (docs/simulator.md, \"Syne Tune peers\").")
