# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Loop closure in the world: the pose graph of the keyframes, their map points, and what a verified loop does.

`World.close_loop` hands a `LoopConstraint` here. Before anything moves the loop is checked for plausibility:
within one segment, the correction it implies (how far it would move the query relative to the match) must be
within ``max_drift_ratio`` of the distance travelled between them (plus a floor), ``max_rotation_drift_deg`` and
``max_scale_drift``; a loop to another segment (relocalisation) has no such bound, the offset between segments
being unknown. The loop then enters the pose graph, which is optimised (`vggt_ros.world.pose_graph`); a solver
failure, or a loop the robust solve still finds off, leaves the poses as they were and is counted as rejected.

The chained poses (odometry) never move: the optimised ones are the *corrected* poses, and their offset at the
newest keyframe, `corrected_from_chained`, is the REP 105 map -> odom correction to publish as
parent_frame -> world_frame.

Memory (`KeyframeMap`): each map keyframe keeps at most ``map_points_per_keyframe`` points in its own camera
frame, float32 xyz and uint8 rgb (15 bytes a point: 30 KB at the default 2000), so the map can be re-placed after
an optimisation; the graph node is 2 poses (256 bytes). Together with the compact image the place recognition
keeps per keyframe (at most 64 KB) that stays under 100 KB per keyframe, and the keyframes are bounded by
`WorldConfig.trajectory_recent` + ``trajectory_history``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Optional

import numpy as np

from vggt_ros.geometry import apply_transform
from vggt_ros.world.loop_config import LoopConfig
from vggt_ros.world.loop_constraint import LoopConstraint
from vggt_ros.world.overlap import rotation_angle
from vggt_ros.world.pose_graph import OptimisationResult, PoseGraph, require_gtsam, similarity_scale


@dataclass(frozen=True)
class LoopResult:
    """What `World.close_loop` did.

    accepted; cause: a short key for counting ("" when accepted); reason: a sentence for the log;
    implied_correction: ``(4, 4)`` similarity the loop asked for (see `PoseGraph.implied_correction`; None when
    it could not be computed); joined_segments: the loop joined two segments (relocalisation);
    optimisation: the solve (None when none ran); corrected_from_chained: ``(4, 4)`` after the loop.
    """

    accepted: bool
    cause: str
    reason: str
    implied_correction: Optional[np.ndarray]
    joined_segments: bool
    optimisation: Optional[OptimisationResult]
    corrected_from_chained: np.ndarray


@dataclass
class LoopCounters:
    """Running totals: loops accepted and rejected (by cause, with the last reason), segments joined, the last
    optimisation's time, and accepted loops dropped later."""

    accepted: int = 0
    rejected: int = 0
    rejections: Counter = field(default_factory=Counter)
    last_rejection: str = ""
    segments_joined: int = 0
    last_optimise_ms: float = math.nan
    dropped: int = 0  # accepted loops removed later: the loops after them disagreed with them


