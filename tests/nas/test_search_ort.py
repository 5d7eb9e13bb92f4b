"""A search that ranks on latency measured under ONNX Runtime (``--latency-profile ort-cpu-quick``).

``ort-cpu`` itself times with 2 threads, and the measurer leases as many cores as its profile's threads:
on the 2-CPU test cluster that leaves no core for a trial, so the search runs the 1-thread twin
``ort-cpu-quick`` (the same ONNX Runtime code path; ``ort-cpu`` is exercised by ``nas bench costs``).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nas.search import run_search
from tests.nas.search_helpers import tiny_config


@pytest.mark.slow
def test_search_with_onnx_runtime_latency_completes(ray_address, tmp_path):
    config = tiny_config(
        tmp_path, trials=2, objectives=("accuracy", "latency"), latency_profile="ort-cpu-quick",
        max_latency_ms=1e6,  # a fixed bound: the search does not also time the space's largest network
    )  # fmt: skip
    outcome = run_search(config, show_progress=False)
    frame = pd.read_parquet(outcome.run_dir / "trials.parquet")
    done = frame[frame["status"] == "COMPLETE"]
    assert len(done) == 2, frame[["trial_id", "status", "error"]]
    assert (done["latency_ms"] > 0).all() and set(done["latency_profile"]) == {"ort-cpu-quick"}
    entries = [json.loads(p.read_text()) for p in (outcome.run_dir / "costs").rglob("*.json")]
    timed = [e for e in entries if "key" in e]
    assert timed and all(e["key"]["profile"]["runtime"] == "onnxruntime" for e in timed)
    assert {e["key"]["spec_key"] for e in timed} == set(done["spec_key"])
    # each trial keeps its reading's spread: the CV of the timing the run cached (the steadiest one, docs/costs.md)
    cached_cv = {e["key"]["spec_key"]: e["forward"]["cv"] for e in timed}
    assert all(row.latency_cv == pytest.approx(cached_cv[row.spec_key]) for row in done.itertuples())
    log = [json.loads(line) for line in (outcome.run_dir / "costs" / "measurer-log.jsonl").read_text().splitlines()]
    assert log and all(1 <= entry["readings"] <= 3 and entry["cv"] >= 0 for entry in log)
    assert set(done["latency_shape"]) == {"1x3x8x112x112"}  # ort-cpu-quick's clip, named beside the GMACs shape
