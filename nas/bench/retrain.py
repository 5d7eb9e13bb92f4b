"""``nas bench retrain``: does the proxy rank architectures the way full-scale training does? (``docs/retrain.md``)

Takes the Pareto front of a demo search (running the demo search first when no run is given; topped up
with the next non-dominated layers when the front has fewer than ``count`` members), re-trains each
architecture at width 1.0 with ``nas retrain RUN:ID`` on the synthetic data (results are written back
into the run, so its report shows proxy vs full), and reports Kendall tau and Spearman rho between
proxy validation top-1 and full-scale test top-1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nas.objectives import OBJECTIVES
from nas.pareto import non_dominated_sort, to_minimization
from nas.runmodel import RunDir, front_candidates


def pick_front_members(run_dir: Path, count: int) -> list[int]:
    """Trial ids of the front (COMPLETE, feasible, searched), then the next layers, ``count`` at least."""
    done = front_candidates(RunDir(run_dir).read_trials())
    objectives = RunDir(run_dir).objectives()
    columns = [OBJECTIVES[o].column for o in objectives]
    done = done.dropna(subset=columns).reset_index(drop=True)
    points = to_minimization(done[columns].to_numpy(float), [OBJECTIVES[o].direction for o in objectives])
    picked: list[int] = []
    for layer in non_dominated_sort(points):
        picked += [int(done.loc[i, "trial_id"]) for i in layer]
        if len(picked) >= count:
            break
    return picked[:count]


def _retrain(run_dir: Path, trial_id: int, *, epochs: int, clips: int, workers: int) -> dict[str, Any]:
    """Retrain ``RUN:ID`` (in-process, :func:`nas.retrain.retrain`) at width 1.0 on fresh synthetic clips of the
    search's proxy shape; it writes the result back into the run."""
    from nas.retrain import RetrainData, retrain
    from runners.retrain import RetrainConfig

    proxy = RunDir(run_dir).read_search()["config"]
    data = RetrainData(data="synthetic", frames=proxy["proxy_frames"], size=proxy["proxy_size"], num_clips=clips, seed=0)
    config = RetrainConfig(epochs=epochs, workers=workers, batch_size=16 * workers, width_mult=1.0, seed=0,
                           frames=proxy["proxy_frames"], size=proxy["proxy_size"])
    return retrain(f"{run_dir}:{trial_id}", data, config).to_json()


def run_retrain_benchmark(
    out_dir: Path,
    *,
    run_dir: Path | None = None,
    count: int = 5,
    epochs: int = 4,
    clips: int = 600,
    workers: int = 2,
    quick: bool = False,
) -> dict[str, Any]:
    """Retrain ``count`` front members of ``run_dir`` (or of a fresh demo search) and correlate the accuracies."""
    if quick:
        count, epochs, clips = 3, 1, 96
    if run_dir is None:
        from nas.demo import demo_config
        from nas.search import run_search

        overrides = {"trials": 6, "num_clips": 300, "proxy_epochs": 1} if quick else {}
        run_dir = run_search(demo_config(out_dir / "runs", name="retrain-bench", **overrides), show_progress=False).run_dir
    frame = RunDir(run_dir).read_trials().set_index("trial_id")
    rows = []
    for trial_id in pick_front_members(run_dir, count):
        result = _retrain(run_dir, trial_id, epochs=epochs, clips=clips, workers=workers)
        rows.append({
            "trial_id": trial_id,
            "architecture": str(frame.loc[trial_id, "spec"]),
            "proxy_val_top1": float(frame.loc[trial_id, "accuracy"]),
            "full_test_top1": float(result["test_top1"]),
            "full_multiview_top1": float(result.get("multiview_top1", float("nan"))),
        })
    proxy = np.array([r["proxy_val_top1"] for r in rows])
    full = np.array([r["full_test_top1"] for r in rows])
    from scipy import stats

    tau = stats.kendalltau(proxy, full)
    rho = stats.spearmanr(proxy, full)
    figures = {
        "run": str(run_dir),
        "retrained": len(rows),
        "retrain_settings": f"width 1.0, {epochs} epochs, {clips} fresh synthetic training clips at the proxy's "
                            f"clip shape, {workers} Ray Train workers (DDP)",
        "kendall_tau": round(float(tau.statistic), 3),
        "kendall_p": round(float(tau.pvalue), 3),
        "spearman_rho": round(float(rho.statistic), 3),
        "rows": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "retrain.json").write_text(json.dumps(figures, indent=2))
    lines = ["# nas bench retrain: proxy vs full-scale accuracy", "",
             f"Run: `{run_dir}`; retrained at {figures['retrain_settings']}.", "",
             f"Kendall tau = {figures['kendall_tau']} (p = {figures['kendall_p']}), "
             f"Spearman rho = {figures['spearman_rho']} over {len(rows)} architectures.", "",
             "| trial | proxy val top-1 | full test top-1 | full multi-view top-1 |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['trial_id']} | {100 * r['proxy_val_top1']:.1f}% | {100 * r['full_test_top1']:.1f}% | "
              f"{100 * r['full_multiview_top1']:.1f}% |" for r in rows]
    (out_dir / "retrain.md").write_text("\n".join(lines) + "\n")
    return {k: v for k, v in figures.items() if k != "rows"}
