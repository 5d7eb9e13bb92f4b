"""MO-ASHA and ASHA with ``--grace-period 2`` (one rung, at epoch 2) on the shipped demo table.

Same budget, seeds and settings as ``nas bench search`` (docs/bench/search-demo.md), samplers random and tpe,
schedulers fifo (no rungs: a check that the figures equal the benchmark's), moasha and asha. Run from the
repository root: ``.venv/bin/python docs/bench/search_demo_grace.py``; prints one line per strategy.
"""
import math

from nas.bench.search import BUDGET_SHARE, MAX_RESAMPLES, bench_config, default_table, full_trial_seconds
from nas.sim.compare import run_strategies, summarise, table_bounds
from nas.sim.replay import Overheads
from nas.sim.table import read_table
from space.searchspace import parse_space

table = read_table(default_table(False))
space = parse_space(table.manifest["space_yaml"], default_name="demo")
architectures = table.rows.loc[table.rows["baseline"].isna(), "spec_key"].nunique()
config = bench_config(table.manifest, trials=architectures).replace(max_resamples=MAX_RESAMPLES[False], grace_period=2)
overheads = Overheads.from_table(table)
bounds = table_bounds(table, config.problem.objectives)
budget = math.ceil(BUDGET_SHARE * architectures) * full_trial_seconds(table, overheads, config)
runs = run_strategies(config=config, table=table, space=space, seeds=10, workers=1, budget_s=budget, bounds=bounds,
                      overheads=overheads, samplers=("random", "tpe"), schedulers=("fifo", "moasha", "asha"))
for s in summarise(runs, config=config, table=table, bounds=bounds, budget_s=budget)["strategies"]:
    print(f"{s['sampler']}+{s['scheduler']}: final HV median {s['final_hv_median']:.4f} "
          f"IQR {s['final_hv_iqr'][0]:.4f}-{s['final_hv_iqr'][1]:.4f}, trained {s['trained_median']}, "
          f"reached random+fifo's final HV in {s['reached_target']}/10 seeds "
          f"(median share of the budget: {s['time_to_target_share']})")
