"""Clip sampling: training windows and crops, evaluation views, softmax averaging over clips x crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from runners.clips import ClipSet
from runners.sampling import (
    MEAN,
    STD,
    SamplingError,
    ViewConfig,
    distinct_views,
    evaluation_views,
    predict_probabilities,
    sample_training_batch,
    to_model_input,
)


def _coded_clips(n: int = 6, t: int = 12, h: int = 20, w: int = 24) -> np.ndarray:
    """Pixel (clip, frame, y, x) holds (20 * clip + frame, y, x): a batch tells where it was cut from."""
    videos = np.zeros((n, t, h, w, 3), dtype=np.uint8)
    videos[..., 0] = (20 * np.arange(n))[:, None, None, None] + np.arange(t)[None, :, None, None]
    videos[..., 1] = np.arange(h)[None, None, :, None]
    videos[..., 2] = np.arange(w)[None, None, None, :]
    return videos


def test_training_views_are_random_windows_with_bounded_stride_and_crops() -> None:
    videos = _coded_clips()
    view = ViewConfig(frames=4, size=8, max_stride=3)
    rng = np.random.default_rng(0)
    indices = np.array([5, 0, 3, 3, 1])
    strides, starts, tops = set(), set(), set()
    for _ in range(20):
        batch = sample_training_batch(videos, indices, view, rng)
        assert batch.shape == (5, 4, 8, 8, 3) and batch.dtype == np.uint8
        for b, clip in enumerate(indices):
            codes = batch[b, :, 0, 0, 0].astype(int)
            assert (codes // 20 == clip).all()  # the right clip
            times = codes % 20
            stride = np.diff(times)
            assert len(set(stride)) == 1 and 1 <= stride[0] <= 3  # one stride per view
            top, left = batch[b, 0, 0, 0, 1], batch[b, 0, 0, 0, 2]
            assert (batch[b, :, :, :, 1] == top + np.arange(8)[None, :, None]).all()  # a contiguous crop
            assert (batch[b, :, :, :, 2] == left + np.arange(8)[None, None, :]).all()
            strides.add(int(stride[0]))
            starts.add(int(times[0]))
            tops.add(int(top))
    assert strides == {1, 2, 3} and len(starts) > 3 and len(tops) > 3


def test_memory_mapped_and_in_memory_clips_give_the_same_batches(tmp_path) -> None:
    videos = _coded_clips()
    np.save(tmp_path / "v.npy", videos)
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")
    view = ViewConfig(frames=4, size=8)
    a = sample_training_batch(videos, np.array([2, 4]), view, np.random.default_rng(1))
    b = sample_training_batch(mapped, np.array([2, 4]), view, np.random.default_rng(1))
    assert np.array_equal(a, b)


def test_evaluation_views_cover_the_clip_evenly() -> None:
    view = ViewConfig(frames=4, size=16, max_stride=2)
    views = evaluation_views((20, 16, 32), view, num_clips=3, num_crops=3)
    assert len(views) == 9
    starts = sorted({int(times[0]) for times, _, _ in views})
    assert starts == [0, 6, 13]  # stride 2, span 7, windows spread over 20 frames
    assert all(np.array_equal(np.diff(times), [2, 2, 2]) for times, _, _ in views)
    assert sorted({left for _, _, left in views}) == [0, 8, 16]  # left, centre, right crops
    assert len(evaluation_views((20, 16, 32), view, num_clips=10, num_crops=3)) == 30
    with pytest.raises(SamplingError):
        evaluation_views((20, 16, 32), view, num_clips=1, num_crops=2)


class ViewDependentToy(nn.Module):
    """Logits (m, -m, 0) with m the mean of the normalised red channel: every view gets a different answer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x[:, 0].mean(dim=(1, 2, 3))
        return torch.stack([m, -m, torch.zeros_like(m)], dim=1)


