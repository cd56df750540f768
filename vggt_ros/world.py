"""One consistent world across VGGT windows: Sim(3) chaining of windows through the frames they share.

VGGT answers each window in its own frame (the window's first image, scale normalised per window). `World`
keeps one world: the OpenCV optical frame (x right, y down, z forward) of the very first image it accepted
(image 0 of the first window: with several cameras, camera 0 of the oldest frame set), at the scale of that
first window, exactly (the first window's world-from-window is its predicted camera-0 extrinsic with scale 1).
For every later window it

1. finds the window's frames that the world already holds (by stable frame id; the world keeps a bounded
   set of recent frames, `WorldConfig.retained_frames`, with a sample of their pixels' world points);
2. unprojects the same pixels of the same frames with the window's own depth and cameras, giving dense 3-D
   correspondences window -> world, weighted by the geometric mean of both confidences;
3. estimates world-from-window: its scale robustly from the depth ratios of those pixels
   (`vggt_ros.alignment.estimate_depth_scale`), then rotation and translation with that scale by the robust
   `vggt_ros.alignment.estimate_sim3` on the points. A pixel's depth scales exactly with the similarity and
   does not involve the predicted poses or focal lengths, so their noise stays out of the world's scale; on
   the bench this halves the scale drift compared with taking the scale from the 3-D points;
4. merges the window, or rejects it with a cause and a reason (see `WindowResult`).

Decisions, each with its reason:
- A frame keeps the pose of the first window that merged it: the keyframe trajectory (TF, path, TUM file)
  never moves backwards. The world points stored for aligning later windows are refined instead: every merged
  window that shares the frame averages its aligned inlier points into them. Each window's own noise would
  otherwise enter the world's scale once and random-walk it; averaging damps that drift.
- Rejection (nothing in the world changes): non-finite cameras; more than `max_invalid_fraction` of the
  window's depth pixels unusable (NaN/Inf/<= 0 depth or NaN/Inf/<= 0 confidence); no shared frame; fewer than
  `min_correspondences` usable pixel pairs; degenerate overlap geometry; inlier ratio below
  `min_inlier_ratio` (inliers: residual <= `inlier_distance_ratio` x scene depth); RMS inlier residual above
  `max_residual_ratio` x scene depth; a shared camera placed more than `max_camera_offset_ratio` x scene depth
  or `max_camera_rotation_deg` away from where the world has it. "Scene depth" is the median depth, in world
  units, of the shared frames' sampled pixels, so every threshold is relative to the scene's scale.
- Invalid pixels of an otherwise usable window are masked (`WindowResult.valid`), never used or published.
- After `max_consecutive_rejections` consecutive rejections, tracking is considered lost: the next window
  that still does not align (but has finite cameras and enough valid depth) starts a new segment instead of
  being rejected (a window that aligns again simply merges). Its first camera is put at the pose of the
  world's last keyframe, and its scale is chosen so that its first frame's median depth equals the last
  keyframe's (world units). The world frame and its scale are kept (TF does not jump to a new origin), but
  the offset between segments is unknown: the caller should start a new map (`mapping.GrowingMap.reset`).
  The stored frames of the old segment are dropped, so later windows align only within the new segment.
- New frames are marked for the map (`WindowResult.map_frames`) only with enough 3-D parallax (from the
  predicted poses) since the last marked frame, so a static or crawling camera does not pile copies of the
  same noisy surface into the map.

Choice of windows (measured with `bench/world_chaining.py`, 8 noise seeds, 200 frames): consecutive windows
must share frames, and the more they share the better: the scale random-walks by each window's noise averaged
over the shared frames. `vggt_ros.window` with stride 1 shares window_size - 1 keyframes. Windows of 8 kept the
scale drift at <= 0.55 % and windows of 12 at <= 0.37 %, with keyframes at a grey-level change of 0.07
(median spacing: about 4 degrees of rotation on the rotation-heavy path, 4 % of the scene depth of translation
on the straight one, 5 degrees and 7 % on the loop). Keyframes at 0.05 (2 - 3 times as many links to drift
over) reached 1 %: near-duplicate keyframes cost accuracy as well as time.

No ROS here; the node turns `WindowResult` into TF, path, points and the map.
"""
from __future__ import annotations

