"""The proxy training loop, and the synthetic data's acceptance probe: it needs temporal modelling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import binom

from runners.clips import ClipSet
from runners.proxy import EpochResult, ProxyConfig, ProxyConfigError, TrainingDiverged, train_proxy
from runners.synthetic import SyntheticConfig, pair_accuracy, reversed_pairs, shuffle_frames, synthetic_splits
from space import ResNet3DSpec, SRTGSpec, UserInputError, catalog_spec

TINY = ProxyConfig(epochs=2, batch_size=8, width_mult=0.125, frames=4, size=16, threads=1, lr=0.05)


@pytest.fixture(scope="module")
def tiny_data() -> dict[str, ClipSet]:
    return synthetic_splits(train=32, val=16, config=SyntheticConfig(num_classes=4, frames=6, size=20), seed=1)


@pytest.mark.slow
def test_temporal_order_is_needed_to_beat_chance_on_reversed_pairs() -> None:
    """Frame-shuffled: inside the binomial 95% interval of 50% on the pairs; ordered: >= 25 points above it.

    Four classes (two reversed pairs) at a little less clutter than the default, so two short epochs suffice.
    """
    synthetic = SyntheticConfig(num_classes=4, frames=8, size=32, distractors=2, noise=32)
    data = synthetic_splits(train=896, val=600, config=synthetic, seed=0)
    config = ProxyConfig(epochs=2, batch_size=16, lr=0.05, width_mult=0.25, frames=8, size=32, threads=2, seed=0)
    spec = catalog_spec("r3d-18")
    pairs = reversed_pairs(data["val"].classes)
    shuffled = {name: shuffle_frames(clips, seed=10 + i) for i, (name, clips) in enumerate(data.items())}

    blind = train_proxy(spec, shuffled["train"], shuffled["val"], config)
    blind_pairs, n = pair_accuracy(blind.val_probabilities, shuffled["val"].labels, pairs)
    seeing = train_proxy(spec, data["train"], data["val"], config)
    seeing_pairs, _ = pair_accuracy(seeing.val_probabilities, data["val"].labels, pairs)

    low, high = binom.ppf(0.025, n, 0.5) / n, binom.ppf(0.975, n, 0.5) / n
    print(f"pair accuracy: shuffled {blind_pairs:.3f} (95% interval {low:.3f}-{high:.3f}), ordered {seeing_pairs:.3f}")
    assert low <= blind_pairs <= high, (blind_pairs, (low, high))
    assert seeing_pairs >= blind_pairs + 0.25, (seeing_pairs, blind_pairs)


def test_reports_every_epoch_with_its_figures(tiny_data) -> None:
    seen: list[EpochResult] = []
    result = train_proxy(catalog_spec("r3d-18"), tiny_data["train"], tiny_data["val"], TINY, report=seen.append)
    assert [e.epoch for e in seen] == [1, 2] and result.history == tuple(seen)
    for e in seen:
        assert 0 <= e.accuracy <= 1 and math.isfinite(e.loss) and e.loss > 0
        assert e.seconds > 0 and 0 <= e.data_wait_seconds <= e.step_seconds <= e.seconds
        assert e.gate_open_rates == {}  # no SRTG in r3d-18
    assert result.accuracy == seen[-1].accuracy and result.best_accuracy == max(e.accuracy for e in seen)
    assert result.val_probabilities.shape == (16, 4)
    predicted = result.val_probabilities.argmax(axis=1)
    assert result.accuracy == pytest.approx(np.mean(predicted == tiny_data["val"].labels))
    assert 0 <= result.data_wait_fraction < 1 and not result.stopped_early


def test_a_report_returning_true_stops_training(tiny_data) -> None:
    config = ProxyConfig(**{**TINY.to_dict(), "epochs": 3})
    result = train_proxy(catalog_spec("r3d-18"), tiny_data["train"], tiny_data["val"], config, report=lambda e: True)
    assert result.epochs == 1 and result.stopped_early


def test_same_seed_same_run_on_cpu(tiny_data) -> None:
    spec = catalog_spec("r2plus1d-18")
    a = train_proxy(spec, tiny_data["train"], tiny_data["val"], TINY)
    b = train_proxy(spec, tiny_data["train"], tiny_data["val"], TINY)
    c = train_proxy(spec, tiny_data["train"], tiny_data["val"], ProxyConfig(**{**TINY.to_dict(), "seed": 1}))
    assert [e.loss for e in a.history] == [e.loss for e in b.history]
    assert np.array_equal(a.val_probabilities, b.val_probabilities)
    assert [e.loss for e in a.history] != [e.loss for e in c.history]


def test_srtg_gates_warm_up_by_epoch_and_report_open_rates(tiny_data) -> None:
    spec = ResNet3DSpec(conv="r3d", depth=18, srtg=SRTGSpec(placement="final", gate="warmup", warmup=1, align_loss=0.1))
    seen: list[EpochResult] = []
    train_proxy(spec, tiny_data["train"], tiny_data["val"], TINY, report=seen.append)
    first, second = seen[0].gate_open_rates, seen[1].gate_open_rates
    assert first and set(first) == set(second)
    opened = [rate for rate in first.values() if rate is not None]
    assert opened and all(rate == 1.0 for rate in opened)  # warm-up epoch: inactive gates always fuse
    assert all(rate is None or 0.0 <= rate <= 1.0 for rate in second.values())


def test_nan_loss_raises_training_diverged(tiny_data) -> None:
    config = ProxyConfig(**{**TINY.to_dict(), "lr": 1e12, "epochs": 3})
    with pytest.raises(TrainingDiverged, match="loss became"):
        train_proxy(catalog_spec("r3d-18"), tiny_data["train"], tiny_data["val"], config)


def test_feeding_memory_mapped_clips(tiny_data, tmp_path) -> None:
    np.save(tmp_path / "train.npy", tiny_data["train"].videos)
    mapped = ClipSet(np.load(tmp_path / "train.npy", mmap_mode="r"), tiny_data["train"].labels, tiny_data["train"].classes)
    a = train_proxy(catalog_spec("r3d-18"), mapped, tiny_data["val"], TINY)
    b = train_proxy(catalog_spec("r3d-18"), tiny_data["train"], tiny_data["val"], TINY)
    assert [e.loss for e in a.history] == [e.loss for e in b.history]


@pytest.mark.parametrize(
    "changes", [{"epochs": 0}, {"batch_size": 0}, {"lr": -1.0}, {"lr": float("nan")}, {"width_mult": 0.0},
                {"device": "tpu"}, {"threads": 0}]
)
def test_bad_proxy_settings_are_user_errors(changes: dict) -> None:
    with pytest.raises(ProxyConfigError):
        ProxyConfig(**{**TINY.to_dict(), **changes})


def test_views_that_do_not_fit_the_clips_are_user_errors(tiny_data) -> None:
    config = ProxyConfig(**{**TINY.to_dict(), "frames": 12})
    with pytest.raises(UserInputError, match="too small"):
        train_proxy(catalog_spec("r3d-18"), tiny_data["train"], tiny_data["val"], config)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine's message")
def test_cuda_without_a_gpu_is_a_user_error(tiny_data) -> None:
    with pytest.raises(ProxyConfigError, match="CUDA is not available"):
        train_proxy(catalog_spec("r3d-18"), tiny_data["train"], tiny_data["val"], ProxyConfig(device="cuda", frames=4, size=16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_with_amp_trains(tiny_data) -> None:
    config = ProxyConfig(**{**TINY.to_dict(), "device": "cuda", "amp": True})
    result = train_proxy(catalog_spec("r3d-18"), tiny_data["train"], tiny_data["val"], config)
    assert result.epochs == 2 and all(math.isfinite(e.loss) for e in result.history)
