# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The published cloud of placed frames: decimation, confidence filtering and packing into PointCloud2 rows, on
the device; only the kept points are copied to the host. Colours stay uint8 from the input to the message."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from vggt_ros.numeric import finite, flat_nonzero, percentile, read_rgb, write_rgb
from vggt_ros.world.placement import PlacedFrames

POINT_FIELDS = ("x", "y", "z", "rgb", "confidence")


@dataclass(frozen=True)
class CloudConfig:
    """How the published cloud is thinned.

    Attributes:
        confidence_percentile: drop points below this percentile of depth confidence, 0..100 (0 = off),
            computed over all frames of the cloud together, as VGGT's demo does.
        confidence_threshold: drop points whose depth confidence is below this (0 = off; VGGT's is > 1).
        point_decimation: keep every n-th row and column of each depth map (1 = every pixel).
    """

    confidence_percentile: float = 0.0
    confidence_threshold: float = 0.0
    point_decimation: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence_percentile < 100.0:
            raise ValueError(f"confidence_percentile must be in [0, 100), got {self.confidence_percentile!r}")
        if not (math.isfinite(self.confidence_threshold) and self.confidence_threshold >= 0.0):
            raise ValueError(f"confidence_threshold must be a number >= 0, got {self.confidence_threshold!r}")
        if (
            isinstance(self.point_decimation, bool)
            or not isinstance(self.point_decimation, int)
            or self.point_decimation < 1
        ):
            raise ValueError(f"point_decimation must be an int >= 1, got {self.point_decimation!r}")

    @property
    def filters(self) -> bool:
        return self.confidence_percentile > 0.0 or self.confidence_threshold > 0.0


@dataclass(frozen=True)
class PointCloud:
    """Points ready for a PointCloud2 and the map (host).

    Attributes:
        points: ``(N, 5)`` float32 rows [x, y, z, rgb, confidence]; rgb is 0x00RRGGBB stored in a float32's bits.
        colors: ``(N, 3)`` uint8 RGB of the same rows (for the map, which averages colours).
        frames: ``(N,)`` int64 row of `PlacedFrames` each point comes from.
        height, width: layout. Without confidence filtering the cloud is organised: row r of frame f's
            decimated grid is cloud row ``f * ceil(H / d) + r``; with filtering it is one row (height 1).
    """

    points: np.ndarray
    colors: np.ndarray
    frames: np.ndarray
    height: int
    width: int


def build_cloud(placed: PlacedFrames, config: CloudConfig) -> PointCloud:
    """Coloured, filtered world points of placed frames' grids (see `PointCloud`); only kept points reach the host.

    The grid is the placement's (`place_in_world` with the cloud's decimation). The rows are packed once, for the
    whole grid, into one ``(M, 5)`` buffer (points, colour bytes, confidence: a copy each), and a filtered cloud
    takes its kept rows with one gather.
    """
    if len(placed.frames) == 0:
        raise ValueError("build_cloud needs at least one frame")
    count, rows, cols = placed.points.shape[:3]
    grid_colors = placed.grid(placed.colors)
    packed = torch.empty((count, rows, cols, len(POINT_FIELDS)), dtype=torch.float32, device=placed.points.device)
    packed[..., :3] = placed.points
    packed[..., 4] = placed.grid(placed.confidence)
    write_rgb(grid_colors, packed[..., 3:4].view(torch.uint8))
    packed = packed.view(-1, len(POINT_FIELDS))
    if config.filters:
        # A filtered cloud is unorganised, so masked pixels are dropped too (they must not turn the percentile into
        # NaN and switch the filter off): their points are NaN, and only pixels with finite confidence are not.
        confidence = packed[:, 4]
        keep = finite(packed[:, 2])
        every = bool(keep.all())  # the usual case: the network predicts usable depth everywhere
        threshold = config.confidence_threshold
        if config.confidence_percentile > 0.0 and bool(keep.any()):
            kept = confidence if every else confidence.masked_select(keep)
            threshold = max(threshold, percentile(kept, config.confidence_percentile))
        index = flat_nonzero(confidence >= threshold if every else keep & (confidence >= threshold))
        packed = packed.index_select(0, index)
        colors = read_rgb(packed[:, 3:4].view(torch.uint8))
        frames = index // (rows * cols)
        height, width = 1, int(index.numel())
    else:
        colors = grid_colors.reshape(-1, 3)
        frames = torch.arange(count, device=packed.device).repeat_interleave(rows * cols)
        height, width = count * rows, cols
    return PointCloud(
        points=packed.cpu().numpy(),
        colors=colors.cpu().numpy(),
        frames=frames.cpu().numpy(),
        height=height,
        width=width,
    )
