# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
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
   (`vggt_ros.world.alignment.estimate_depth_scale`), then rotation and translation with that scale by the robust
   `vggt_ros.world.alignment.estimate_sim3` on the points. A pixel's depth scales exactly with the similarity and
   does not involve the predicted poses or focal lengths, so their noise stays out of the world's scale; on
   the bench this halves the scale drift compared with taking the scale from the 3-D points;
4. merges the window, or rejects it with a cause and a reason (see `WindowResult`).

Decisions, each with its reason:
- A frame keeps the pose of the first window that merged it: the keyframe trajectory (TF, path, TUM file)
  never moves backwards. The world points stored for aligning later windows are refined instead: every merged
  window that shares the frame averages its aligned inlier points into them. Each window's own noise would
  otherwise enter the world's scale once and random-walk it; averaging damps that drift.
- Rejection (nothing in the world changes): non-finite cameras; more than `max_invalid_fraction` of the
  window's depth pixels within the images unusable (NaN/Inf/<= 0 depth or NaN/Inf/<= 0 confidence; padding is
  no pixel of an image); no shared frame; fewer than
  `min_correspondences` usable pixel pairs; degenerate overlap geometry; inlier ratio below
  `min_inlier_ratio` (inliers: residual <= `inlier_distance_ratio` x scene depth); RMS inlier residual above
  `max_residual_ratio` x scene depth; a shared camera placed more than `max_camera_offset_ratio` x scene depth
  or `max_camera_rotation_deg` away from where the world has it. "Scene depth" is the median depth, in world
  units, of the shared frames' sampled pixels, so every threshold is relative to the scene's scale.
- Invalid pixels of an otherwise usable window are masked (NaN in `WindowResult.placed`), never used or published.
- Only frames with depth count: a window's depth head may run on a subset of its frames (`WindowProducts.dense`);
  every frame new to the world must be among them, and the alignment uses the dense frames the world shares.
- A window that fails its alignment is aligned once more without the frames only the window before placed (new
  frames are merged unchecked, and a frame the network got wrong in that window alone would fail every later
  window, which shares it as the newest frame the world holds): if it aligns through the frames earlier windows
  confirmed, it merges and those frames' samples go (`WorldCounters.frames_left_out`).
- After `max_consecutive_rejections` consecutive rejections, tracking is considered lost: the next window
  that still does not align (but has finite cameras and enough valid depth) starts a new segment instead of
  being rejected (a window that aligns again simply merges). Its first frame with depth is put at that frame's
  world pose if the world holds it, else at the world's last keyframe, and its scale is chosen so that the
  frame's median depth equals the world's median depth there (world units), or, in a metric world, is the
  window's own metric observation when it has one (the depth there is only a guess in metres). The world frame
  and its scale are kept (TF does not jump to a new origin), but the offset between segments is unknown: the
  caller should start a new map (`mapping.GrowingMap.reset`).
  The stored frames of the old segment are dropped, so later windows align only within the new segment.
  With loop closure (`WorldConfig.loop`) the old segment's keyframes and map points stay in the pose graph:
  verified loops between the segments, from `LoopConfig.join_min_loops` frame sets that agree, join them
  (relocalisation, `close_loop`) and the old map comes back (`map_cloud`).
- Loop closure (`vggt_ros.world.loop_closure`): `close_loop` takes a verified `LoopConstraint`, optimises the
  keyframes' Sim(3) pose graph and re-places the keyframes and the map. The chained poses above (odometry) never
  move (`trajectory`); the corrected ones are `corrected_trajectory` and `map_cloud`, and `corrected_from_chained`
  is their offset at the newest keyframe (REP 105 map -> odom).
- Metric scale (`integrate`'s ``metric_observation``: a `vggt_ros.metric.sources.ScaleObservation` of the window in
  metres per window unit, from a depth sensor, a camera rig or odometry). Every observation is compared with the
  world's own scale for the window (metres per world unit) and fed to a robust filter
  (`vggt_ros.metric.scale_filter`). Once the filter holds ``min_observations`` of them the world becomes metric: the
  whole world is rescaled once by their weighted median (nothing is published in the unit-less world when a scale
  source is configured; see `vggt_ros.session`). From then on the window's similarity is corrected by the filter's
  bounded factor about the newest shared camera, so the path near the robot does not move and the scale never jumps,
  and the retained frames the next window aligns to are rescaled about the same point, so that the correction holds.
  The chaining is smooth but drifts, the source is noisy but unbiased: together they hold the scale. The source's
  scale is one constant that every window measures again, so the filter combines all the windows' observations,
  weighted by their noise, and lets only the chaining's slow drift age them. A window without an observation (no
  depth, a still robot) keeps the world's scale.
