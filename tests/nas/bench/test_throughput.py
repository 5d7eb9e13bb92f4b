"""`nas bench throughput` pieces on tiny shapes: the MAC count, the rounds, the table and the op profile."""

from __future__ import annotations

import pytest
import torch

from nas.bench.throughput import Load, ProxyShape, _markdown, busy_warning, device_table, interleaved_ab, proxy_macs
from runners.costs import count_gmacs
from space import CATALOG

TINY = ProxyShape(batch=2, frames=4, size=16, width=0.125, num_classes=3, deploy_shape=(4, 16, 16))


def test_proxy_macs_scale_with_batch_and_match_the_cost_model_at_full_width():
    spec = CATALOG["r3d-18"]
    full = ProxyShape(batch=1, frames=4, size=16, width=1.0)
    assert proxy_macs(spec, full) == round(count_gmacs(spec, (4, 16, 16), num_classes=12) * 1e9)
    assert proxy_macs(spec, ProxyShape(batch=3, frames=4, size=16, width=1.0)) == 3 * proxy_macs(spec, full)
    assert proxy_macs(spec, TINY) < proxy_macs(spec, ProxyShape(batch=2, frames=4, size=16, width=0.25))


@pytest.mark.slow
def test_device_table_times_every_family_against_the_roofs_and_profiles_them():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        table = device_table(torch.device("cpu"), ("r3d-18", "mtnet-32"), TINY, rounds=2, warmup_s=0.0,
                             forward=True, profile_steps=1, progress=None)
    finally:
        torch.set_num_threads(threads)
    families = [row["family"] for row in table["train"]]
    assert families == ["r3d-18", "r3d-18 (contiguous)", "mtnet-32"]  # r3d trains channels-last: both layouts
    assert [row["family"] for row in table["forward"]] == ["r3d-18", "mtnet-32"]
    for row in table["train"] + table["forward"]:
        assert row["GMAC_per_s"] > 0 and 0 < row["conv_roof_pct_min"] <= row["conv_roof_pct"] <= row["conv_roof_pct_max"]
    assert table["roofs"]["conv3d"]["GMAC_per_s"] > 0 and table["roofs"]["matmul"]["GMAC_per_s"] > 0
    assert table["slowest_family"] in ("r3d-18", "mtnet-32")
    profile = table["profiles"]["mtnet-32"]
    ops = {row["op"] for row in profile["top"]}
    assert "aten::convolution_backward" in ops and profile["op_calls_per_step"] > 100
    assert sum(row["share_pct"] for row in profile["top"]) <= 100.5
    report = _markdown({"shape": TINY, "rounds": 2, "machine": "test", "load_start": "0", "load_end": "0",
                        "tables": [{**table, "threads": 1}], "shared_gpu": []})
    assert "| r3d-18 (contiguous) |" in report and f"### Op profile: {table['slowest_family']} (slowest family)" in report
    assert "2x3x4x16x16 @ width 0.125" in report


def test_busy_warning_counts_the_load_beside_the_benchmark_threads():
    quiet, during = Load(0.3, 0.2, 0.1, cpus=2), Load(1.2, 0.6, 0.3, cpus=2)  # 1 thread of ours + 0.2 of others
    assert busy_warning(quiet, during, own_threads=1) is None
    busy = busy_warning(Load(2.5, 2.0, 1.0, cpus=2), during, own_threads=1)
    assert busy is not None and "machine busy" in busy and "2.50 / 2.00 / 1.00" in busy
    assert busy_warning(quiet, Load(3.5, 1.0, 0.5, cpus=2), own_threads=1) is not None  # others joined later


def test_interleaved_ab_reports_both_sides_a_ratio_interval_and_the_load():
    calls = {"a": 0, "b": 0}

    def side(name):
        def step():
            calls[name] += 1
            return sum(range(200 if name == "a" else 100))
        return step

    result = interleaved_ab(side("a"), side("b"), pairs=6, device=torch.device("cpu"), warmup_s=0.0)
    assert calls["a"] >= 8 and calls["b"] >= 8  # two warm-up calls each, then one per pair
    assert result["pairs"] == 6 and result["a_ms_median"] >= 0 and result["b_ms_median"] >= 0  # rounded to 0.01 ms
    low, high = result["speedup_ci95"]
    assert low <= result["speedup_median"] <= high
    assert "1 / 5 / 15 min" in result["load_start"] and "1 / 5 / 15 min" in result["load_end"]
    assert "warning" in result