class KeyframeMap:
    """Per map keyframe, a decimated point set in its own camera frame (see the module docstring)."""

    def __init__(self, points_per_keyframe: int, seed: int = 0) -> None:
        self.points_per_keyframe = points_per_keyframe
        self._seed = seed
        self._added = 0
        self._frames: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._frames)

    def __contains__(self, frame_id: Hashable) -> bool:
        return frame_id in self._frames

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes + c.nbytes for p, c in self._frames.values())

    def add(self, frame_id: Hashable, world_from_camera: np.ndarray, points: np.ndarray, colors: np.ndarray) -> None:
        """Keep a subsample of a keyframe's finite world ``points`` ``(N, 3)`` (chained world) with ``colors``
        ``(N, 3)`` uint8, moved into its camera frame (``world_from_camera`` rigid ``(4, 4)``)."""
        finite = np.isfinite(points).all(axis=1)
        points, colors = points[finite], colors[finite]
        if len(points) > self.points_per_keyframe:
            rng = np.random.default_rng([self._seed, self._added])
            keep = np.sort(rng.choice(len(points), size=self.points_per_keyframe, replace=False))
            points, colors = points[keep], colors[keep]
        self._added += 1
        rotation, translation = world_from_camera[:3, :3], world_from_camera[:3, 3]
        in_camera = (points.astype(np.float64) - translation) @ rotation
        self._frames[frame_id] = (in_camera.astype(np.float32), np.ascontiguousarray(colors, dtype=np.uint8))

    def points(self, frame_id: Hashable) -> np.ndarray:
        """A keyframe's kept points ``(N, 3)`` float32 in its own camera frame."""
        return self._frames[frame_id][0]

    def remove(self, frame_id: Hashable) -> None:
        self._frames.pop(frame_id, None)

    def rescale(self, factor: float) -> None:
        self._frames = {k: ((p * factor).astype(np.float32), c) for k, (p, c) in self._frames.items()}

    def placed(self, world_from_camera: dict[Hashable, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The kept points of the keyframes in ``world_from_camera``: ``(M, 3)`` float32 and colours ``(M, 3)``
        uint8, each keyframe's points moved by its similarity there."""
        points, colors = [], []
        for frame_id, (local, rgb) in self._frames.items():
            pose = world_from_camera.get(frame_id)
            if pose is None:  # not asked for (another segment)
                continue
            points.append(apply_transform(pose, local.astype(np.float64)).astype(np.float32))
            colors.append(rgb)
        if not points:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
        return np.concatenate(points), np.concatenate(colors)


class LoopClosure:
    """The pose graph, the keyframe map and the loop decisions of one world (see the module docstring)."""

    def __init__(self, config: LoopConfig) -> None:
        require_gtsam()  # a start-up error with the fix, not a failure at the first loop
        self.config = config
        self.graph = PoseGraph(config.graph)
        self.map = KeyframeMap(config.map_points_per_keyframe, config.seed)
        self.counters = LoopCounters()
        self.optimised = False  # a loop has moved the corrected poses away from the chained ones

    def add_keyframe(self, frame_id, chained, segment, residual_ratio, median_depth) -> None:
        self.graph.add(frame_id, chained, segment, residual_ratio, median_depth)

    def drop_keyframe(self, frame_id) -> None:
        self.graph.remove(frame_id)
        self.map.remove(frame_id)

    def rescale(self, factor: float) -> None:
        self.graph.rescale(factor)
        self.map.rescale(factor)
        self.graph.set_metric()

    def corrected(self) -> dict[Hashable, np.ndarray]:
        """frame id -> corrected similarity world-from-camera ``(4, 4)``."""
        return {frame_id: node.corrected for frame_id, node in self.graph.nodes.items()}

    def close(self, constraint: LoopConstraint) -> LoopResult:
        graph = self.graph

        def reject(cause: str, reason: str, implied=None, optimisation=None) -> LoopResult:
            self.counters.rejected += 1
            self.counters.rejections[cause] += 1
            self.counters.last_rejection = reason
            return LoopResult(False, cause, reason, implied, False, optimisation, graph.correction)

        for name in ("query", "match"):
            if getattr(constraint, name) not in graph:
                return reject("unknown_keyframe", f"loop {name} keyframe {getattr(constraint, name)!r} is not kept")
        pose = np.asarray(constraint.match_from_query, dtype=np.float64)
        if pose.shape != (4, 4) or not np.isfinite(pose).all() or np.linalg.det(pose[:3, :3]) <= 0:
            return reject("invalid", "the loop's match_from_query is not a finite (4, 4) similarity")
        implied = graph.implied_correction(constraint)
        query, match = graph.nodes[constraint.query], graph.nodes[constraint.match]
        joins = graph.group(query.segment) != graph.group(match.segment)
        scale = similarity_scale(implied)
        # Between segments the offset is unknown (tracking was lost), so only the scale can be judged: a segment
        # starts at the depth where the world last saw the camera, or in metres.
        implausible = self._implausible_scale(scale) if joins else self._implausible(constraint, implied, scale)
        if implausible:
            return reject("implausible", implausible, implied)
        edge = graph.add_loop(constraint)
        result = graph.optimise(suspect=edge)
        self.counters.last_optimise_ms = result.milliseconds
        if not result.ok:
            graph.remove_loop(edge)
            return reject("solver", f"pose graph not updated: {result.reason}", implied, result)
        if any(e is edge for e in result.rejected_loops):
            return reject("disagrees", "the loop disagrees with the rest of the graph after the solve", implied, result)
        self.optimised = True
        self.counters.accepted += 1
        self.counters.dropped += len(result.rejected_loops)
        if joins:
            self.counters.segments_joined += 1
        reason = (
            f"loop {constraint.query!r} -> {constraint.match!r} (score {constraint.score:.2f}) "
            f"{'joined segments ' + str(match.segment) + ' and ' + str(query.segment) + ', ' if joins else ''}"
            f"correction {np.linalg.norm(implied[:3, 3]):.3f} units, "
            f"{math.degrees(rotation_angle(implied[:3, :3] / scale)):.2f} deg, scale {scale:.4f}; "
            f"optimised {len(graph)} keyframes in {result.milliseconds:.1f} ms"
        )
        if result.rejected_loops:
            dropped = ", ".join(f"{e.query!r} -> {e.match!r}" for e in result.rejected_loops)
            reason += f"; dropped the earlier loop(s) {dropped}: they disagree with this one and the rest of the graph"
        return LoopResult(True, "", reason, implied, joins, result, graph.correction)

    def _implausible(self, constraint: LoopConstraint, implied: np.ndarray, scale: float) -> str:
        """Why the loop's correction (``implied``, of ``scale``) cannot be drift between its keyframes of one
        segment ("" when it can)."""
        c = self.config
        ids = list(self.graph.nodes)
        first, last = sorted((ids.index(constraint.query), ids.index(constraint.match)))
        # Along the query's camera: the keyframes of a rig alternate between cameras a baseline apart, and summing
        # over all of them counted the baseline twice a frame set (a rig standing still "travelled").
        camera = constraint.query[1]
        centres = [self.graph.nodes[f].chained[:3, 3] for f in ids[first : last + 1] if f[1] == camera]
        travelled = float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum()) if len(centres) > 1 else 0.0
        depth = self.graph.nodes[constraint.match].median_depth
        allowed = c.max_drift_ratio * travelled + c.min_drift_depths * depth
        moved = float(np.linalg.norm(implied[:3, 3]))
        turned = math.degrees(rotation_angle(implied[:3, :3] / scale))
        if moved > allowed:
            return f"correction of {moved:.3f} units after {travelled:.3f} travelled (at most {allowed:.3f})"
        if turned > c.max_rotation_drift_deg:
            return f"correction of {turned:.1f} deg (at most {c.max_rotation_drift_deg:g})"
        return self._implausible_scale(scale)

    def _implausible_scale(self, scale: float) -> str:
        """Why the loop's correction of ``scale`` cannot be drift ("" when it can)."""
        if abs(math.log(scale)) > self.config.max_scale_drift:
            return f"correction of scale {scale:.3f} (|log| at most {self.config.max_scale_drift:g})"
        return ""
