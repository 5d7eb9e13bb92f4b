"""The benchmark table: its loading API and its view as the simulator's epoch table (nas/sim/curvetable.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nas.sim.compare import mean_accuracy
from nas.sim.curvetable import CurveTable, curve_frame, epoch_table, pack_correct, pack_loss, read_curve_table, \
    unpack_correct, write_curve_table
from nas.sim.curverecord import BenchSettings
from nas.sim.table import space_digest
from runners.costs import model_costs
from runners.proxy import ProxyConfig
from space.errors import UserInputError
from space.searchspace import parse_space

SPACE_YAML = """\
name: four
families:
  resnet3d:
    conv: r3d
    depth: 18
    srtg:
      placement: [none, final]
      recurrent: gru
  mtnet:
    depth: 32
    ratio: [0.875, 1.0]
    substreams: 8
"""
SETTINGS = BenchSettings(proxy=ProxyConfig(epochs=2, batch_size=8, width_mult=0.125, frames=4, size=16),
                         budgets=(0.5, 1.0, 2.0), train_clips=32, val_clips=20, num_classes=4)
CLIPS = SETTINGS.val_clips


def hand_made_table(accuracy_of) -> CurveTable:
    """Every architecture of the four-architecture space, two seeds; ``accuracy_of(index, seed, budget)`` in
    twentieths (the validation set has 20 clips, so every accuracy is exact)."""
    space = parse_space(SPACE_YAML, source="four.yaml", default_name="four")
    rows = []
    for index, spec in enumerate(space.enumerate()):
        costs = model_costs(spec, shape=(16, 112, 112))
        for seed in (0, 1):
            for budget, steps in zip(SETTINGS.budgets, (2, 4, 8)):
                right = accuracy_of(index, seed, budget)
                correct = np.arange(CLIPS) < right
                rows.append({"spec_key": spec.key(), "spec": json.dumps(spec.to_dict(), sort_keys=True),
                             "family": spec.family, "gmacs": costs.gmacs, "params": costs.params,
                             "recurrent_params": costs.recurrent_params, "latency_ms": 10.0 + index, "latency_cv": 0.01,
                             "seed": seed, "peak_rss_mib": 500.0, "train_rss_mib": 100.0, "error": None,
                             "revision": "test", "worker_load": 0.1, "budget": budget, "steps": steps,
                             "accuracy": right / CLIPS, "val_loss": 1.0, "train_loss": 2.0 - budget / 2,
                             "seconds": 1.0, "cpu_seconds": 2.0 * (steps - (0 if budget == 0.5 else steps // 2)),
                             "correct": pack_correct(correct), "clip_loss": pack_loss(np.full(CLIPS, 1.0))})
    manifest = {"version": 1, "space": "four", "space_yaml": SPACE_YAML,
                "space_digest": space_digest(s.key() for s in space.enumerate()), "settings": SETTINGS.to_dict(),
                "budgets": list(SETTINGS.budgets), "seeds": [0, 1],
                "data": {"kind": "synthetic", "train": 32, "val": CLIPS, "num_classes": 4, "seed": 0, "clip": [4, 16, 16]},
                "latency": {"profile": "cpu-quick"}}
    return CurveTable(curve_frame(rows), manifest)


def reversing(index: int, seed: int, budget: float) -> int:
    """Early ranks are the reverse of the final ranks: architecture 0 leads at 1 epoch, trails at 2."""
    return 4 + 3 * index + seed if budget == 2.0 else 12 - 2 * index


def test_round_trip_and_the_loading_api(tmp_path) -> None:
    table = hand_made_table(reversing)
    write_curve_table(tmp_path / "t.parquet", table)
    again = CurveTable.load(tmp_path / "t.parquet")
    keys = again.architectures()
    assert len(keys) == 4 and again.seeds_of(keys[0]) == [0, 1]
    curve = again.curve(keys[2], seed=1)
    assert list(curve.budgets) == [0.5, 1.0, 2.0]
    assert list(curve.accuracy) == [8 / 20, 8 / 20, 11 / 20]
    assert again.costs(keys[2])["latency_ms"] == 12.0
    assert again.truth()[keys[2]] == pytest.approx((10 + 11) / 2 / 20)
    correct = again.correctness(2.0)[(keys[3], 0)]
    assert correct.sum() == 13 and np.array_equal(unpack_correct(pack_correct(correct), CLIPS), correct)
    with pytest.raises(UserInputError, match="no learning curve"):
        again.curve(keys[0], seed=7)


def test_the_simulator_view_values_fronts_at_truth() -> None:
    table = hand_made_table(reversing)
    epochs = epoch_table(table)
    assert sorted(epochs.rows["epoch"].unique()) == [1, 2]
    key = table.architectures()[1]
    first = epochs.rows[(epochs.rows["spec_key"] == key) & (epochs.rows["seed"] == 0)].sort_values("epoch")
    assert list(first["accuracy"]) == [10 / 20, 7 / 20]
    assert list(first["seconds"]) == [4.0 + 4.0, 8.0]  # epoch 1 holds the half-epoch segment and the next one
    assert first["loss"].iloc[0] == pytest.approx((1.75 * 2 + 1.5 * 2) / 4)
    truth = table.truth()
    assert mean_accuracy(epochs) == pytest.approx(truth.to_dict())  # the simulator's valuation is truth
    assert epochs.manifest["settings"]["proxy_epochs"] == 2 and epochs.manifest["settings"]["num_clips"] == 52


def test_a_damaged_table_is_one_clear_error(tmp_path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(UserInputError, match="cannot read benchmark table"):
        read_curve_table(path)
    with pytest.raises(UserInputError, match="no benchmark table"):
        read_curve_table(tmp_path / "missing.parquet")


@pytest.mark.slow
def test_bench_search_on_a_benchmark_table_judges_on_truth(tmp_path) -> None:
    """``nas bench search --table FILE`` reads a benchmark table; its best hypervolume comes from truth."""
    from nas.bench.search import run_search_benchmark
    from nas.pareto import hypervolume

    table = hand_made_table(reversing)
    write_curve_table(tmp_path / "t.parquet", table)
    run_search_benchmark(tmp_path / "out", quick=True, table=str(tmp_path / "t.parquet"), seeds=1,
                         show_progress=False)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["objectives"] == ["accuracy", "gmacs", "latency"]
    truth = table.truth()
    (_, ghi), (_, lhi) = results["bounds"]["gmacs"], results["bounds"]["latency"]
    costs = {k: table.costs(k) for k in table.architectures()}
    points = np.array([[1 - truth[k], costs[k]["gmacs"] / ghi, costs[k]["latency_ms"] / lhi] for k in costs])
    assert results["best_hv"] == pytest.approx(hypervolume(points, [1.0, 1.0, 1.0]))


def test_a_run_whose_process_died_keeps_the_table_readable(tmp_path) -> None:
    """The recorder writes a failure row without costs when a worker dies; the table must still load (and resume)."""
    table = hand_made_table(reversing)
    died = {"spec_key": "deadbeefdeadbeef", "spec": "{}", "family": "mtnet", "seed": 0, "budget": 0.0,
            "error": "BrokenProcessPool: a child process terminated abruptly", "revision": "test"}
    write_curve_table(tmp_path / "t.parquet", CurveTable(curve_frame(table.rows.to_dict("records") + [died]),
                                                         table.manifest))
    again = read_curve_table(tmp_path / "t.parquet")
    assert ("deadbeefdeadbeef", 0) in again.done() and "deadbeefdeadbeef" not in again.truth()
