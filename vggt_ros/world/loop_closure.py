# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Loop closure in the world: the pose graph of the keyframes, their map points, and what a verified loop does.

`World.close_loop` hands a `LoopConstraint` here. Before anything moves the loop is checked for plausibility:
within one segment, the correction it implies (how far it would move the query relative to the match) must be
within ``max_drift_ratio`` of the distance travelled between them (plus a floor), ``max_rotation_drift_deg`` and
``max_scale_drift``. A loop to another segment (relocalisation) has no such bound on its offset, which tracking
lost; only its scale is judged. It is held instead, until ``join_min_loops`` loops from different frame sets
within a scene depth of travel agree on where the segment goes: each pair puts the newer loop's query keyframe in
one place, within the drift allowed over the distance between their keyframes on either side. A look-alike place
agrees with no later loop and is dropped unused (cause ``unconfirmed``). The loop, or the agreeing loops together,
then enter the pose graph,
which is optimised (`vggt_ros.world.pose_graph`); a solver failure, or a loop the robust solve still finds off,
leaves the poses as they were and is counted as rejected.

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

import dataclasses
import math
from collections import Counter
from typing import Hashable, Optional

import numpy as np

from vggt_ros.geometry import apply_transform, scale_pose
from vggt_ros.window import same_frame_set
from vggt_ros.world.loop_config import MAX_HELD_LOOPS, LoopConfig
from vggt_ros.world.loop_constraint import LoopConstraint
from vggt_ros.world.overlap import rotation_angle
from vggt_ros.world.pose_graph import OptimisationResult, PoseGraph, require_gtsam, similarity_scale


@dataclasses.dataclass(frozen=True)
class LoopResult:
    """What `World.close_loop` did.

    accepted; cause: a short key for counting ("" when accepted); reason: a sentence for the log;
    implied_correction: ``(4, 4)`` similarity the loop asked for (see `PoseGraph.implied_correction`; None when
    it could not be computed); joined_segments: the loop joined two segments (relocalisation); optimisation: the
    solve (None when none ran); corrected_from_chained: ``(4, 4)`` after the loop; held: the loop would join two
    segments and waits for others to agree (not accepted, not rejected); joined_with: the held loops that agreed
    and joined the segments with it (accepted with it); dropped_held: held loops dropped unused meanwhile, each
    with why (counted as rejected, for the log).
    """

    accepted: bool
    cause: str
    reason: str
    implied_correction: Optional[np.ndarray]
    joined_segments: bool
    optimisation: Optional[OptimisationResult]
    corrected_from_chained: np.ndarray
    held: bool = False
    joined_with: tuple[LoopConstraint, ...] = ()
    dropped_held: tuple[str, ...] = ()

    @property
    def join_loops(self) -> int:
        """Loops that joined the segments: the held ones and this one (0 when it joined none)."""
        return len(self.joined_with) + 1 if self.joined_segments else 0


@dataclasses.dataclass
class LoopCounters:
    """Running totals: loops accepted and rejected (by cause, with the last reason), segments joined, the last
    optimisation's time, accepted loops dropped later, and loops held for a join (each counted once: those that
    joined are accepted too, those dropped unused rejected as ``unconfirmed``, or ``disagrees`` where the solve
    found them off)."""

    accepted: int = 0
    rejected: int = 0
    rejections: Counter = dataclasses.field(default_factory=Counter)
    last_rejection: str = ""
    segments_joined: int = 0
    last_optimise_ms: float = math.nan
    dropped: int = 0  # accepted loops removed later: the loops after them disagreed with them
    held: int = 0


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


# Two loops agree on a join only from keyframes at most this many median scene depths of travel apart: further,
# the drift allowed between them (`LoopConfig.max_drift_ratio`) let a look-alike 1.2 depths off agree with a right
# loop 70 frames on (pass N), and a held loop that old is dropped.
JOIN_SEPARATION_DEPTHS = 1.0


