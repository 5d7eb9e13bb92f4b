"""``ClipSet``: decoded clips in memory, the one container every data source produces and training reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClipSet:
    """``videos``: uint8 array N x T x H x W x 3 (RGB); ``labels``: int64 array N; ``classes``: class names.

    Memory-mapped arrays are welcome (a prepared cache opens this way), so nothing here copies.
    """

    videos: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.videos.ndim != 5 or self.videos.shape[-1] != 3 or self.videos.dtype != np.uint8:
            raise ValueError(f"videos must be uint8 N x T x H x W x 3, got {self.videos.dtype} {self.videos.shape}")
        if self.labels.shape != (self.videos.shape[0],):
            raise ValueError(f"labels must have shape ({self.videos.shape[0]},), got {self.labels.shape}")

    def __len__(self) -> int:
        return int(self.videos.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def clip_shape(self) -> tuple[int, int, int]:
        """T x H x W of every clip."""
        t, h, w = self.videos.shape[1:4]
        return int(t), int(h), int(w)

    def subset(self, indices: np.ndarray) -> "ClipSet":
        return ClipSet(self.videos[indices], self.labels[indices], self.classes)
