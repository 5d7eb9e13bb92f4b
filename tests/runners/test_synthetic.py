"""The synthetic dataset: exact time-reversal pairs, determinism, balance, configuration errors."""

from __future__ import annotations

import numpy as np
import pytest

from runners.synthetic import (
    CLASS_NAMES,
    SyntheticConfig,
    SyntheticDataError,
    generate_synthetic,
    mirror_params,
    pair_accuracy,
    render,
    reversed_pairs,
    sample_params,
    shuffle_frames,
    synthetic_splits,
)

CONFIG = SyntheticConfig(frames=16, size=48)


@pytest.mark.parametrize("pair", range(len(CLASS_NAMES) // 2))
def test_reversing_a_clip_gives_the_partner_class_with_mirrored_params_byte_for_byte(pair: int) -> None:
    forward, backward = 2 * pair, 2 * pair + 1
    rng = np.random.default_rng(100 + pair)
    params = sample_params(rng, np.full(40, forward), CONFIG)
    mirrored = mirror_params(params, CONFIG.frames)
    assert set(mirrored.labels) == {backward}
    assert (mirrored.onset >= 0).all() and (mirrored.onset + mirrored.duration <= CONFIG.frames - 1).all()
    clips = render(params, CONFIG, seed=7)
    reversed_clips = render(mirrored, CONFIG, seed=7)
    assert np.array_equal(clips[:, ::-1], reversed_clips)
    # ... and the other way round (mirroring is an involution), and the clip really changes over time.
    assert np.array_equal(render(mirror_params(mirrored, CONFIG.frames), CONFIG, seed=7), clips)
    assert not np.array_equal(clips[:, 0], clips[:, -1])


def test_the_two_classes_of_a_pair_differ_only_by_frame_order() -> None:
    """Same parameters except the direction: the forward and backward clips hold the same frames, reordered."""
    rng = np.random.default_rng(3)
    params = sample_params(rng, np.zeros(20, dtype=np.int64), CONFIG)
    mirrored = mirror_params(params, CONFIG.frames)
    a, b = render(params, CONFIG, seed=1), render(mirrored, CONFIG, seed=1)
    assert not np.array_equal(a, b)
    assert np.array_equal(np.sort(a.reshape(20, CONFIG.frames, -1), axis=1), np.sort(b.reshape(20, CONFIG.frames, -1), axis=1))


def test_same_seed_same_bytes_and_different_seed_different_bytes() -> None:
    a = generate_synthetic(50, CONFIG, seed=11)
    b = generate_synthetic(50, CONFIG, seed=11)
    c = generate_synthetic(50, CONFIG, seed=12)
    assert a.videos.tobytes() == b.videos.tobytes() and np.array_equal(a.labels, b.labels)
    assert a.videos.tobytes() != c.videos.tobytes()


def test_chunked_rendering_does_not_change_the_bytes() -> None:
    """A set larger than one render chunk equals the concatenation of its parts rendered alone."""
    rng = np.random.default_rng(5)
    params = sample_params(rng, np.arange(300) % 12, CONFIG)
    whole = render(params, CONFIG, seed=2)
    part = render(params.take(slice(200, 300)), CONFIG, seed=2)
    assert np.array_equal(whole[200:], part)


def test_shape_dtype_balance_and_classes() -> None:
    clips = generate_synthetic(120, SyntheticConfig(num_classes=6, frames=8, size=32), seed=0)
    assert clips.videos.shape == (120, 8, 32, 32, 3) and clips.videos.dtype == np.uint8
    assert clips.classes == CLASS_NAMES[:6]
    assert np.bincount(clips.labels).tolist() == [20] * 6
    assert clips.videos.std() > 20  # not blank


def test_onset_and_duration_vary_from_clip_to_clip() -> None:
    params = sample_params(np.random.default_rng(0), np.zeros(500, dtype=np.int64), CONFIG)
    assert len(np.unique(params.duration)) >= 8 and len(np.unique(params.onset)) >= 8


def test_splits_are_independent_sets() -> None:
    sets = synthetic_splits(train=30, val=12, test=12, config=SyntheticConfig(frames=8, size=32), seed=4)
    assert set(sets) == {"train", "val", "test"}
    assert sets["train"].videos[:12].tobytes() != sets["val"].videos.tobytes()


def test_pair_accuracy_and_reversed_pairs() -> None:
    pairs = reversed_pairs(CLASS_NAMES[:5])
    assert pairs == [(0, 1), (2, 3)]
    labels = np.array([0, 1, 2, 3, 4])
    logits = np.array([[2, 1, 0, 0, 0], [2, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1.0]])
    accuracy, count = pair_accuracy(logits, labels, pairs)
    assert count == 4 and accuracy == pytest.approx(0.75)


def test_shuffle_frames_keeps_each_clips_frames() -> None:
    clips = generate_synthetic(10, SyntheticConfig(frames=8, size=32), seed=0)
    shuffled = shuffle_frames(clips, seed=1)
    assert not np.array_equal(clips.videos, shuffled.videos)
    flat = lambda v: np.sort(v.reshape(10, 8, -1), axis=1)  # noqa: E731
    assert np.array_equal(flat(clips.videos), flat(shuffled.videos))


@pytest.mark.parametrize(
    "kwargs", [{"num_classes": 1}, {"num_classes": 13}, {"frames": 2}, {"size": 8}, {"noise": 200}, {"min_duration": 0}]
)
def test_bad_configuration_is_a_user_error(kwargs: dict) -> None:
    with pytest.raises(SyntheticDataError):
        SyntheticConfig(**kwargs)


def test_the_smallest_allowed_clip_size_generates() -> None:
    """16 px is allowed by SyntheticConfig, so it must generate (distractor sizes once had an empty range there)."""
    clips = generate_synthetic(8, SyntheticConfig(num_classes=4, frames=4, size=16), seed=0)
    assert clips.videos.shape == (8, 4, 16, 16, 3)