def _red_mean_of_view(video: np.ndarray, times: np.ndarray, top: int, left: int, size: int) -> float:
    red = video[times, top : top + size, left : left + size, 0].astype(np.float64) / 255.0
    return float(((red - MEAN[0]) / STD[0]).mean())


def test_multi_view_evaluation_averages_softmax_over_clips_and_crops() -> None:
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 256, size=(5, 16, 12, 20, 3), dtype=np.uint8)
    videos[..., 0] = np.clip(videos[..., 0].astype(int) // 4 + 12 * np.arange(16)[None, :, None, None]
                             + 3 * np.arange(20)[None, None, None, :], 0, 255)  # depends on time and x
    clips = ClipSet(videos, np.zeros(5, dtype=np.int64), ("a", "b", "c"))
    view = ViewConfig(frames=4, size=12, max_stride=2)
    model = ViewDependentToy()
    got = predict_probabilities(model, clips, view, num_clips=3, num_crops=3, batch_size=2)
    views = evaluation_views(clips.clip_shape, view, 3, 3)
    expected = np.zeros((5, 3))
    for times, top, left in views:
        for i in range(5):
            m = _red_mean_of_view(videos[i], times, top, left, 12)
            logits = np.array([m, -m, 0.0])
            expected[i] += np.exp(logits) / np.exp(logits).sum()
    expected /= len(views)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    single = predict_probabilities(model, clips, view)
    assert np.abs(single - got).max() > 1e-3  # the views really differ, so averaging matters
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


def test_model_input_layout_and_normalisation() -> None:
    batch = np.full((2, 4, 8, 8, 3), 255, dtype=np.uint8)
    batch[..., 1] = 0
    x = to_model_input(batch)
    assert x.shape == (2, 3, 4, 8, 8) and x.dtype == torch.float32
    assert torch.allclose(x[:, 0], torch.tensor((1 - MEAN[0]) / STD[0]))
    assert torch.allclose(x[:, 1], torch.tensor((0 - MEAN[1]) / STD[1]))


def test_views_larger_than_the_clips_are_a_user_error() -> None:
    with pytest.raises(SamplingError, match="too small"):
        ViewConfig(frames=16, size=32).check_fits((8, 32, 32))
    with pytest.raises(SamplingError, match="too small"):
        ViewConfig(frames=8, size=48).check_fits((8, 32, 32))


def test_identical_views_are_evaluated_once_with_the_same_result() -> None:
    """Clips exactly the crop size and the sampled span (synthetic retrain data): all 3 x 3 views are one view."""
    view = ViewConfig(frames=4, size=12, max_stride=1)
    assert distinct_views((4, 12, 12), view, 3, 3) == (1, 1)
    assert distinct_views((4, 12, 20), view, 3, 3) == (1, 3)  # one start, three different crops
    assert distinct_views((16, 12, 12), view, 3, 3) == (3, 1)
    assert distinct_views((16, 12, 20), view, 2, 3) == (2, 3)
    rng = np.random.default_rng(1)
    clips = ClipSet(rng.integers(0, 256, size=(5, 4, 12, 12, 3), dtype=np.uint8), np.zeros(5, dtype=np.int64), ("a", "b", "c"))
    done: list[tuple[int, int]] = []
    full = predict_probabilities(ViewDependentToy(), clips, view, num_clips=3, num_crops=3, batch_size=2)
    once = predict_probabilities(ViewDependentToy(), clips, view, batch_size=2, on_batch=lambda d, t: done.append((d, t)))
    np.testing.assert_allclose(full, once, rtol=1e-6)
    assert done == [(2, 5), (4, 5), (5, 5)]  # progress after every batch


def test_multiview_label_says_what_was_evaluated() -> None:
    from runners.retrain import multiview_label

    assert multiview_label((2, 3), (2, 3)) == "2 clips x 3 crops"
    assert multiview_label((3, 3), (1, 1)) == "1 clip x 1 crop (the 3 clips x 3 crops requested repeat identical views of these clips)"
