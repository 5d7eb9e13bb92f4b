"""Build the proxy dataset of a search once, in the driver (then put once into Ray's object store: ``docs/search.md``, Execution)."""

from __future__ import annotations

import uuid
from pathlib import Path

from nas.config import DataSource
from nas.executors.trialrun import ProxyData
from space.errors import UserInputError


def proxy_split(num_clips: int, num_classes: int) -> tuple[int, int]:
    """(train, validation) clip counts of ``--num-clips`` synthetic clips: a fifth (at least a clip per class) held out."""
    val = max(num_classes, num_clips // 5)
    return num_clips - val, val


def check_data(source: DataSource, *, frames: int | None = None, size: int | None = None) -> None:
    """``--data`` / ``--cache`` errors, found before a run directory exists (cheap: reads only the manifest).

    A ``--cache`` is always read when given (a synthetic cache too); its dataset must be ``--data``. For the
    embedded synthetic data, the proxy's clip shape (``frames``, ``size``) must be one it renders, and the
    training split must fill a batch of two clips at least (BatchNorm trains on two or more).
    """
    from runners.cache import read_manifest
    from runners.datasets import DATASET_NAMES

    if source.dataset not in DATASET_NAMES:
        raise UserInputError(f"--data {source.dataset!r} is not allowed; allowed: {', '.join(DATASET_NAMES)}")
    if not source.cache:
        if source.dataset != "synthetic":
            raise UserInputError(
                f"--data {source.dataset} needs --cache DIR (a dataset prepared once with `nas data prepare`); "
                "proxy trials never decode videos"
            )
        _check_synthetic_shape(source, frames=frames, size=size)
        return
    cache = Path(source.cache)
    if not cache.is_dir():
        raise UserInputError(f"--cache {cache} does not exist; prepare it with `nas data prepare --out {cache}`")
    manifest = read_manifest(cache)
    if manifest.get("dataset") != source.dataset:
        raise UserInputError(f"--cache {cache} holds {manifest.get('dataset')!r}, not --data {source.dataset}")
    if "val" not in (manifest.get("splits") or {}):
        raise UserInputError(f"--cache {cache} has no validation split; re-run `nas data prepare`")


def _check_synthetic_shape(source: DataSource, *, frames: int | None, size: int | None) -> None:
    from runners.synthetic import SyntheticConfig
    from runners.syntheticparams import SyntheticDataError

    shape = {"frames": frames, "size": size}
    for name, value in shape.items():
        if value is None:
            continue
        try:
            SyntheticConfig(**{name: value})
        except SyntheticDataError as error:
            allowed = str(error).split("allowed: ", 1)[-1]
            raise UserInputError(f"--proxy-{name} {value} is not allowed for the synthetic data; "
                                 f"allowed: {allowed}") from None
    num_classes = source.num_classes or SyntheticConfig().num_classes
    train, _ = proxy_split(source.num_clips, num_classes)
    if train < 2:
        raise UserInputError(f"--num-clips {source.num_clips} leaves {max(train, 0)} training clips after the "
                             f"validation split ({num_classes} classes); allowed: --num-clips >= {num_classes + 2}")


def build_proxy_data(source: DataSource, *, frames: int, size: int, seed: int) -> ProxyData:
    """Synthetic data at the proxy shape (``frames`` x ``size`` x ``size``, seeded), or a prepared cache
    (``nas data prepare``) given by ``--cache``.

    The search selects on a validation split carved from the training data; it never reads the test split.
    """
    check_data(source)
    if source.dataset == "synthetic" and not source.cache:
        from runners.synthetic import SyntheticConfig, synthetic_splits

        synthetic = SyntheticConfig(
            frames=frames,
            size=size,
            **({"num_classes": source.num_classes} if source.num_classes else {}),
        )
        train, val = proxy_split(source.num_clips, synthetic.num_classes)
        splits = synthetic_splits(train=train, val=val, config=synthetic, seed=seed)
        return ProxyData(splits["train"], splits["val"], uuid.uuid4().hex)
    from runners.cache import open_cache

    cache = Path(source.cache)
    splits = open_cache(cache)  # `nas data prepare` carved a seeded, stratified val split from train
    if "val" not in splits:
        raise UserInputError(f"--cache {cache} has no validation split; re-run `nas data prepare`")
    return ProxyData(splits["train"], splits["val"], uuid.uuid4().hex)
