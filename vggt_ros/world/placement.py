# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Placing a window's frames in the world.

`cameras_in_world` and `place_in_world`: a world-from-window similarity ``[[s*R, t], [0, 0, 0, 1]]`` moves the
window's poses into the world (``world_from_camera``), and chosen dense frames with them: depth multiplied by s
once, and their pixels unprojected once (`vggt_ros.geometry.unproject`). The world's alignment sample, the map and
the published cloud all read these same points. Rows stay on the pipeline's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from vggt_ros.geometry import moved_pose, unproject
from vggt_ros.numeric import scaled_usable_depth
from vggt_ros.products import WindowProducts


@dataclass(frozen=True)
class PlacedFrames:
    """Dense frames moved into the world (see `place_in_world`); rows follow ``frames``.

    Attributes:
        frames: window indices.
        world_from_camera: ``(K, 4, 4)`` float64 poses in the world (host).
        intrinsics: ``(K, 3, 3)`` float64.
        depth: ``(K, H, W)`` float32 world-unit depth, NaN where the prediction was unusable (device).
        confidence: ``(K, H, W)`` float32 (device).
        colors: ``(K, H, W, 3)`` uint8 (device).
        step: the placed pixel grid: every ``step``-th row and column (pixel (i, j) of the grid is pixel
            (i * step, j * step) of the image), the published cloud's decimation.
        points: ``(K, h, w, 3)`` float32 world points of the grid's pixels, NaN where depth is NaN (device).
    """

    frames: tuple[int, ...]
    world_from_camera: np.ndarray
    intrinsics: np.ndarray
    depth: torch.Tensor
    confidence: torch.Tensor
    colors: torch.Tensor
    step: int
    points: torch.Tensor

    def select(self, rows: Sequence[int]) -> "PlacedFrames":
        index = torch.as_tensor(list(rows), dtype=torch.int64, device=self.depth.device)
        host = list(rows)
        return PlacedFrames(
            tuple(self.frames[i] for i in host),
            self.world_from_camera[host],
            self.intrinsics[host],
            self.depth.index_select(0, index),
            self.confidence.index_select(0, index),
            self.colors.index_select(0, index),
            self.step,
            self.points.index_select(0, index),
        )

    def grid(self, image: torch.Tensor) -> torch.Tensor:
        """The placed grid's pixels of per-frame ``(K, H, W, ...)`` images (a view)."""
        return image[:, :: self.step, :: self.step]


def cameras_in_world(world_from_window: np.ndarray, window_from_camera: np.ndarray) -> np.ndarray:
    """``(S, 4, 4)`` rigid world-from-camera poses under a world-from-window similarity ``(4, 4)``
    (`vggt_ros.geometry.moved_pose`; the similarity's scale goes to the depth, `place_in_world`)."""
    return moved_pose(world_from_window, window_from_camera)[0]


def place_in_world(
    products: WindowProducts,
    world_from_camera: np.ndarray,
    depth_scale: float,
    frames: Sequence[int],
    step: int = 1,
) -> PlacedFrames:
    """Move dense ``frames`` (window indices) into the world.

    Args:
        world_from_camera: ``(S, 4, 4)`` every window frame's world pose (`cameras_in_world`).
        depth_scale: the world-from-window similarity's scale s: depth is multiplied by it once, so unprojecting
            it with the (unchanged) intrinsics and the world pose gives the moved points.
        step: unproject every ``step``-th row and column only (the cloud's decimation): nothing reads the others.
    Unusable pixels become NaN.
    """
    frames = tuple(int(i) for i in frames)
    device = products.depth.device
    slots = [products.slot(i) for i in frames]
    if slots and slots == list(range(slots[0], slots[0] + len(slots))):
        rows = slice(slots[0], slots[0] + len(slots))  # consecutive rows (the usual new frames): views, no copy
    else:
        rows = torch.as_tensor(slots, dtype=torch.int64, device=device)
    depth, confidence, colors = products.depth[rows], products.confidence[rows], products.colors[rows]
    depth = scaled_usable_depth(depth, confidence, depth_scale)
    poses, intrinsics = world_from_camera[list(frames)], products.intrinsics[list(frames)]
    return PlacedFrames(
        frames=frames,
        world_from_camera=poses,
        intrinsics=intrinsics,
        depth=depth,
        confidence=confidence,
        colors=colors,
        step=step,
        points=unproject(depth, poses, intrinsics, step),
    )