- New frames are marked for the map (`WindowResult.map_frames`) only with enough 3-D parallax (from the
  predicted poses) since the last marked frame, so a static or crawling camera does not pile copies of the
  same noisy surface into the map.

Choice of windows: consecutive windows must share frames, and the more they share the better: the scale
random-walks by each window's noise averaged over the shared frames (`vggt_ros.window` with stride 1 shares
window_size - 1 keyframes). The figures behind the defaults are in docs/benchmarks.md (World chaining).

Memory is bounded: the recent frames' samples (`retained_frames`) and the trajectory (`trajectory_recent`
keyframes in full plus a decimated history of `trajectory_history`), see `vggt_ros.world.keyframes`.

No ROS here; the node turns `WindowResult` into TF, path, points and the map.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Hashable, Iterable, Optional

import numpy as np
import numpy.ma  # noqa: F401 - np.median imports it on its first call: at start-up, not in the worker (see below)
import torch

from vggt_ros.geometry import (
    compose_similarity,
    decompose_similarity,
    invert_pose,
    rigid_and_scale,
    scale_pose,
    similarity_matrix,
)
from vggt_ros.metric.scale_filter import MetricScaleFilter
from vggt_ros.metric.sources import ScaleObservation
from vggt_ros.numeric import percentile
from vggt_ros.products import WindowProducts
from vggt_ros.world.config import WindowResult, WindowStatus, WorldConfig, WorldCounters
from vggt_ros.world.keyframes import FrameSamples, Keyframe, KeyframeStore, SampleStore, Trajectory
from vggt_ros.world.loop_closure import LoopClosure, LoopCounters, LoopResult
from vggt_ros.world.loop_constraint import LoopConstraint
from vggt_ros.world.overlap import AlignmentFailure, align, rotation_angle
from vggt_ros.world.placement import cameras_in_world, place_in_world


