"""Build the proxy dataset of a search once, in the driver (SPEC 5: then put once into Ray's object store)."""

from __future__ import annotations

import uuid
from pathlib import Path

from nas.config import SearchConfig
from nas.trial import ProxyData
from space.errors import UserInputError


def proxy_split(num_clips: int, num_classes: int) -> tuple[int, int]:
    """(train, validation) clip counts of ``--num-clips`` synthetic clips: a fifth (at least a clip per class) held out."""
    val = max(num_classes, num_clips // 5)
    return num_clips - val, val


def check_data(config: SearchConfig) -> None:
    """``--data`` / ``--cache`` errors, found before a run directory exists (cheap: reads only the manifest).

    A ``--cache`` is always read when given (a synthetic cache too); its dataset must be ``--data``.
    """
    from runners.cache import read_manifest
    from runners.datasets import DATASET_NAMES

    if config.data not in DATASET_NAMES:
        raise UserInputError(f"--data {config.data!r} is not allowed; allowed: {', '.join(DATASET_NAMES)}")
    if not config.cache:
        if config.data != "synthetic":
            raise UserInputError(
                f"--data {config.data} needs --cache DIR (a dataset prepared once with `nas data prepare`); "
                "proxy trials never decode videos"
            )
        return
    cache = Path(config.cache)
    if not cache.is_dir():
        raise UserInputError(f"--cache {cache} does not exist; prepare it with `nas data prepare --out {cache}`")
    manifest = read_manifest(cache)
    if manifest.get("dataset") != config.data:
        raise UserInputError(f"--cache {cache} holds {manifest.get('dataset')!r}, not --data {config.data}")
    if "val" not in (manifest.get("splits") or {}):
        raise UserInputError(f"--cache {cache} has no validation split; re-run `nas data prepare`")


def build_proxy_data(config: SearchConfig) -> ProxyData:
    """Synthetic data at the proxy shape, or a prepared cache (``nas data prepare``) given by ``--cache``.

    The search selects on a validation split carved from the training data; it never reads the test split.
    """
    check_data(config)
    if config.data == "synthetic" and not config.cache:
        from runners.synthetic import SyntheticConfig, synthetic_splits

        synthetic = SyntheticConfig(
            frames=config.proxy_frames,
            size=config.proxy_size,
            **({"num_classes": config.num_classes} if config.num_classes else {}),
        )
        train, val = proxy_split(config.num_clips, synthetic.num_classes)
        splits = synthetic_splits(train=train, val=val, config=synthetic, seed=config.seed)
        return ProxyData(splits["train"], splits["val"], uuid.uuid4().hex)
    from runners.cache import open_cache

    cache = Path(config.cache)
    splits = open_cache(cache)  # `nas data prepare` carved a seeded, stratified val split from train
    if "val" not in splits:
        raise UserInputError(f"--cache {cache} has no validation split; re-run `nas data prepare`")
    return ProxyData(splits["train"], splits["val"], uuid.uuid4().hex)
