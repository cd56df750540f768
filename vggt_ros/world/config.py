# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The world's configuration and the types it answers with."""

from __future__ import annotations

import enum
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Optional

import numpy as np

from vggt_ros.metric.scale_filter import ScaleFilterConfig
from vggt_ros.world.loop_config import LoopConfig
from vggt_ros.world.placement import PlacedFrames


@dataclass(frozen=True)
class WorldConfig:
    """Thresholds of the chaining (ratios are relative to the scene depth, see `vggt_ros.world.world`) and bounds.

    Attributes:
        retained_frames: most recent frames kept for aligning later windows (memory bound: each keeps
            ``pixels_per_frame`` points); at least the window size so consecutive windows can overlap.
        pixels_per_frame: pixels sampled per frame for the correspondences.
        confidence_percentile: pixels below this percentile of the window's confidence are not used for
            alignment (0..100).
        min_shared_frames, min_correspondences: overlap needed to try an alignment.
        camera_weight: weight of each shared camera's pose in the alignment, relative to one shared frame's
            pixels (0: pixels only). The camera head places every frame of the window, so the poses of all the
            frames the world shares come free even where the depth head ran on few of them.
        min_inlier_ratio, inlier_distance_ratio, max_residual_ratio: alignment acceptance.
        max_camera_offset_ratio, max_camera_rotation_deg: shared-camera consistency.
        max_invalid_fraction: largest fraction of unusable depth pixels within the images (padding is none) in a
            window that is still used.
        max_consecutive_rejections: rejections in a row after which the next usable window that does not align
            starts a new segment.
        map_min_translation_ratio, map_min_rotation_deg: parallax a new frame needs to be marked for the map
            (`WindowResult.map_frames`); 0 marks every new frame.
        trajectory_recent: newest keyframes kept with their poses (and known by id, so a window's frames are
            recognised as already merged); at least ``retained_frames``.
        trajectory_history: older keyframes kept, decimated: when full, every second frame set is dropped, so
            the history always spans the whole run at a growing spacing, the same for every camera.
        seed: pixel sampling and robust-estimator seed (results are deterministic).
        scale_filter: how metric scale observations are filtered over windows (`vggt_ros.metric.scale_filter`).
        loop: loop closure, relocalisation and the pose graph (`vggt_ros.world.loop_config`); on by default.
    """

    retained_frames: int = 16
    pixels_per_frame: int = 1500
    confidence_percentile: float = 30.0
    min_shared_frames: int = 1
    min_correspondences: int = 200
    camera_weight: float = 0.25
    min_inlier_ratio: float = 0.6
    inlier_distance_ratio: float = 0.08
    max_residual_ratio: float = 0.05
    max_camera_offset_ratio: float = 0.1
    max_camera_rotation_deg: float = 5.0
    max_invalid_fraction: float = 0.5
    max_consecutive_rejections: int = 3
    map_min_translation_ratio: float = 0.02
    map_min_rotation_deg: float = 2.0
    trajectory_recent: int = 500
    trajectory_history: int = 500
    seed: int = 0
    scale_filter: ScaleFilterConfig = field(default_factory=ScaleFilterConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)

    def __post_init__(self) -> None:
        counts = (
            "retained_frames",
            "pixels_per_frame",
            "min_shared_frames",
            "min_correspondences",
            "max_consecutive_rejections",
            "trajectory_recent",
            "trajectory_history",
        )
        for name in counts:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"WorldConfig.{name} must be an int >= 1, got {value!r}")
        if self.min_correspondences < 3:
            raise ValueError(
                "WorldConfig.min_correspondences must be >= 3 (a similarity needs 3 points), "
                f"got {self.min_correspondences}"
            )
        if self.trajectory_recent < self.retained_frames:
            raise ValueError(
                f"WorldConfig.trajectory_recent ({self.trajectory_recent}) must be >= retained_frames "
                f"({self.retained_frames}): frames still used for alignment must be known as merged"
            )
        if not 0.0 <= self.confidence_percentile < 100.0:
            raise ValueError(
                f"WorldConfig.confidence_percentile must be in [0, 100), got {self.confidence_percentile!r}"
            )
        for name in ("map_min_translation_ratio", "map_min_rotation_deg", "camera_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"WorldConfig.{name} must be a number >= 0, got {value!r}")
        for name in ("min_inlier_ratio", "max_invalid_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"WorldConfig.{name} must be in [0, 1], got {value!r}")
        positive = ("inlier_distance_ratio", "max_residual_ratio", "max_camera_offset_ratio", "max_camera_rotation_deg")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"WorldConfig.{name} must be a positive number, got {value!r}")


class WindowStatus(str, enum.Enum):
    """What `World.integrate` did with a window."""

    INITIALIZED = "initialized"  # the first window: it defines the world
    MERGED = "merged"
    REJECTED = "rejected"
    NEW_SEGMENT = "new_segment"  # tracking was lost; this window re-anchors a new segment


@dataclass(frozen=True)
class WindowResult:
    """Outcome of one window.

    Attributes:
        status, cause, reason: what happened; ``cause`` is a short key for counting ("" when merged),
            ``reason`` a sentence for the log.
        frame_ids: the window's frame ids, model order.
        segment: segment the window belongs to (rejected: the current one).
        world_from_window: ``(4, 4)`` similarity [[s*R, t], [0, 0, 0, 1]] (None when rejected).
        world_from_camera: ``(S, 4, 4)`` rigid pose of each frame's optical frame in the world (None when rejected).
        depth_scale: s, the factor from window depth to world depth: depth_world = s * depth_window.
        new_frames: ``(S,)`` bool, frames this window added to the trajectory (all False when rejected).
        map_frames: ``(S,)`` bool, the new frames worth adding to the map: the camera moved at least
            ``map_min_translation_ratio`` x its median depth, or turned ``map_min_rotation_deg``, since the last
            frame marked (3-D parallax from the predicted poses; a static camera adds its surface once).
        placed: the new frames in the world (poses, depth, points, colours), None when rejected or none is new.
        shared_frames: ids of the frames the alignment used.
        num_correspondences, residual (world units), residual_ratio (residual / scene depth), inlier_ratio:
            alignment diagnostics (NaN / 0 when no alignment ran).
        metric: the world's units are metres (a metric scale source has been accepted).
        scale_note: why this window's metric scale observation was not used ("" when it was or there was none).
        forgotten: ids of the older keyframes the bounded trajectory dropped as this window's frames came in: no
            loop can be closed to them any more.
    """

    status: WindowStatus
    cause: str
    reason: str
    frame_ids: tuple[Hashable, ...]
    segment: int
    world_from_window: Optional[np.ndarray]
    world_from_camera: Optional[np.ndarray]
    depth_scale: float
    new_frames: np.ndarray
    map_frames: np.ndarray
    placed: Optional[PlacedFrames] = None
    shared_frames: tuple[Hashable, ...] = ()
    num_correspondences: int = 0
    residual: float = float("nan")
    residual_ratio: float = float("nan")
    inlier_ratio: float = float("nan")
    metric: bool = False
    scale_note: str = ""
    forgotten: tuple[Hashable, ...] = ()

    @property
    def merged(self) -> bool:
        """The window is now part of the world (its poses and points may be published)."""
        return self.status is not WindowStatus.REJECTED


@dataclass
class WorldCounters:
    """Running totals since construction or the last reset; ``rejections`` counts causes; ``frames_left_out``, the
    frames dropped from the alignments because they disagreed with the window after theirs and the world."""

    windows: int = 0
    merged: int = 0
    rejected: int = 0
    segments: int = 0
    frames_left_out: int = 0
    rejections: Counter = field(default_factory=Counter)