import enum
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Hashable, Optional, Sequence

import numpy as np

from vggt_ros.alignment import DegenerateAlignmentError, estimate_depth_scale, estimate_sim3
from vggt_ros.geometry import (
    compose_similarity,
    decompose_similarity,
    invert_rigid,
    similarity_matrix,
    unproject_depth,
)


@dataclass(frozen=True)
class WorldConfig:
    """Thresholds of the chaining (ratios are relative to the scene depth, see the module docstring).

    Attributes:
        retained_frames: most recent frames kept for aligning later windows (memory bound: each keeps
            ``pixels_per_frame`` points); at least the window size so consecutive windows can overlap.
        pixels_per_frame: pixels sampled per frame for the correspondences.
        confidence_percentile: pixels below this percentile of the window's confidence are not used for
            alignment (0..100).
        min_shared_frames, min_correspondences: overlap needed to try an alignment.
        min_inlier_ratio, inlier_distance_ratio, max_residual_ratio: alignment acceptance.
        max_camera_offset_ratio, max_camera_rotation_deg: shared-camera consistency.
        max_invalid_fraction: largest fraction of unusable depth pixels in a window that is still used.
        max_consecutive_rejections: rejections in a row after which the next usable window that does not align
            starts a new segment.
        map_min_translation_ratio, map_min_rotation_deg: parallax a new frame needs to be marked for the map
            (`WindowResult.map_frames`); 0 marks every new frame.
        seed: pixel sampling and robust-estimator seed (results are deterministic).
    """

    retained_frames: int = 16
    pixels_per_frame: int = 1500
    confidence_percentile: float = 30.0
    min_shared_frames: int = 1
    min_correspondences: int = 200
    min_inlier_ratio: float = 0.6
    inlier_distance_ratio: float = 0.08
    max_residual_ratio: float = 0.05
    max_camera_offset_ratio: float = 0.1
    max_camera_rotation_deg: float = 5.0
    max_invalid_fraction: float = 0.5
    max_consecutive_rejections: int = 3
    map_min_translation_ratio: float = 0.02
    map_min_rotation_deg: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        counts = ("retained_frames", "pixels_per_frame", "min_shared_frames", "min_correspondences",
                  "max_consecutive_rejections")
        for name in counts:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"WorldConfig.{name} must be an int >= 1, got {value!r}")
        if self.min_correspondences < 3:
            raise ValueError(
                "WorldConfig.min_correspondences must be >= 3 (a similarity needs 3 points), "
                f"got {self.min_correspondences}"
            )
        if not 0.0 <= self.confidence_percentile < 100.0:
            raise ValueError(
                f"WorldConfig.confidence_percentile must be in [0, 100), got {self.confidence_percentile!r}"
            )
        for name in ("map_min_translation_ratio", "map_min_rotation_deg"):
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
        camera_to_world: ``(S, 4, 4)`` rigid pose of each frame's optical frame in the world (None when rejected).
        depth_scale: s, the factor from window depth to world depth: depth_world = s * depth_window.
        new_frames: ``(S,)`` bool, frames this window added to the trajectory (all False when rejected).
        map_frames: ``(S,)`` bool, the new frames worth adding to the map: the camera moved at least
            ``map_min_translation_ratio`` x its median depth, or turned ``map_min_rotation_deg``, since the last
            frame marked (3-D parallax from the predicted poses; a static camera adds its surface once).
        valid: ``(S, H, W)`` bool, pixels with finite positive depth and finite positive confidence.
        shared_frames: ids of the frames the alignment used.
        num_correspondences, residual (world units), residual_ratio (residual / scene depth), inlier_ratio:
            alignment diagnostics (NaN / 0 when no alignment ran).
    """

    status: WindowStatus
    cause: str
    reason: str
    frame_ids: tuple[Hashable, ...]
    segment: int
    world_from_window: Optional[np.ndarray]
    camera_to_world: Optional[np.ndarray]
    depth_scale: float
    new_frames: np.ndarray
    map_frames: np.ndarray
    valid: np.ndarray
    shared_frames: tuple[Hashable, ...] = ()
    num_correspondences: int = 0
    residual: float = float("nan")
    residual_ratio: float = float("nan")
    inlier_ratio: float = float("nan")

    @property
    def merged(self) -> bool:
        """The window is now part of the world (its poses and points may be published)."""
        return self.status is not WindowStatus.REJECTED


@dataclass
class WorldCounters:
    """Running totals since construction or the last reset; ``rejections`` counts causes."""

    windows: int = 0
    merged: int = 0
    rejected: int = 0
    segments: int = 0
    rejections: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class Trajectory:
    """The world's keyframes in insertion order.

    frame_ids: ids; timestamps: ``(N,)`` seconds; camera_to_world: ``(N, 4, 4)`` rigid poses of the optical
    frames; depth_scale: ``(N,)`` window-to-world depth factor of the window that added each frame;
    segment: ``(N,)`` int segment of each frame.
    """

    frame_ids: tuple[Hashable, ...]
    timestamps: np.ndarray
    camera_to_world: np.ndarray
    depth_scale: np.ndarray
    segment: np.ndarray


@dataclass(frozen=True)
class _Failure:
    cause: str
    reason: str
    diagnostics: dict = field(default_factory=dict)


@dataclass
class _StoredFrame:
    """A recent frame kept for alignment: sampled pixels (flat indices), their world points, depths (world
    units) and confidences. ``points`` and ``depth`` are the means of ``observations`` aligned estimates per
    pixel (see `World._refine_stored`); ``camera_to_world`` is the frame's trajectory pose."""

    pixel_index: np.ndarray
    points: np.ndarray
    observations: np.ndarray
    confidence: np.ndarray
    depth: np.ndarray
    camera_to_world: np.ndarray


