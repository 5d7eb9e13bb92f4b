"""The executor seam: one search loop, three ways to run its trials (``docs/architecture.md``).

::

    SearchLoop (nas.executors.loop)              TrialRequest  ->  executor  ->  EpochReport* , TrialOutcome
      SearchCore (nas.core.searchcore): ask, sample, settle, tell      (nas.executors.contracts: frozen dataclasses)
      RungRule (nas.core.rungs / costaware): continue or stop at a rung

    executors, each ``run(loop, ...)``:
      RayTuneExecutor    (raytune.py)    Ray Tune on local Ray or a cluster: the default, ``--executor ray``
      LocalPoolExecutor  (localpool.py)  worker processes on this machine, only torch: ``--executor local``
      SimulatedExecutor  (simulated.py)  a recorded table on a discrete-event clock: ``nas bench search``

The two executors that train run the same trial body (:func:`nas.executors.trialrun.train_trial`); the
simulator replays the table's recorded epochs instead. :func:`make_executor` picks the training executor a
search asked for; it imports Ray only for ``ray``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from nas.executors.contracts import TrialOutcome

if TYPE_CHECKING:
    from nas.config import SearchConfig
    from nas.runmodel import RunDir

TrialBody = Callable[..., TrialOutcome]  # train_trial, or a wrapper with its signature (tests/nas/faults.py)


def make_executor(config: "SearchConfig", run: "RunDir", *, body: TrialBody):
    """The executor ``config.execution.executor`` names, for the run directory ``run`` (a context manager)."""
    if config.execution.executor == "local":
        from nas.executors.localpool import LocalPoolExecutor

        return LocalPoolExecutor(config, costs_dir=run.costs_dir, body=body)
    from nas.executors.raytune import RayTuneExecutor

    return RayTuneExecutor(config, state_dir=run.ray_dir, costs_dir=run.costs_dir, name=str(run.path.resolve()),
                           body=body)