class World:
    """The chaining state machine (see the module docstring). Not thread-safe: call from one thread."""

    def __init__(self, config: WorldConfig = WorldConfig(), keeps_map_points: bool = True) -> None:
        """``keeps_map_points``: with loop closure, the world keeps each new map keyframe's points above the
        alignment's confidence threshold for the map rebuilt after a loop; False where the caller keeps them
        (`keep_map_points`: the session keeps the points its map took)."""
        self.config = config
        self._keeps_map_points = keeps_map_points
        self.loops: Optional[LoopClosure] = None
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next window defines a new world."""
        self.samples = SampleStore(self.config.retained_frames)
        self.keyframes = KeyframeStore(self.config.trajectory_recent, self.config.trajectory_history)
        # Each camera's last frame marked for the map: a rig's cameras are a baseline apart, so compared with each
        # other every frame had parallax and a still rig filled the map with copies of its surfaces.
        self._last_map_pose: dict[int, np.ndarray] = {}
        self._segment = 0
        self.origin: Optional[Hashable] = None  # the id of the frame that defines the world (the first window's first)
        self._consecutive_rejections = 0
        self.counters = WorldCounters()
        self._unconfirmed: frozenset = frozenset()  # frames only the newest merged window placed
        self.metric = False  # world units are metres
        self.scale_filter = MetricScaleFilter(self.config.scale_filter)
        # Loop closure: the keyframes' pose graph and map points (None when disabled; see `close_loop`). Its counters
        # run on over a reset, as the loop verification's do: /diagnostics' loop figures are totals since start.
        counters = self.loops.counters if self.loops is not None else None
        self.loops = LoopClosure(self.config.loop, counters) if self.config.loop.enabled else None

    @property
    def is_empty(self) -> bool:
        return self.keyframes.last is None

    @property
    def segment(self) -> int:
        return self._segment

    def trajectory(self) -> Trajectory:
        """The kept keyframes' chained world poses (all segments; older ones decimated, see `WorldConfig`): the
        odometry, continuous, never moved by a loop. Loop verification measures its constraints in it."""
        return self.keyframes.trajectory()

    def corrected_trajectory(self) -> Trajectory:
        """The kept keyframes' poses as corrected by the closed loops, in the corrected world (`trajectory` until a
        loop is closed): for the path, the map and the exports."""
        trajectory = self.keyframes.trajectory()
        if not self.corrected_by_loops:
            return trajectory
        nodes = self.loops.graph.nodes
        # One batched call: the path asks after every window.
        rigid, scales = rigid_and_scale(np.stack([nodes[f].corrected for f in trajectory.frame_ids]))
        return dataclasses.replace(trajectory, world_from_camera=rigid, depth_scale=trajectory.depth_scale * scales)

    @property
    def corrected_by_loops(self) -> bool:
        """A closed loop has moved the corrected poses away from the chained ones (never with loop closure off)."""
        return self.loops is not None and self.loops.optimised

    @property
    def corrected_from_chained(self) -> np.ndarray:
        """``(4, 4)`` similarity from the chained world to the corrected one at the newest keyframe: REP 105's
        map -> odom, to publish as parent_frame -> world_frame. Identity until a loop is closed."""
        return np.eye(4) if self.loops is None else self.loops.graph.correction

    @property
    def loop_counters(self) -> Optional[LoopCounters]:
        """Loops accepted and rejected (by cause, the last reason), segments joined, the last optimisation's time
        (for /diagnostics); None when loop closure is disabled."""
        return None if self.loops is None else self.loops.counters

    def keyframe(self, frame_id) -> Optional[Keyframe]:
        """A kept keyframe with its chained pose (for loop verification), None when it is not kept."""
        return self.keyframes.get(frame_id)

    def map_cloud(self) -> tuple[np.ndarray, np.ndarray]:
        """The map of the current segment and every segment loops joined to it, placed by the corrected poses:
        points ``(M, 3)`` float32 and colours ``(M, 3)`` uint8 (empty when loop closure is disabled). Segments not
        joined yet are left out: their place in this world is unknown until a loop joins them."""
        if self.loops is None:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
        nodes, segments = self.loops.graph.nodes, self._joined_segments()
        joined = {f: pose for f, pose in self.loops.corrected().items() if nodes[f].segment in segments}
        return self.loops.map.placed(joined)

    def joined_to_current(self, segment: int) -> bool:
        """``segment`` is the current one, or loops joined the two (relocalisation): their poses share one frame."""
        if segment == self._segment:
            return True
        return self.loops is not None and self.loops.graph.group(segment) == self.loops.graph.group(self._segment)

    def _joined_segments(self) -> set[int]:
        """The current segment and every segment loops joined to it (loop closure on): those this world places."""
        graph = self.loops.graph
        group = graph.group(self._segment)
        return {s for s in {node.segment for node in graph.nodes.values()} if graph.group(s) == group}

    def loop_corrections(self, frame_ids: Iterable[Hashable]) -> Optional[dict[Hashable, np.ndarray]]:
        """frame id -> ``(4, 4)`` similarity corrected-from-chained world of each of ``frame_ids``: how far the closed
        loops moved it, for outputs written from the chained poses (the dataset exports). None unless loops moved
        the world and every frame is a kept keyframe of the segments `map_cloud` places (the current one and those
        loops joined to it): a frame the keyframe store dropped, or one of a segment not joined, has no corrected
        pose in this world."""
        if not self.corrected_by_loops:
            return None
        nodes, segments = self.loops.graph.nodes, self._joined_segments()
        corrections = {}
        for frame_id in frame_ids:
            node = nodes.get(frame_id)
            if node is None or node.segment not in segments:
                return None
            corrections[frame_id] = node.corrected @ invert_pose(node.chained)
        return corrections

    def close_loop(self, constraint: LoopConstraint) -> LoopResult:
        """Add a verified loop to the pose graph and optimise: the keyframes and the map are re-placed and
        `corrected_from_chained` moves; a loop to another segment is held until loops from other frame sets agree,
        and then they join the two (relocalisation; `LoopResult.held`). An implausible
        loop, a solver failure or a loop the solve still finds off changes nothing (see
        `vggt_ros.world.loop_closure`). ``constraint.match_from_query`` is measured against the chained world
        (`trajectory`, `keyframe`): each side in its keyframe's chained pose and world units.

        Raises:
            RuntimeError: loop closure is disabled (`WorldConfig.loop`).
        """
        if self.loops is None:
            raise RuntimeError("loop closure is disabled (WorldConfig.loop.enabled is False)")
        return self.loops.close(constraint)

    def integrate(
        self, products: WindowProducts, grid_step: int = 1, metric_observation: Optional[ScaleObservation] = None
    ) -> WindowResult:
        """Align one window to the world and merge it, or reject it.

        ``grid_step``: the new frames are placed in the world (unprojected) on every ``grid_step``-th row and
        column, the published cloud's decimation; their alignment samples are drawn from those pixels.
        ``metric_observation``: the window's metric scale observation, when a source measured one (see the module
        docstring).

        Raises:
            ValueError: the window's frame ids are not distinct, or a frame new to the world has no depth (the
                caller chose the dense frames wrongly).
                Bad *values* from the network (NaN, Inf) are not errors: such windows are rejected or their
                pixels masked.
        """
        ids = products.frame_ids
        if len(set(ids)) != len(ids):
            raise ValueError(f"a window's frame ids must be distinct, got {list(ids)}")
        new = np.array([f not in self.keyframes for f in ids])
        missing = [ids[i] for i in np.flatnonzero(new) if i not in products.dense]
        if missing:
            raise ValueError(f"frames {missing} are new to the world but the depth head did not run on them")
        self.counters.windows += 1

        def reject(cause: str, reason: str, **diagnostics) -> WindowResult:
            self._consecutive_rejections += 1
            self.counters.rejected += 1
            self.counters.rejections[cause] += 1
            none = np.zeros(len(ids), dtype=bool)
            return WindowResult(
                status=WindowStatus.REJECTED,
                cause=cause,
                reason=reason,
                frame_ids=ids,
                segment=self._segment,
                world_from_window=None,
                world_from_camera=None,
                depth_scale=float("nan"),
                new_frames=none,
                map_frames=none,
                metric=self.metric,
                **diagnostics,
            )

        finite = np.isfinite(products.window_from_camera).all(axis=(1, 2)) & np.isfinite(products.intrinsics).all(
            axis=(1, 2)
        )
        if not finite.all():
            bad = [ids[i] for i in np.flatnonzero(~finite)]
            return reject("non_finite_camera", f"the network returned NaN/Inf cameras for frames {bad}")
        # Window statistics on the placed grid: an estimate of the whole, at a fraction of the cost.
        _, grid_confidence, grid_usable = products.grid(grid_step)
        # Over the pixels that show the cameras' images: padding (NaN depth) observes nothing, so it is no failure.
        observed = int(products.observed_grid(grid_step).sum())
        invalid_fraction = 1.0 - int(grid_usable.sum()) / max(observed, 1)
        if invalid_fraction > self.config.max_invalid_fraction:
            return reject(
                "invalid_depth",
                f"{100 * invalid_fraction:.1f} % of the depth pixels within the images are NaN/Inf/non-positive "
                f"(limit {100 * self.config.max_invalid_fraction:.0f} %)",
            )
        if not bool(grid_usable.flatten(1).any(dim=1).all()):
            return reject("invalid_depth", "a frame of the window has no usable depth pixel")
        threshold = -math.inf
        if self.config.confidence_percentile > 0:
            threshold = percentile(grid_confidence[grid_usable], self.config.confidence_percentile)

        if self.is_empty:
            self.counters.segments += 1
            self.origin = ids[0]
            first_camera_from_window = invert_pose(products.window_from_camera[0])
            return self._commit(
                WindowStatus.INITIALIZED,
                "the first window defines the world",
                products,
                new,
                threshold,
                grid_step,
                first_camera_from_window,
                metric_observation,
            )

        seed = self.config.seed + self.counters.windows
        aligned = align(products, self.samples, threshold, self.config, seed=seed)
        note = ""
        if isinstance(aligned, AlignmentFailure):
            failure = aligned
            retried = self._align_without_unconfirmed(products, threshold, seed)
            if retried is None:
                if self._consecutive_rejections >= self.config.max_consecutive_rejections:
                    return self._start_segment(products, new, threshold, grid_step, failure.reason, metric_observation)
                return reject(failure.cause, failure.reason, **failure.diagnostics)
            aligned, left_out = retried
            note = (
                f"frames {list(left_out)}, placed by the window before alone, disagree with this window and the "
                f"world's other frames ({failure.reason}): left out of the alignments from now on"
            )
        world_from_window, diagnostics = aligned
        return self._commit(
            WindowStatus.MERGED,
            note,
            products,
            new,
            threshold,
            grid_step,
            world_from_window,
            metric_observation,
            **diagnostics,
        )

    def _align_without_unconfirmed(
        self, products: WindowProducts, threshold: float, seed: int
    ) -> Optional[tuple[tuple[np.ndarray, dict], tuple[Hashable, ...]]]:
        """The failed alignment once more without the shared frames only the window before placed, when frames
        that earlier windows confirmed remain: ``((world_from_window, diagnostics), those frames)`` if it then
        aligns, else None. A frame the network got wrong in that window alone (blur, a bad pose) was merged
        unchecked, and as the newest frame the world holds every later window shares it: each would fail, and
        tracking would be lost, for one frame. Its stored samples go: it is never compared again (its pose and
        points stay where that window put them)."""
        shared = [f for i in products.dense if (f := products.frame_ids[i]) in self.samples]
        suspects = tuple(f for f in shared if f in self._unconfirmed)
        if not suspects or len(suspects) == len(shared):
            return None
        others = {f: samples for f, samples in self.samples.items() if f not in suspects}
        aligned = align(products, others, threshold, self.config, seed=seed)
        if isinstance(aligned, AlignmentFailure):
            return None
        for frame_id in suspects:
            del self.samples[frame_id]
        self.counters.frames_left_out += len(suspects)
        return aligned, suspects

    def _start_segment(
        self,
        products: WindowProducts,
        new,
        threshold: float,
        grid_step: int,
        failure: str,
        metric_observation: Optional[ScaleObservation],
    ) -> WindowResult:
        anchor = products.dense[0]
        row = products.slot(anchor)
        depth, _, usable = products.grid(grid_step)
        window_depth = float(depth[row][usable[row]].median())
        stored = self.samples.get(products.frame_ids[anchor])
        if stored is not None:
            target_pose, target_depth = stored.world_from_camera, float(np.median(stored.depth))
        else:  # the anchor's own camera: another camera of a rig is a baseline (or a turn) away
            last = self.keyframes.newest_of_camera(products.frame_ids[anchor][1])
            last = last if last is not None else self.keyframes.last
            target_pose, target_depth = last.world_from_camera, last.median_depth
        if self.metric and metric_observation is not None:
            # World units are metres: the window's own measurement is its scale. The depth where the world last
            # saw the camera is only a guess there (a relocalised segment started 24 % off in metres, and the
            # filter's bounded steps left it 10 % off 80 keyframes later).
            depth_scale = metric_observation.metres_per_unit
        else:
            depth_scale = target_depth / window_depth  # the Sim(3) factor: world depth per window depth
            if self.metric:  # a guess in metres: the next windows that agree on another scale may restart it
                self.scale_filter.reopen()
        camera_from_window = invert_pose(products.window_from_camera[anchor])
        anchor_from_window = similarity_matrix(
            depth_scale, camera_from_window[:3, :3], depth_scale * camera_from_window[:3, 3]
        )
        world_from_window = compose_similarity(target_pose, anchor_from_window)
        lost_for = self._consecutive_rejections
        self._segment += 1
        self.counters.segments += 1
        self.samples.clear()
        self._last_map_pose = {}
        return self._commit(
            WindowStatus.NEW_SEGMENT,
            f"tracking lost: {lost_for} windows rejected and this one too ({failure}); segment {self._segment} starts "
            "here, re-anchored where the world last saw it; its offset to the previous segment is unknown "
            "(start a new map)",
            products,
            new,
            threshold,
            grid_step,
            world_from_window,
            metric_observation,
        )

    def _commit(
        self,
        status: WindowStatus,
        reason: str,
        products: WindowProducts,
        new: np.ndarray,
        threshold: float,
        grid_step: int,
        world_from_window: np.ndarray,
        metric_observation: Optional[ScaleObservation],
        **diagnostics,
    ) -> WindowResult:
        world_from_window, scale_note = self._apply_metric_scale(world_from_window, products, new, metric_observation)
        depth_scale = float(decompose_similarity(world_from_window)[0])  # the Sim(3) factor
        world_from_camera = cameras_in_world(world_from_window, products.window_from_camera)
        new_idx = [int(i) for i in np.flatnonzero(new)]
        placed = place_in_world(products, world_from_camera, depth_scale, new_idx, grid_step) if new_idx else None
        map_frames = np.zeros(len(products.frame_ids), dtype=bool)
        residual_ratio = float(diagnostics.get("residual_ratio", math.nan))
        forgotten = []
        for row, i in enumerate(new_idx):
            median_depth = self._add_frame(products, i, placed, row, threshold, depth_scale, residual_ratio, forgotten)
            pose = placed.world_from_camera[row]
            map_frames[i] = self._has_parallax(products.frame_ids[i][1], pose, median_depth)
            if map_frames[i]:
                self._last_map_pose[products.frame_ids[i][1]] = pose
                if self._keeps_map_points and self.loops is not None:
                    self._keep_map_points(products.frame_ids[i], placed, row, threshold)
        self._consecutive_rejections = 0
        self._unconfirmed = frozenset(products.frame_ids[i] for i in new_idx)
        self.counters.merged += 1
        return WindowResult(
            status=status,
            cause="",
            reason=reason,
            frame_ids=products.frame_ids,
            segment=self._segment,
            world_from_window=world_from_window,
            world_from_camera=world_from_camera,
            depth_scale=depth_scale,
            new_frames=new,
            map_frames=map_frames,
            placed=placed,
            metric=self.metric,
            scale_note=scale_note,
            forgotten=tuple(forgotten),
            **diagnostics,
        )

    def _apply_metric_scale(
        self,
        world_from_window: np.ndarray,
        products: WindowProducts,
        new: np.ndarray,
        observation: Optional[ScaleObservation],
    ) -> tuple[np.ndarray, str]:
        """The window's similarity after the metric scale (see the module docstring), and why the observation
        was not used ("" when it was, or when there was none)."""
        if observation is None:
            return world_from_window, ""
        ratio = observation.metres_per_unit / float(decompose_similarity(world_from_window)[0])
        verdict = self.scale_filter.update(ratio, observation.relative_sigma, new_share=float(new.mean()))
        if not self.metric:
            if not verdict.accepted:
                return world_from_window, verdict.reason
            if len(self.scale_filter) < self.scale_filter.config.min_observations:
                return world_from_window, ""  # the median of several decides the world's unit, not one window
            correction = self.scale_filter.estimate
            self.samples.rescale(correction)
            self.keyframes.rescale(correction)
            if self.loops is not None:
                self.loops.rescale(correction)
            self._last_map_pose = {camera: scale_pose(pose, correction) for camera, pose in self._last_map_pose.items()}
            self.scale_filter.rebase(correction)
            self.metric = True
            return _scaled_about(world_from_window, correction, np.zeros(3)), ""
        correction = self.scale_filter.correction()
        if correction != 1.0:
            # About the newest camera the world already holds: the path next to the robot stays where it is.
            known = np.flatnonzero(~new)
            anchor = int(known[-1]) if known.size else products.dense[0]
            pivot = world_from_window[:3, :3] @ products.window_from_camera[anchor][:3, 3] + world_from_window[:3, 3]
            world_from_window = _scaled_about(world_from_window, correction, pivot)
            # The retained samples too: the next window aligns to them, and at their old scale it would undo most of
            # this correction (only the new frames carry it) while the filter, rebased below, assumes it holds.
            shift = (1.0 - correction) * pivot
            self.samples.rescale(correction)
            for samples in self.samples.values():
                samples.points = samples.points + shift
                samples.world_from_camera = samples.world_from_camera.copy()
                samples.world_from_camera[:3, 3] += shift
            self.scale_filter.rebase(correction)
        return world_from_window, "" if verdict.accepted else verdict.reason

    def _has_parallax(self, camera: int, world_from_camera: np.ndarray, median_depth: float) -> bool:
        """Whether a new frame of ``camera`` moved or turned enough since its camera's last frame marked for the
        map."""
        last = self._last_map_pose.get(camera)
        if last is None:
            return True
        moved = float(np.linalg.norm(world_from_camera[:3, 3] - last[:3, 3])) / median_depth
        turned = math.degrees(rotation_angle(last[:3, :3].T @ world_from_camera[:3, :3]))
        return moved >= self.config.map_min_translation_ratio or turned >= self.config.map_min_rotation_deg

    def _keep_map_points(self, frame_id, placed, row: int, threshold: float) -> None:
        """Keep a map keyframe's confident placed points, in its own frame, for re-placing after a loop."""
        confident = (placed.grid(placed.confidence)[row] >= threshold).reshape(-1).cpu().numpy()
        points = placed.points[row].reshape(-1, 3).cpu().numpy()[confident]
        colors = placed.grid(placed.colors)[row].reshape(-1, 3).cpu().numpy()[confident]
        self.keep_map_points(frame_id, placed.world_from_camera[row], points, colors)

    def keep_map_points(self, frame_id, world_from_camera: np.ndarray, points: np.ndarray, colors: np.ndarray) -> None:
        """Keep the points ``(N, 3)`` (chained world) and colours ``(N, 3)`` uint8 of map keyframe ``frame_id`` at
        ``world_from_camera`` for the map rebuilt after a loop (`map_cloud`); nothing without loop closure. The
        session keeps the points its map took (the cloud's filter), so that the rebuilt map is filtered as the map
        was, and holds none of the frames it held back for the metric scale."""
        if self.loops is not None:
            self.loops.map.add(frame_id, world_from_camera, points, colors)

    def _add_frame(
        self,
        products: WindowProducts,
        i: int,
        placed,
        row: int,
        threshold: float,
        depth_scale: float,
        residual_ratio: float,
        forgotten: list,
    ) -> float:
        """Store window frame ``i`` (newly merged, row ``row`` of ``placed``) and add it to the trajectory; the ids
        of the keyframes the bounded trajectory dropped for it are appended to ``forgotten``.

        Its sample is drawn from the placed grid's usable pixels and their world points (unprojected once for the
        window). Returns the frame's median depth, world units.
        """
        slot = products.slot(i)
        grid_valid = torch.isfinite(placed.grid(placed.depth)[row])  # placed depth is NaN where unusable
        usable_mask = grid_valid & (placed.grid(placed.confidence)[row] >= threshold)
        usable = torch.nonzero((usable_mask if bool(usable_mask.any()) else grid_valid).reshape(-1))[:, 0]
        rng = np.random.default_rng([self.config.seed, self.keyframes.total])
        take = min(self.config.pixels_per_frame, usable.numel())
        grid_index = np.sort(rng.choice(usable.cpu().numpy(), size=take, replace=False))
        points = placed.points[row].reshape(-1, 3)[torch.from_numpy(grid_index).to(placed.points.device)]
        grid_cols = placed.points.shape[2]
        width = products.image_hw[1]
        pixel_index = (grid_index // grid_cols) * placed.step * width + (grid_index % grid_cols) * placed.step
        index = torch.from_numpy(pixel_index).to(placed.depth.device)
        depth = placed.depth[row].reshape(-1)[index].cpu().numpy().astype(np.float64)
        confidence = products.confidence[slot].reshape(-1)[index].cpu().numpy().astype(np.float64)
        frame_id = products.frame_ids[i]
        pose = placed.world_from_camera[row]
        self.samples[frame_id] = FrameSamples(
            pixel_index, points.cpu().numpy().astype(np.float64), np.ones(take), confidence, depth, pose
        )
        median_depth = float(np.median(depth))
        keyframe = Keyframe(frame_id, float(products.stamps[i]), pose, depth_scale, self._segment, median_depth)
        dropped = self.keyframes.add(keyframe)
        forgotten.extend(dropped)
        if self.loops is not None:
            self.loops.add_keyframe(frame_id, pose, self._segment, residual_ratio, median_depth)
            for old in dropped:
                self.loops.drop_keyframe(old)
        return median_depth


def _scaled_about(world_from_window: np.ndarray, factor: float, pivot: np.ndarray) -> np.ndarray:
    """``world_from_window`` followed by a scaling of the world by ``factor`` about ``pivot`` ``(3,)``."""
    scaling = np.eye(4)
    scaling[:3, :3] *= factor
    scaling[:3, 3] = (1.0 - factor) * pivot
    return scaling @ world_from_window
