"""`nas bench throughput` pieces on tiny shapes: the MAC count, the rounds, the table and the op profile."""

from __future__ import annotations

import pytest
import torch

from nas.bench.throughput import ProxyShape, _markdown, device_table, proxy_macs
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
