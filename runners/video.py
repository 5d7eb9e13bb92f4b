"""Decoding (and, for tests and demos, encoding) video files with PyAV.

:func:`decode_clip` turns one file into ``frames`` x ``size`` x ``size`` x 3 uint8 RGB: every frame of the
video (or of the ``start``-``end`` window, for clip datasets such as HACS) is decoded, resized so its shorter
side is ``size`` (swscale, area filter) and centre-cropped; then ``frames`` frames are taken evenly spaced
over the whole duration (the centres of ``frames`` equal segments, as TSN samples), repeating frames of
videos shorter than that. Any failure (missing, empty, truncated or corrupt file, no video stream, no
decodable frame) raises :class:`VideoDecodeError`, which dataset preparation counts as a skipped file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["VideoDecodeError", "decode_clip", "write_video", "VIDEO_EXTENSIONS"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")


class VideoDecodeError(Exception):
    """A video could not be decoded; the message says why (the file is skipped, not fatal by itself)."""


def decode_clip(
    path: str | Path, *, frames: int, size: int, start: float | None = None, end: float | None = None
) -> np.ndarray:
    """``frames`` evenly spaced RGB frames of ``path`` (or of its ``start``..``end`` seconds), size x size."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError("missing file")
    if path.stat().st_size == 0:
        raise VideoDecodeError("empty file")
    decoded: list[np.ndarray] = []
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise VideoDecodeError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if start is not None and start > 0 and stream.time_base is not None:
                container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                seconds = frame.time
                if start is not None and seconds is not None and seconds < start:
                    continue
                if end is not None and seconds is not None and seconds > end:
                    break
                decoded.append(_resize_crop(frame, size))
    except VideoDecodeError:
        raise
    except Exception as exc:  # PyAV raises several error types (InvalidDataError, EOFError, ValueError, ...)
        if not decoded:
            raise VideoDecodeError(f"unreadable: {type(exc).__name__}: {exc}") from exc
        # A truncated file: keep the frames that decoded before the damage.
    if not decoded:
        raise VideoDecodeError("no decodable frame" + (f" in {start}-{end} s" if start is not None else ""))
    picks = ((np.arange(frames) + 0.5) * len(decoded) / frames).astype(np.int64)
    return np.stack([decoded[i] for i in picks])


def _resize_crop(frame, size: int) -> np.ndarray:
    """Shorter side -> ``size`` (keeping the aspect ratio), then the centre size x size crop."""
    w, h = frame.width, frame.height
    if w <= 0 or h <= 0:
        raise VideoDecodeError("frame without pixels")
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    rgb = frame.to_ndarray(format="rgb24", width=new_w, height=new_h, interpolation="AREA")
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(rgb[top : top + size, left : left + size])


def write_video(path: str | Path, frames: np.ndarray, *, fps: int = 10, codec: str = "mpeg4") -> Path:
    """Encode uint8 T x H x W x 3 RGB ``frames`` to ``path`` (H and W even). Used by tests and demos."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t, h, w = frames.shape[:3]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
