"""The benchmark package: its registry, and the demo settings the benchmarks claim (issue 11.7)."""

from __future__ import annotations

import inspect

from nas.bench import BENCHMARKS
from nas.bench.data import DEMO_DATA, DEMO_PROXY
from nas.demo import demo_config
from nas.proxydata import build_proxy_data, proxy_split


def test_the_data_benchmark_uses_exactly_the_demo_search_settings():
    """`nas demo` trains on 1,680 / 420 clips; DEMO_DATA claimed 1,500 / 600. Now derived: they cannot differ."""
    config = demo_config()
    classes = DEMO_DATA["config"].num_classes
    assert (DEMO_DATA["train"], DEMO_DATA["val"]) == proxy_split(config.data.num_clips, classes) == (1680, 420)
    # and the search splits its clips with that very rule (a small demo-shaped search, to stay fast)
    small = config.replace(num_clips=60)
    data = build_proxy_data(small.data, frames=small.proxy.frames, size=small.proxy.size, seed=small.seed)
    assert (len(data.train), len(data.val)) == proxy_split(60, classes)
    assert data.train.clip_shape[:2] == (DEMO_DATA["config"].frames, DEMO_DATA["config"].size)
    assert (DEMO_PROXY.epochs, DEMO_PROXY.batch_size, DEMO_PROXY.lr, DEMO_PROXY.width_mult) == (
        config.proxy.epochs, config.proxy.batch_size, config.proxy.lr, config.proxy.width_mult)
    assert (DEMO_PROXY.frames, DEMO_PROXY.size) == (config.proxy.frames, config.proxy.size)


def test_every_registered_benchmark_takes_an_out_dir_and_quick():
    assert {"costs", "data", "overhead", "retrain"} <= set(BENCHMARKS)
    for name, run in BENCHMARKS.items():
        parameters = inspect.signature(run).parameters
        assert list(parameters)[0] == "out_dir" and "quick" in parameters, name
        assert (run.__doc__ or "").strip(), name