@dataclass(frozen=True)
class _Keyframe:
    frame_id: Hashable
    timestamp: float
    camera_to_world: np.ndarray
    depth_scale: float
    segment: int
    median_depth: float


@dataclass(frozen=True)
class _Window:
    """One window's checked inputs (float64) and what `World.integrate` derives from them first."""

    ids: tuple[Hashable, ...]
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray
    stamps: np.ndarray
    valid: np.ndarray
    # Pixels below this confidence are not used for alignment.
    confidence_threshold: float


@dataclass(frozen=True)
class _Correspondences:
    """The shared frames' pixel pairs: window (src) and world (dst) points and depths, weights ``(M,)``,
    the (frame id, stored-sample rows) each block of pairs came from, and the scene depth (world units)."""

    src: np.ndarray
    dst: np.ndarray
    src_depth: np.ndarray
    dst_depth: np.ndarray
    weights: np.ndarray
    rows: list
    scene_depth: float


class World:
    """The chaining state machine (see the module docstring). Not thread-safe: call from one thread."""

    def __init__(self, config: WorldConfig = WorldConfig()) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next window defines a new world."""
        self._stored: OrderedDict[Hashable, _StoredFrame] = OrderedDict()
        self._keyframes: list[_Keyframe] = []
        self._known: set[Hashable] = set()
        self._last_map_pose: Optional[np.ndarray] = None
        self._segment = 0
        self._consecutive_rejections = 0
        self.counters = WorldCounters()

    @property
    def is_empty(self) -> bool:
        return not self._keyframes

    @property
    def segment(self) -> int:
        return self._segment

    def trajectory(self) -> Trajectory:
        """Every keyframe's world pose so far (all segments)."""
        k = self._keyframes
        return Trajectory(
            frame_ids=tuple(f.frame_id for f in k),
            timestamps=np.array([f.timestamp for f in k], dtype=np.float64),
            camera_to_world=np.stack([f.camera_to_world for f in k]) if k else np.zeros((0, 4, 4)),
            depth_scale=np.array([f.depth_scale for f in k], dtype=np.float64),
            segment=np.array([f.segment for f in k], dtype=np.int64),
        )

    def integrate(
        self,
        frame_ids: Sequence[Hashable],
        extrinsics,
        intrinsics,
        depth,
        confidence,
        timestamps: Optional[Sequence[float]] = None,
    ) -> WindowResult:
        """Align one window to the world and merge it, or reject it.

        Args:
            frame_ids: S distinct hashable ids, stable across windows (e.g. (stamp_ns, camera_index)).
            extrinsics: ``(S, 3, 4)`` camera-from-window [R | t] as VGGT predicts them.
            intrinsics: ``(S, 3, 3)``.
            depth: ``(S, H, W)`` or ``(S, H, W, 1)`` window depth.
            confidence: ``(S, H, W)`` depth confidence (larger is surer).
            timestamps: ``(S,)`` seconds for the trajectory; default: unknown (NaN).
        Returns:
            A `WindowResult`.
        Raises:
            ValueError: malformed arguments (shapes, duplicate ids). Bad *values* from the network (NaN, Inf)
                are not errors: such windows are rejected or their pixels masked.
        """
        window = self._checked(frame_ids, extrinsics, intrinsics, depth, confidence, timestamps)
        self.counters.windows += 1
        count = len(window.ids)

        def reject(cause: str, reason: str, **diagnostics) -> WindowResult:
            self._consecutive_rejections += 1
            self.counters.rejected += 1
            self.counters.rejections[cause] += 1
            none = np.zeros(count, dtype=bool)
            return WindowResult(
                WindowStatus.REJECTED, cause, reason, window.ids, self._segment, None, None, float("nan"),
                none, none, window.valid, **diagnostics,
            )

        finite = np.isfinite(window.extrinsics).all(axis=(1, 2)) & np.isfinite(window.intrinsics).all(axis=(1, 2))
        if not finite.all():
            bad = [window.ids[i] for i in np.flatnonzero(~finite)]
            return reject("non_finite_camera", f"the network returned NaN/Inf cameras for frames {bad}")
        invalid_fraction = 1.0 - float(window.valid.mean())
        if invalid_fraction > self.config.max_invalid_fraction:
            return reject(
                "invalid_depth",
                f"{100 * invalid_fraction:.1f} % of the depth pixels are NaN/Inf/non-positive "
                f"(limit {100 * self.config.max_invalid_fraction:.0f} %)",
            )
        if not window.valid.reshape(count, -1).any(axis=1).all():
            return reject("invalid_depth", "a frame of the window has no usable depth pixel")

        if self.is_empty:
            first = window.extrinsics[0]
            self.counters.segments += 1
            return self._commit(
                WindowStatus.INITIALIZED, "the first window defines the world", window,
                similarity_matrix(1.0, first[:, :3], first[:, 3]),
            )

        aligned = self._align(window)
        if isinstance(aligned, _Failure):
            if self._consecutive_rejections >= self.config.max_consecutive_rejections:
                return self._start_segment(window, aligned.reason)
            return reject(aligned.cause, aligned.reason, **aligned.diagnostics)
        world_from_window, diagnostics = aligned
        return self._commit(WindowStatus.MERGED, "", window, world_from_window, **diagnostics)

    def _align(self, window: _Window):
        """(world_from_window, diagnostics) or a `_Failure`; on success the shared stored frames are refined."""
        shared = [i for i, f in enumerate(window.ids) if f in self._stored]
        if len(shared) < self.config.min_shared_frames:
            return _Failure(
                "no_overlap",
                f"{len(shared)} of the window's frames are among the world's {len(self._stored)} recent frames "
                f"(need {self.config.min_shared_frames})",
            )
        pairs = self._correspondences(window, shared)
        count = len(pairs.src)
        diagnostics = dict(shared_frames=tuple(window.ids[i] for i in shared), num_correspondences=count)
        if count < self.config.min_correspondences:
            return _Failure(
                "few_correspondences",
                f"only {count} usable pixel pairs in the shared frames (need {self.config.min_correspondences})",
                diagnostics,
            )
        try:
            depth_scale = estimate_depth_scale(pairs.dst_depth, pairs.src_depth, pairs.weights)
            scale, rot, trans, fit = estimate_sim3(
                pairs.src, pairs.dst, pairs.weights, fixed_scale=depth_scale,
                inlier_threshold=self.config.inlier_distance_ratio * pairs.scene_depth,
                seed=self.config.seed + self.counters.windows,
            )
        except DegenerateAlignmentError as error:
            return _Failure("degenerate", f"the shared pixels do not fix a similarity: {error}", diagnostics)
        diagnostics.update(
            residual=fit.residual, residual_ratio=fit.residual / pairs.scene_depth, inlier_ratio=fit.inlier_ratio
        )
        if not (math.isfinite(scale) and scale > 0 and np.isfinite(rot).all() and np.isfinite(trans).all()):
            return _Failure("non_finite_alignment", "the alignment produced a non-finite similarity", diagnostics)
        if fit.inlier_ratio < self.config.min_inlier_ratio:
            return _Failure(
                "inliers",
                f"only {100 * fit.inlier_ratio:.0f} % of {count} pixel pairs agree with the best alignment "
                f"within {100 * self.config.inlier_distance_ratio:.0f} % of the scene depth "
                f"(need {100 * self.config.min_inlier_ratio:.0f} %)",
                diagnostics,
            )
        if fit.residual > self.config.max_residual_ratio * pairs.scene_depth:
            return _Failure(
                "residual",
                f"alignment residual {fit.residual:.4g} is {100 * fit.residual / pairs.scene_depth:.1f} % of the "
                f"scene depth (limit {100 * self.config.max_residual_ratio:.1f} %)",
                diagnostics,
            )
        world_from_window = similarity_matrix(scale, rot, trans)
        mismatch = self._camera_mismatch(window, shared, _cameras_in_world(world_from_window, window.extrinsics), pairs)
        if mismatch:
            return _Failure("camera_mismatch", mismatch, diagnostics)
        self._refine_stored(pairs, scale * pairs.src @ rot.T + trans, scale * pairs.src_depth, fit.inlier_mask)
        return world_from_window, diagnostics

    # --- steps -------------------------------------------------------------------------------------------

    def _correspondences(self, window: _Window, shared: list[int]) -> _Correspondences:
        depth = np.where(window.valid[shared], window.depth[shared], 0.0)
        points = unproject_depth(depth, window.extrinsics[shared], window.intrinsics[shared])
        src, dst, src_depth, dst_depth, weights, rows, depths = [], [], [], [], [], [], []
        for k, i in enumerate(shared):
            stored = self._stored[window.ids[i]]
            pixels = stored.pixel_index
            window_conf = window.confidence[i].reshape(-1)[pixels]
            usable = window.valid[i].reshape(-1)[pixels] & (window_conf >= window.confidence_threshold)
            src.append(points[k].reshape(-1, 3)[pixels][usable])
            dst.append(stored.points[usable])
            src_depth.append(window.depth[i].reshape(-1)[pixels][usable])
            dst_depth.append(stored.depth[usable])
            weights.append(np.sqrt(stored.confidence[usable] * window_conf[usable]))
            rows.append((window.ids[i], np.flatnonzero(usable)))
            depths.append(stored.depth)
        return _Correspondences(
            src=np.concatenate(src),
            dst=np.concatenate(dst),
            src_depth=np.concatenate(src_depth),
            dst_depth=np.concatenate(dst_depth),
            weights=np.concatenate(weights),
            rows=rows,
            scene_depth=float(np.median(np.concatenate(depths))),
        )

    def _refine_stored(self, pairs: _Correspondences, moved_src, moved_depth, inliers) -> None:
        """Average the merged window's aligned inlier points and depths into the stored frames it shares."""
        start = 0
        for frame_id, pixel_rows in pairs.rows:
            block = slice(start, start + len(pixel_rows))
            take = inliers[block]
            sel = pixel_rows[take]
            stored = self._stored[frame_id]
            n = stored.observations[sel]
            stored.points[sel] = (stored.points[sel] * n[:, None] + moved_src[block][take]) / (n + 1)[:, None]
            stored.depth[sel] = (stored.depth[sel] * n + moved_depth[block][take]) / (n + 1)
            stored.observations[sel] = n + 1
            start += len(pixel_rows)

    def _camera_mismatch(self, window: _Window, shared, camera_to_world, pairs: _Correspondences) -> str:
        worst_offset, worst_angle, worst_id = 0.0, 0.0, None
        for i in shared:
            stored = self._stored[window.ids[i]].camera_to_world
            offset = float(np.linalg.norm(camera_to_world[i, :3, 3] - stored[:3, 3])) / pairs.scene_depth
            angle = math.degrees(_rotation_angle(stored[:3, :3].T @ camera_to_world[i, :3, :3]))
            if offset > worst_offset or angle > worst_angle:
                worst_id = window.ids[i]
            worst_offset, worst_angle = max(worst_offset, offset), max(worst_angle, angle)
        limit_offset, limit_angle = self.config.max_camera_offset_ratio, self.config.max_camera_rotation_deg
        if worst_offset > limit_offset or worst_angle > limit_angle:
            return (
                f"after alignment, shared frame {worst_id!r} is {100 * worst_offset:.1f} % of the scene depth and "
                f"{worst_angle:.1f} deg away from its world pose "
                f"(limits {100 * limit_offset:.0f} %, {limit_angle:g} deg)"
            )
        return ""

    def _start_segment(self, window: _Window, failure: str) -> WindowResult:
        last = self._keyframes[-1]
        first_depth = float(np.median(window.depth[0][window.valid[0]]))
        scale = last.median_depth / first_depth
        first = window.extrinsics[0]
        first_camera_from_window = similarity_matrix(scale, first[:, :3], scale * first[:, 3])
        world_from_window = compose_similarity(last.camera_to_world, first_camera_from_window)
        lost_for = self._consecutive_rejections
        self._segment += 1
        self.counters.segments += 1
        self._stored.clear()
        self._last_map_pose = None
        return self._commit(
            WindowStatus.NEW_SEGMENT,
            f"tracking lost: {lost_for} windows rejected and this one too ({failure}); segment {self._segment} starts "
            "here, re-anchored at the last keyframe's pose and depth; its offset to the previous segment is unknown "
            "(start a new map)",
            window,
            world_from_window,
        )

    def _commit(
        self, status: WindowStatus, reason: str, window: _Window, world_from_window: np.ndarray, **diagnostics
    ) -> WindowResult:
        scale = float(decompose_similarity(world_from_window)[0])
        camera_to_world = _cameras_in_world(world_from_window, window.extrinsics)
        new = np.array([f not in self._known for f in window.ids])
        map_frames = np.zeros(len(window.ids), dtype=bool)
        if new.any():
            new_idx = np.flatnonzero(new)
            depth_world = np.where(window.valid[new_idx], window.depth[new_idx] * scale, 0.0)
            world_extrinsics = invert_rigid(camera_to_world[new_idx, :3, :])
            points = unproject_depth(depth_world, world_extrinsics, window.intrinsics[new_idx])
            for k, i in enumerate(new_idx):
                median_depth = self._add_frame(window, i, camera_to_world[i], scale, points[k], depth_world[k])
                map_frames[i] = self._has_parallax(camera_to_world[i], median_depth)
                if map_frames[i]:
                    self._last_map_pose = camera_to_world[i]
        self._consecutive_rejections = 0
        self.counters.merged += 1
        return WindowResult(
            status, "", reason, window.ids, self._segment, world_from_window, camera_to_world, scale, new, map_frames,
            window.valid, **diagnostics,
        )

    def _has_parallax(self, camera_to_world: np.ndarray, median_depth: float) -> bool:
        """Whether a new frame moved or turned enough since the last frame marked for the map."""
        last = self._last_map_pose
        if last is None:
            return True
        moved = float(np.linalg.norm(camera_to_world[:3, 3] - last[:3, 3])) / median_depth
        turned = math.degrees(_rotation_angle(last[:3, :3].T @ camera_to_world[:3, :3]))
        return moved >= self.config.map_min_translation_ratio or turned >= self.config.map_min_rotation_deg

    def _add_frame(self, window: _Window, i: int, camera_to_world, scale, points, depth_world) -> float:
        """Store window frame ``i`` (newly merged) and append it to the trajectory; returns its median depth.

        points ``(H, W, 3)`` and depth_world ``(H, W)`` are the frame's, in world units.
        """
        conf, valid = window.confidence[i], window.valid[i]
        usable = np.flatnonzero((valid & (conf >= window.confidence_threshold)).reshape(-1))
        if usable.size == 0:
            usable = np.flatnonzero(valid.reshape(-1))
        rng = np.random.default_rng([self.config.seed, len(self._keyframes)])
        take = min(self.config.pixels_per_frame, usable.size)
        pixel_index = np.sort(rng.choice(usable, size=take, replace=False))
        sample_depth = depth_world.reshape(-1)[pixel_index]
        frame_id = window.ids[i]
        self._stored[frame_id] = _StoredFrame(
            pixel_index=pixel_index,
            points=points.reshape(-1, 3)[pixel_index].astype(np.float64),
            observations=np.ones(take),
            confidence=conf.reshape(-1)[pixel_index],
            depth=sample_depth,
            camera_to_world=camera_to_world,
        )
        while len(self._stored) > self.config.retained_frames:
            self._stored.popitem(last=False)
        self._known.add(frame_id)
        median_depth = float(np.median(sample_depth))
        self._keyframes.append(
            _Keyframe(frame_id, float(window.stamps[i]), camera_to_world, scale, self._segment, median_depth)
        )
        return median_depth

    def _checked(self, frame_ids, extrinsics, intrinsics, depth, confidence, timestamps) -> _Window:
        ids = tuple(frame_ids)
        count = len(ids)
        if count == 0:
            raise ValueError("a window needs at least one frame")
        if len(set(ids)) != count:
            raise ValueError(f"frame_ids must be distinct within a window, got {list(ids)}")
        ext = np.asarray(extrinsics, dtype=np.float64)
        intr = np.asarray(intrinsics, dtype=np.float64)
        dep = np.asarray(depth, dtype=np.float64)
        if dep.ndim == 4 and dep.shape[-1] == 1:
            dep = dep[..., 0]
        conf = np.asarray(confidence, dtype=np.float64)
        if ext.shape != (count, 3, 4):
            raise ValueError(f"extrinsics must be (S, 3, 4) with S = {count} frame ids, got {ext.shape}")
        if intr.shape != (count, 3, 3):
            raise ValueError(f"intrinsics must be (S, 3, 3) with S = {count}, got {intr.shape}")
        if dep.ndim != 3 or dep.shape[0] != count:
            raise ValueError(f"depth must be (S, H, W) or (S, H, W, 1) with S = {count}, got {np.shape(depth)}")
        if conf.shape != dep.shape:
            raise ValueError(f"confidence must have the depth's shape {dep.shape}, got {conf.shape}")
        if timestamps is None:
            stamps = np.full(count, np.nan)
        else:
            stamps = np.asarray(timestamps, dtype=np.float64)
            if stamps.shape != (count,):
                raise ValueError(f"timestamps must be (S,) seconds with S = {count}, got {stamps.shape}")
        valid = np.isfinite(dep) & (dep > 0) & np.isfinite(conf) & (conf > 0)
        threshold = -np.inf
        if self.config.confidence_percentile > 0 and valid.any():
            threshold = float(np.percentile(conf[valid], self.config.confidence_percentile))
        return _Window(ids, ext, intr, dep, conf, stamps, valid, threshold)


def _rotation_angle(rotation: np.ndarray) -> float:
    """Angle (radians) of a rotation matrix."""
    return math.acos(min(1.0, max(-1.0, (float(np.trace(rotation)) - 1.0) / 2.0)))


def _cameras_in_world(world_from_window: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    """``(S, 4, 4)`` rigid camera-to-world poses from camera-from-window extrinsics ``(S, 3, 4)``.

    A similarity moves a camera rigidly (rotation R R_c, centre s R c + t); its scale goes to the depth.
    """
    scale, rot, trans = decompose_similarity(world_from_window)
    camera_to_window = invert_rigid(extrinsics)
    poses = np.zeros((len(extrinsics), 4, 4))
    poses[:, :3, :3] = rot @ camera_to_window[:, :, :3]
    poses[:, :3, 3] = float(scale) * camera_to_window[:, :, 3] @ rot.T + trans
    poses[:, 3, 3] = 1.0
    return poses
