"""The one scheduler factory: ``--scheduler NAME`` and the search's settings -> its rung rule (``docs/search-space.md``).

Every executor gets its rule here (Ray Tune through :class:`nas.executors.raytune.LoopScheduler`, the simulator,
the local pool), so a name means the same rule with the same rungs everywhere. The names are
:data:`nas.config.SCHEDULERS`.
"""

from __future__ import annotations

from nas.config import SearchConfig
from nas.core.costaware import AccuracyNoise, CostAwareRule
from nas.core.rungs import AshaRule, FifoRule, MoashaRule, RungRule, TopKRule, rung_levels
from nas.objectives import OBJECTIVES

# The training-seed spread of one proxy accuracy reading, measured on the benchmark table, whose proxy is the
# search's (4 epochs, lr 0.05): a variance of 1.9e-3 at 4 epochs over its first 68 seed pairs, a standard
# deviation of 0.044. All 190 pairs give 0.071, heavy-tailed (robust estimate 0.021); the default stays at 0.044
# until the demo figures are re-run at 0.071 (docs/search-space.md, docs/bench/bench-table.md "Noise figures").
# MARGIN_Z: the margin in standard deviations of a difference of two readings (docs/search-space.md).
SEED_SD = 0.044
MARGIN_Z = 2.0
MIN_RUNG_RESULTS = 2
# `--scheduler topk`: how many results of the first rung continue (Egele et al. 2023 keep a handful after one
# epoch; 5 is a quarter of the default 20-trial budget). A baseline for the comparison (docs/search-space.md).
TOP_K = 5


def make_rule(config: SearchConfig, *, val_clips: int) -> RungRule:
    """The rule ``config.scheduler.name`` names, its rungs at ``grace_period * reduction_factor**k`` epochs.

    ``val_clips``: the validation set's size, which sets the cost-aware rule's noise margin.
    """
    scheduler = config.scheduler
    max_t = config.proxy.epochs
    rungs = rung_levels(scheduler.grace_period, scheduler.reduction_factor, max_t)
    if scheduler.name == "fifo":
        return FifoRule(rungs=rungs, max_t=max_t)
    if scheduler.name == "asha":
        return AshaRule("accuracy", "max", rungs=rungs, max_t=max_t, eta=scheduler.reduction_factor)
    if scheduler.name == "costaware":
        costs = [OBJECTIVES[o].column for o in config.problem.objectives if OBJECTIVES[o].column != "accuracy"]
        return CostAwareRule("accuracy", costs, rungs=rungs, max_t=max_t, min_results=MIN_RUNG_RESULTS,
                             noise=AccuracyNoise(val_clips=max(1, val_clips), seed_sd=SEED_SD, z=MARGIN_Z))
    objectives = [(OBJECTIVES[o].column, "max" if OBJECTIVES[o].direction == "maximize" else "min")
                  for o in config.problem.objectives]
    if scheduler.name == "topk":
        return TopKRule(objectives, rungs=rungs, max_t=max_t, k=TOP_K)
    return MoashaRule(objectives, rungs=rungs, max_t=max_t, eta=scheduler.reduction_factor)
