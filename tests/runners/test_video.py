"""PyAV decoding: frame sampling, time windows, resizing, and failures that dataset preparation skips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runners.video import VideoDecodeError, decode_clip, write_video


def _ramp_video(path: Path, frames: int = 30, fps: int = 10) -> Path:
    """Frame t is a flat grey of brightness 8 * t: a decoded frame tells its time."""
    clip = np.repeat((8 * np.arange(frames, dtype=np.uint8))[:, None, None, None], 3, axis=3)
    return write_video(path, np.broadcast_to(clip, (frames, 48, 64, 3)).copy(), fps=fps)


def test_frames_are_evenly_spaced_over_the_video_and_resized(tmp_path: Path) -> None:
    clip = decode_clip(_ramp_video(tmp_path / "a.mp4"), frames=5, size=24)
    assert clip.shape == (5, 24, 24, 3) and clip.dtype == np.uint8
    times = clip.reshape(5, -1).mean(axis=1) / 8
    np.testing.assert_allclose(times, [3, 9, 15, 21, 27], atol=1.0)  # centres of 5 equal segments of 30 frames


def test_a_time_window_decodes_only_that_window(tmp_path: Path) -> None:
    clip = decode_clip(_ramp_video(tmp_path / "a.mp4"), frames=4, size=16, start=1.0, end=2.0)
    times = clip.reshape(4, -1).mean(axis=1) / 8
    assert times.min() >= 9 and times.max() <= 21, times


def test_short_videos_repeat_frames(tmp_path: Path) -> None:
    clip = decode_clip(_ramp_video(tmp_path / "a.mp4", frames=3), frames=8, size=16)
    assert clip.shape[0] == 8 and len(np.unique(clip.reshape(8, -1).mean(axis=1).round())) <= 3


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "missing file"), (b"", "empty file"), (b"\x00\x01garbage" * 200, "unreadable")],
)
def test_unusable_files_raise_video_decode_error(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoDecodeError, match=reason):
        decode_clip(path, frames=4, size=16)
