"""tpe/random + moasha with grace period 2 (one rung, at epoch 2) on the demo table, 10 seeds, vs the report's target."""
import json, math, sys, statistics
import numpy as np
from nas.bench.search import bench_config, default_table, MAX_RESAMPLES, BUDGET_SHARE, full_trial_seconds
from nas.sim.table import read_table
from nas.sim.compare import run_strategies, summarise, table_bounds, BASELINE_STRATEGY
from nas.sim.executor import Overheads
from space.searchspace import parse_space
rec = read_table(default_table(False))
space = parse_space(rec.manifest["space_yaml"], default_name="demo")
archs = rec.rows.loc[rec.rows["baseline"].isna(), "spec_key"].nunique()
base = bench_config(rec.manifest, trials=archs).replace(max_resamples=MAX_RESAMPLES[False])
ov = Overheads.from_table(rec); bounds = table_bounds(rec, base.problem.objectives)
budget = math.ceil(BUDGET_SHARE * archs) * full_trial_seconds(rec, ov, base)
target = 0.7775  # random + fifo's median final HV, docs/bench/search-demo.md (fifo has no rungs: the same here)
for grace in (2,):
    config = base.replace(grace_period=grace)
    runs = run_strategies(config=config, table=rec, space=space, seeds=10, workers=1, budget_s=budget, bounds=bounds,
                          overheads=ov, samplers=("random", "tpe"), schedulers=("fifo", "moasha", "asha"), processes=1)
    res = summarise(runs, config=config, table=rec, bounds=bounds, budget_s=budget)
    for s in res["strategies"]:
        times = np.linspace(0, budget, len(s["curve_median"]))
        reach = [t for t in s["time_to_target"]]
        # time to the full benchmark's target (random+fifo at grace 1 is the same: fifo has no rungs)
        c = np.array(s["curve_median"])
        print(f"grace {grace} {s['sampler']}+{s['scheduler']}: reach {s['time_to_target_share']} ({s['reached_target']}/10) final HV median {s['final_hv_median']:.4f} IQR {s['final_hv_iqr'][0]:.4f}-{s['final_hv_iqr'][1]:.4f} trained {s['trained_median']}")
    print("budget", budget, "target from the full report", target)
    json.dump(res, open(f"grace{grace}.json", "w"), default=float)