class LoopClosure:
    """The pose graph, the keyframe map and the loop decisions of one world (see the module docstring)."""

    def __init__(self, config: LoopConfig, counters: Optional[LoopCounters] = None) -> None:
        """``counters``: running totals to go on from (a world that started over keeps counting, as the loop
        verification's counters do)."""
        require_gtsam()  # a start-up error with the fix, not a failure at the first loop
        self.config = config
        self.graph = PoseGraph(config.graph)
        self.map = KeyframeMap(config.map_points_per_keyframe, config.seed)
        self.counters = LoopCounters() if counters is None else counters
        self.optimised = False  # a loop has moved the corrected poses away from the chained ones
        self._held: list[LoopConstraint] = []  # loops that would join two segments, oldest first (see `close`)
        self._dropped_held: list[str] = []  # why held loops were dropped during the current `close`

    def add_keyframe(self, frame_id, chained, segment, residual_ratio, median_depth) -> None:
        self.graph.add(frame_id, chained, segment, residual_ratio, median_depth)

    def drop_keyframe(self, frame_id) -> None:
        self.graph.remove(frame_id)
        self.map.remove(frame_id)

    def rescale(self, factor: float) -> None:
        self.graph.rescale(factor)
        self.map.rescale(factor)
        self.graph.set_metric()
        self._held = [
            dataclasses.replace(held, match_from_query=scale_pose(held.match_from_query, factor)) for held in self._held
        ]

    @property
    def held(self) -> tuple[LoopConstraint, ...]:
        """The loops held for a join now, oldest first (see `close`)."""
        return tuple(self._held)

    def corrected(self) -> dict[Hashable, np.ndarray]:
        """frame id -> corrected similarity world-from-camera ``(4, 4)``."""
        return {frame_id: node.corrected for frame_id, node in self.graph.nodes.items()}

    def close(self, constraint: LoopConstraint) -> LoopResult:
        """Judge a verified loop and, where it stands, optimise with it (see the module docstring)."""
        self._dropped_held = []
        result = self._close(constraint)
        return dataclasses.replace(result, dropped_held=tuple(self._dropped_held)) if self._dropped_held else result

    def _close(self, constraint: LoopConstraint) -> LoopResult:
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
        constraints = [constraint]
        if joins:
            self._drop_stale_held(constraint.query)
            constraints = [*self._agreeing_held(constraint), constraint]
            if len(constraints) < self.config.join_min_loops:
                return self._hold(constraint, implied, agreeing=len(constraints) - 1)
        edges = [graph.add_loop(c) for c in constraints]
        result = graph.optimise(suspect=edges[-1], together=tuple(edges) if len(edges) > 1 else ())
        self.counters.last_optimise_ms = result.milliseconds
        if not result.ok:
            for edge in edges:
                graph.remove_loop(edge)
            off = [c for c, e in zip(constraints, edges) if any(e is r for r in result.rejected_loops)]
            if off:  # the solve found some of the loops that agreed on a join off: those go, the others wait on
                held_off = [c for c in off if c is not constraint]
                self._forget_held(held_off, "the solve found it off the loops that agreed with it", "disagrees")
                if not any(c is constraint for c in off):
                    return self._hold(constraint, implied, agreeing=len(constraints) - 1 - len(off))
                reason = f"the loops that agreed to join the segments: {result.reason}"
                return reject("disagrees", reason, implied, result)
            return reject("solver", f"pose graph not updated: {result.reason}", implied, result)
        if any(e is edges[-1] for e in result.rejected_loops):
            return reject("disagrees", "the loop disagrees with the rest of the graph after the solve", implied, result)
        self._held = [held for held in self._held if not any(held is c for c in constraints)]
        self.optimised = True
        self.counters.accepted += len(constraints)
        self.counters.dropped += len(result.rejected_loops)
        if joins:
            self.counters.segments_joined += 1
            self._drop_stale_held()
        reason = (
            f"loop {constraint.query!r} -> {constraint.match!r} (score {constraint.score:.2f}) "
            f"{self._joined_text(constraints) if joins else ''}"
            f"correction {np.linalg.norm(implied[:3, 3]):.3f} units, "
            f"{math.degrees(rotation_angle(implied[:3, :3] / scale)):.2f} deg, scale {scale:.4f}; "
            f"optimised {len(graph)} keyframes in {result.milliseconds:.1f} ms"
        )
        if result.rejected_loops:
            dropped = ", ".join(f"{e.query!r} -> {e.match!r}" for e in result.rejected_loops)
            reason += f"; dropped the earlier loop(s) {dropped}: they disagree with this one and the rest of the graph"
        joined_with = tuple(constraints[:-1])
        return LoopResult(True, "", reason, implied, joins, result, graph.correction, joined_with=joined_with)

    # --- joins of segments: held until loops agree -------------------------------------------------------------

    def _groups(self, constraint: LoopConstraint) -> tuple[int, int]:
        """The groups of segments (`PoseGraph.group`) of the loop's query and match keyframes (both kept)."""
        nodes, group = self.graph.nodes, self.graph.group
        return group(nodes[constraint.query].segment), group(nodes[constraint.match].segment)

    def _agreeing_held(self, constraint: LoopConstraint) -> list[LoopConstraint]:
        """Held loops between the same two groups of segments, one per frame set other than ``constraint``'s, that
        agree with it and with each other (`_agree`), oldest first: a look-alike that agrees with the new loop must
        not take the right ones that disagree with it into the solve, which would then reject them all."""
        agreeing: list[LoopConstraint] = []
        for held in reversed(self._held):
            if self._groups(held) != self._groups(constraint):
                continue  # another join
            if any(self._same_frame_set(held.query, other.query) for other in (constraint, *agreeing)):
                continue  # a frame set already counted: a rig's cameras see one place at one instant
            if all(self._agree(held, other) for other in (constraint, *agreeing)):
                agreeing.append(held)
        return agreeing[::-1]

    def _same_frame_set(self, a: Hashable, b: Hashable) -> bool:
        """Whether keyframes ``a`` and ``b`` are two cameras' images of one frame set: in the graph, whose keyframes
        come set by set, camera 0 first, every keyframe between them is a later camera of the one before. Their
        stamps are each camera's own, which an unsynchronised rig sets up to `slop_s` apart."""
        span = self._span(a, b)
        return all(same_frame_set(earlier, later) for earlier, later in zip(span, span[1:]))

    def _agree(self, older: LoopConstraint, newer: LoopConstraint) -> bool:
        """Whether two loops put the ``newer`` one's query keyframe in the same place, within the drift allowed (as
        `_implausible`: translation, rotation, scale) between the two query keyframes (along the chained poses)
        and between the two match keyframes (the straight distance between their corrected poses: the older map,
        its loops closed, holds together)."""
        graph, c = self.graph, self.config
        keyframe = graph.nodes[newer.query].corrected
        placed = graph.join_offset(newer) @ keyframe
        elsewhere = graph.join_offset(older) @ keyframe
        matches = [graph.nodes[loop.match].corrected[:3, 3] for loop in (older, newer)]
        travelled = self._travelled(older.query, newer.query) + float(np.linalg.norm(matches[1] - matches[0]))
        allowed = c.max_drift_ratio * travelled + c.min_drift_depths * graph.nodes[newer.match].median_depth
        placed_scale, elsewhere_scale = similarity_scale(placed), similarity_scale(elsewhere)
        scale = elsewhere_scale / placed_scale
        turned = math.degrees(rotation_angle((placed[:3, :3] / placed_scale).T @ (elsewhere[:3, :3] / elsewhere_scale)))
        moved = float(np.linalg.norm(elsewhere[:3, 3] - placed[:3, 3]))
        return moved <= allowed and turned <= c.max_rotation_drift_deg and not self._implausible_scale(scale)

    def _hold(self, constraint: LoopConstraint, implied: np.ndarray, agreeing: int) -> LoopResult:
        """Keep a loop that would join two segments until enough others agree (``agreeing`` do so far; see the
        module docstring)."""
        self._held.append(constraint)
        if len(self._held) > MAX_HELD_LOOPS:
            self._forget_held(self._held[:1], "more loops were held since")
        self.counters.held += 1
        query, match = self.graph.nodes[constraint.query], self.graph.nodes[constraint.match]
        reason = (
            f"loop {constraint.query!r} -> {constraint.match!r} (score {constraint.score:.2f}) would join segments "
            f"{match.segment} and {query.segment}, whose offset tracking lost: held until "
            f"{self.config.join_min_loops - 1 - agreeing} more loop(s) from other frame sets agree where it puts them"
        )
        return LoopResult(False, "held", reason, implied, False, None, self.graph.correction, held=True)

    def _drop_stale_held(self, query: Optional[Hashable] = None) -> None:
        """Forget the held loops that can no longer join anything, or no longer safely: a keyframe of theirs was
        dropped, their segments joined without them, their query lies in another group than the newest keyframe's
        (the track was lost again: no later loop starts there), or the camera went on more than
        ``JOIN_SEPARATION_DEPTHS`` median depths from them to the keyframe ``query`` of the loop at hand (the drift
        allowed between two loops that far apart lets a look-alike agree with a right loop)."""
        graph = self.graph
        newest = next(reversed(graph.nodes))
        stale = {}
        for held in self._held:
            if held.query not in graph or held.match not in graph:
                stale[id(held)] = "its keyframes are no longer kept"
                continue
            query_group, match_group = self._groups(held)
            depth = graph.nodes[held.match].median_depth
            if query_group == match_group:
                stale[id(held)] = "its segments joined without it"
            elif query_group != graph.group(graph.nodes[newest].segment):
                stale[id(held)] = "the track was lost again since"
            elif query is not None and self._travelled(held.query, query) > JOIN_SEPARATION_DEPTHS * depth:
                stale[id(held)] = f"no loop agreed with it within {JOIN_SEPARATION_DEPTHS:g} scene depths of travel"
        for held in [held for held in self._held if id(held) in stale]:
            self._forget_held([held], stale[id(held)])

    def _forget_held(self, loops: list[LoopConstraint], why: str, cause: str = "unconfirmed") -> None:
        """Drop held ``loops`` unused, counted as rejected for ``cause``; ``why`` goes to the last rejection and to
        the reason of the loop being closed (`dropped_held`)."""
        if not loops:
            return
        self._held = [held for held in self._held if not any(held is loop for loop in loops)]
        self.counters.rejected += len(loops)
        self.counters.rejections[cause] += len(loops)
        named = ", ".join(f"{loop.query!r} -> {loop.match!r}" for loop in loops)
        self.counters.last_rejection = f"held loop(s) {named} dropped unused: {why}"
        self._dropped_held.append(self.counters.last_rejection)

    def _joined_text(self, constraints: list[LoopConstraint]) -> str:
        nodes = self.graph.nodes
        segments = f"joined segments {nodes[constraints[-1].match].segment} and {nodes[constraints[-1].query].segment}"
        if len(constraints) == 1:
            return segments + ", "
        held = ", ".join(f"{c.query!r} -> {c.match!r}" for c in constraints[:-1])
        return f"{segments} with the held loop(s) {held}, which agree on where it puts them; "

    def _travelled(self, a: Hashable, b: Hashable) -> float:
        """How far keyframe ``a``'s camera travelled between keyframes ``a`` and ``b``: along the graph's keyframes of
        that camera between them (chained poses). Along one camera: the keyframes of a rig alternate between
        cameras a baseline apart, and summing over all of them counted the baseline twice a frame set (a rig
        standing still "travelled")."""
        camera = a[1]
        centres = [self.graph.nodes[f].chained[:3, 3] for f in self._span(a, b) if f[1] == camera]
        return float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum()) if len(centres) > 1 else 0.0

    def _span(self, a: Hashable, b: Hashable) -> list:
        """The graph's keyframes from ``a`` to ``b`` (or ``b`` to ``a``), both included, in the graph's order."""
        ids = list(self.graph.nodes)
        first, last = sorted((ids.index(a), ids.index(b)))
        return ids[first : last + 1]

    def _implausible(self, constraint: LoopConstraint, implied: np.ndarray, scale: float) -> str:
        """Why the loop's correction (``implied``, of ``scale``) cannot be drift between its keyframes of one
        segment ("" when it can)."""
        c = self.config
        travelled = self._travelled(constraint.query, constraint.match)
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
