"""The demo search: the `demo` space on the embedded synthetic data, sized for a 2-core CPU in <= 10 minutes.

``make demo`` runs ``nas demo``; ``nas bench overhead`` measures the harness on exactly this search.
"""

from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING

from nas.config import SearchConfig

if TYPE_CHECKING:
    from runners.proxy import ProxyConfig

DEMO_BASELINES = ("r3d-18", "srtg-r3d-18-final", "mtnet-32")


def demo_config(runs_dir: str | Path = "runs", name: str = "demo", **overrides: object) -> SearchConfig:
    """Accuracy, GMACs and latency (cpu-quick) over the demo space; the cost-aware rule stops trials at epochs 1, 2.

    The proxy settings are those `nas bench data` checks separate architectures (nas.bench.data.DEMO_PROXY).
    """
    settings: dict[str, object] = dict(
        name=name,
        runs_dir=str(runs_dir),
        space="demo",
        trials=12,
        objectives=("accuracy", "gmacs", "latency"),
        sampler="tpe",
        scheduler="costaware",
        num_clips=2100,  # 1,680 train + 420 validation
        proxy_epochs=3,
        proxy_width=0.25,
        proxy_frames=8,
        proxy_size=32,
        proxy_batch_size=32,
        proxy_lr=0.1,
        deploy_shape=(16, 112, 112),
        latency_profile="cpu-quick",
        baselines=DEMO_BASELINES,
        grace_period=1,
        reduction_factor=2,
        seed=0,
    )
    settings.update(overrides)
    return SearchConfig.from_flags(**settings)


def demo_proxy(*, threads: int = 2) -> "ProxyConfig":
    """The demo search's proxy training settings as a :class:`runners.proxy.ProxyConfig` (derived, never restated)."""
    import dataclasses

    config = demo_config()
    return dataclasses.replace(config.proxy, seed=config.seed, threads=threads)


def demo_data() -> dict:
    """The demo search's synthetic data: train / validation clip counts (split as the search splits) and the config."""
    from nas.proxydata import proxy_split
    from runners.synthetic import SyntheticConfig

    config = demo_config()
    synthetic = SyntheticConfig(frames=config.proxy.frames, size=config.proxy.size)
    train, val = proxy_split(config.data.num_clips, synthetic.num_classes)
    return {"train": train, "val": val, "config": synthetic}
