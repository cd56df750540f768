# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The keyframe pose graph: Sim(3) nodes, chain edges, robust loop edges, solved with GTSAM.

Nodes are keyframes. Each holds its *chained* pose (the rigid world-from-camera the window chaining gave it,
never moved: odometry) and its *corrected* pose, a similarity world-from-camera whose scale is the graph's local
unit there (corrected world units per chained world unit). Until a loop is closed the two are equal.

Edges:
- chain edges between consecutive keyframes of one segment: the relative pose of their chained poses, with
  noise proportional to the alignment residual of the window that added the later one
  (`PoseGraphConfig.chain_*`);
- loop edges from verified loops (`vggt_ros.world.loop_constraint.LoopConstraint`), each under a robust kernel
  (Cauchy), so one wrong loop that passed verification bends a graph that other loops hold little (alone, nothing
  contradicts it); at most ``max_loop_edges`` are
  kept, the one in the densest stretch going first, so a long patrol's solve stays the same size;
- one prior anchoring the oldest segment of every connected group of segments at its current corrected pose.
  A loop between two segments joins their groups (relocalisation): the newer segment's anchor goes.

Once the world is metric the scale is fixed where it was measured. Each node records whether it was added in the
metric world (`Node.metric`). Between metric keyframes the graph is SE(3): the scale component of their chain and
loop edges gets a tiny sigma, a loop between two of them is projected to scale 1, and every metric keyframe has a
scale prior at 1 (its chained pose is in metres, so its corrected one must be too). The keyframes added before the
world turned metric keep the free scale of their chain edges, and a loop within their segment that reaches one
keeps the scale it measured: the unit-less stretch drifted in scale, and a loop from the metric world is what can
correct that drift. A loop between two segments of a metric world is SE(3) whatever its ends (see `_metric_edge`).
When a group of segments holds metric keyframes, their priors fix its scale and its anchor fixes only the
rotation and position (see `_anchor_sigmas`).

Solver: batch Levenberg-Marquardt, rebuilt from the nodes and edges at each optimisation, with the loop kernels
narrowed in stages (graduated non-convexity: a right loop after a long drift starts many sigmas off, and a narrow
kernel from the start would switch it off). Loops are rare (at most one per new keyframe) while nodes come and go
with the keyframe store's decimation and segments join: a fresh batch problem handles both without the
bookkeeping iSAM2 would need to remove variables. One LM iteration on 1000 Sim(3) keyframes costs about 30 ms on
the shared 2-core dev machine, so graphs above ``max_solve_nodes`` are solved on a subset (the loops' ends, the
segments' ends, evenly spaced keyframes; composed chain edges carry the skipped edges' variances) and the other
keyframes follow their solved neighbours' corrections: a 1000-keyframe ring with one loop then optimises in
about 45 ms instead of 150-350 ms, every keyframe within 3 % of the drift of the full solve (`bench/loop_closure.py`,
`test/core/test_pose_graph.py`).

`gtsam` is imported only when an optimisation runs (`require_gtsam` checks it up front, for loop closure enabled).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Hashable, Optional

import numpy as np

from vggt_ros.geometry import scale_pose
from vggt_ros.world.loop_constraint import LoopConstraint


def require_gtsam():
    """The `gtsam` module, or an ImportError that says how to install it (loop closure needs it)."""
    try:
        import gtsam
    except ImportError as error:
        raise ImportError(
            "loop closure needs GTSAM: install it with `pip install gtsam` (on Jetson/ROS: the ros-<distro>-gtsam "
            "package), or turn loop closure off (parameter loop_closure: false, or --no-loop-closure)"
        ) from error
    return gtsam


@dataclass(frozen=True)
class PoseGraphConfig:
    """Noise and solver settings of the pose graph (sigmas are standard deviations of the edge errors).

    Attributes:
        chain_rotation_sigma_rad: rotation sigma of a chain edge per unit of residual ratio (default 0.5: a
            window aligned with residual 1 % of the scene depth gives 0.005 rad).
        chain_translation_sigma: translation sigma of a chain edge per unit of residual ratio, in units of the
            keyframe's median depth (default 1.0: residual 1 % -> 1 % of the depth).
        chain_scale_sigma: log-scale sigma of a chain edge per unit of residual ratio (default 0.5).
        min_residual_ratio: floor of the residual ratio weighting an edge (first windows of a segment have none;
            default 0.005).
        loop_sigma_factor: a loop edge's sigmas are the chain's for its residual ratio times this (default 1.0).
        cauchy_k: Cauchy kernel width on loop edges, in sigmas (default 3). Its cost grows only logarithmically
            beyond k, so a loop stays on only while the drift it corrects costs the chain less: the chain sigmas
            must not understate the drift between keyframes (see `chain_*`).
        anchor_sigma: sigma of the anchor prior of each group of segments (tiny: a gauge fix, default 1e-6).
        metric_scale_sigma: log-scale sigma of the edges between metric keyframes and of their scale priors
            (default 1e-6: SE(3)).
        max_iterations: Levenberg-Marquardt iterations (default 100).
        relative_error_tol: LM stops when the error improves by less than this fraction (default 1e-4).
        max_loop_error_sigma: after the solve, a loop edge whose error is still above this many sigmas disagrees
            with the rest of the graph (the kernel switched it off): it is removed and the graph solved again
            without it (default 5).
        max_solve_nodes: larger graphs are solved on this many keyframes (the loops' ends, each segment's ends and
            evenly spaced ones, chain edges between them carrying the skipped edges' variance) and the others
            follow their neighbours' corrections (default 150: a 1000-keyframe graph then solves in tens of ms).
        max_loop_edges: loop edges kept after a solve (default 50). A route driven again and again adds a loop
            between new keyframes on every pass, and the solve keeps both ends of every loop, so without a cap its
            cost grows with the run. Above it, the edge whose two nearest neighbours between the same segments (by
            the keyframe positions of both ends) are closest together goes, ties to the oldest: the measurements
            of close edges overlap, and every stretch of the route keeps one. An edge that alone joins two segments
            is never dropped.
    """

    chain_rotation_sigma_rad: float = 0.5
    chain_translation_sigma: float = 1.0
    chain_scale_sigma: float = 0.5
    min_residual_ratio: float = 0.005
    loop_sigma_factor: float = 1.0
    cauchy_k: float = 3.0
    anchor_sigma: float = 1e-6
    metric_scale_sigma: float = 1e-6
    max_iterations: int = 100
    relative_error_tol: float = 1e-4
    max_loop_error_sigma: float = 5.0
    max_solve_nodes: int = 150
    max_loop_edges: int = 50

    def __post_init__(self) -> None:
        positive = (
            "chain_rotation_sigma_rad",
            "chain_translation_sigma",
            "chain_scale_sigma",
            "min_residual_ratio",
            "loop_sigma_factor",
            "cauchy_k",
            "anchor_sigma",
            "metric_scale_sigma",
            "relative_error_tol",
            "max_loop_error_sigma",
        )
        for name in positive:
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                raise ValueError(f"PoseGraphConfig.{name} must be a positive number, got {value!r}")
        for name, least in (("max_iterations", 1), ("max_solve_nodes", 16), ("max_loop_edges", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"PoseGraphConfig.{name} must be an int >= {least}, got {value!r}")


@dataclass
class Node:
    """A keyframe in the graph: ``chained`` rigid ``(4, 4)``, ``corrected`` similarity ``(4, 4)``, its segment, the
    residual ratio of the window that added it, its median depth (chained world units), whether it was added in
    the metric world (its chained pose in metres, not rescaled from the unit-less world), and ``dropped_variance``
    ``(7,)``: the variance of the chain edges of the keyframes dropped between it and the kept keyframe before it,
    which its own chain edge now spans."""

    chained: np.ndarray
    corrected: np.ndarray
    segment: int
    residual_ratio: float
    median_depth: float
    metric: bool
    dropped_variance: np.ndarray = field(default_factory=lambda: np.zeros(7))


@dataclass(frozen=True)
class LoopEdge:
    """A loop edge: ``match_from_query`` ``(4, 4)`` similarity between two nodes, its residual ratio and score."""

    query: Hashable
    match: Hashable
    match_from_query: np.ndarray
    residual_ratio: float
    score: float


@dataclass(frozen=True)
class OptimisationResult:
    """Outcome of `PoseGraph.optimise`.

    ok: the new poses were taken; reason: why not ("" when ok); iterations; milliseconds (graph building
    and solving); error_before / error_after: the total robust error; rejected_loops: loop edges removed because
    they still disagreed with the graph after the solve (their poses were not taken).
    """

    ok: bool
    reason: str
    iterations: int
    milliseconds: float
    error_before: float
    error_after: float
    rejected_loops: tuple[LoopEdge, ...] = ()


class PoseGraph:
    """Keyframe nodes, chain and loop edges, and their optimisation (see the module docstring). One thread."""

    def __init__(self, config: PoseGraphConfig = PoseGraphConfig()) -> None:
        self.config = config
        self.nodes: OrderedDict[Hashable, Node] = OrderedDict()
        self.loops: list[LoopEdge] = []
        self.metric = False
        self._correction = np.eye(4)  # corrected_from_chained of the newest keyframes (see `correction`)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, frame_id: Hashable) -> bool:
        return frame_id in self.nodes

    @property
    def correction(self) -> np.ndarray:
        """``(4, 4)`` similarity corrected_from_chained at the newest keyframe: applied to the chained world it gives
        the corrected one there (REP 105's map -> odom). Identity until a loop is closed."""
        return self._correction.copy()

    def group(self, segment: int) -> int:
        """The oldest segment joined with ``segment`` through loops (itself when it was never joined)."""
        parent: dict[int, int] = {}

        def root(k: int) -> int:
            while parent.get(k, k) != k:
                k = parent[k]
            return k

        for edge in self.loops:
            a, b = sorted((root(self.nodes[edge.query].segment), root(self.nodes[edge.match].segment)))
            if a != b:
                parent[b] = a
        return root(segment)

    def add(self, frame_id: Hashable, chained: np.ndarray, segment: int, residual_ratio: float, median_depth: float):
        """Add a keyframe with its chained pose; its corrected pose follows the current correction."""
        corrected = self._correction @ chained
        self.nodes[frame_id] = Node(
            np.array(chained, dtype=np.float64), corrected, segment, residual_ratio, median_depth, self.metric
        )

    def remove(self, frame_id: Hashable) -> None:
        """Drop a keyframe (the keyframe store decimated it). Its loop edges move to its neighbour along the chain
        (the next kept keyframe of its segment, else the previous one) through their chained relative pose; chain
        edges always join the kept neighbours, and the joining edge carries the variance of both edges it replaces
        (a decimated history kept one edge's, so it grew too stiff for the drift it had, and the solve switched
        right loops off)."""
        if frame_id not in self.nodes:
            return
        ids = list(self.nodes)
        position = ids.index(frame_id)
        node = self.nodes.pop(frame_id)
        later = [f for f in ids[position + 1 :] if self.nodes[f].segment == node.segment]
        earlier = [f for f in ids[:position] if self.nodes[f].segment == node.segment]
        if later and earlier:
            metric = _chain_edge_is_metric(self.nodes[earlier[-1]].metric, node.metric)
            step = self._sigmas(node.residual_ratio, node.median_depth, metric) ** 2 + node.dropped_variance
            self.nodes[later[0]].dropped_variance = self.nodes[later[0]].dropped_variance + step
        substitute = later[0] if later else (earlier[-1] if earlier else None)
        moved = []
        for edge in self.loops:
            if frame_id not in (edge.query, edge.match):
                moved.append(edge)
            elif substitute is not None:  # else its segment is gone, and so is the loop
                neighbour_from_removed = _inverse(self.nodes[substitute].chained) @ node.chained
                if edge.query == frame_id:
                    pose = self._measured(
                        substitute, edge.match, edge.match_from_query @ _inverse(neighbour_from_removed)
                    )
                    moved.append(_replace_edge(edge, query=substitute, pose=pose))
                else:
                    pose = self._measured(edge.query, substitute, neighbour_from_removed @ edge.match_from_query)
                    moved.append(_replace_edge(edge, match=substitute, pose=pose))
        # Two loops between the same keyframes say the same thing: keep the newer one, so the edges (and the
        # solve, which keeps every loop's ends) stay bounded by the kept keyframes however long the run.
        newest: dict[tuple, LoopEdge] = {}
        for edge in moved:
            newest[(edge.query, edge.match)] = edge
        self.loops = list(newest.values())

    def rescale(self, factor: float) -> None:
        """The chained world's unit changed by ``factor`` (it became metric): positions and loop translations follow."""
        for node in self.nodes.values():
            node.chained = scale_pose(node.chained, factor)
            node.corrected = scale_pose(node.corrected, factor)
            node.median_depth *= factor
            node.dropped_variance = node.dropped_variance * np.array([1.0] * 3 + [factor**2] * 3 + [1.0])
        self.loops = [_replace_edge(e, pose=scale_pose(e.match_from_query, factor)) for e in self.loops]
        self._correction = scale_pose(self._correction, factor)

    def set_metric(self) -> None:
        """The keyframes added from now on are metric: their scale is fixed (see the module docstring). The nodes
        and loop edges already recorded keep their free scale."""
        self.metric = True

    def add_loop(self, constraint: LoopConstraint) -> LoopEdge:
        """Record a verified loop (both keyframes must be nodes). `optimise` then uses it."""
        for frame_id in (constraint.query, constraint.match):
            if frame_id not in self.nodes:
                raise KeyError(f"loop keyframe {frame_id!r} is not in the pose graph")
        pose = self._measured(constraint.query, constraint.match, np.array(constraint.match_from_query, np.float64))
        edge = LoopEdge(
            constraint.query, constraint.match, pose, float(constraint.residual_ratio), float(constraint.score)
        )
        self.loops.append(edge)
        return edge

    def remove_loop(self, edge: LoopEdge) -> None:
        """Forget a loop edge (its optimisation failed); the segments it joined part again."""
        self.loops = [e for e in self.loops if e is not edge]

    def implied_correction(self, constraint: LoopConstraint) -> np.ndarray:
        """``(4, 4)`` similarity by which the loop would move the query relative to the match in the current graph:
        (match_from_query measured)^-1 @ (match_from_query now); identity when the graph already agrees."""
        query, match = self.nodes[constraint.query], self.nodes[constraint.match]
        now = _inverse(match.corrected) @ query.corrected
        return _inverse(np.asarray(constraint.match_from_query, dtype=np.float64)) @ now

    def join_offset(self, constraint: LoopConstraint) -> np.ndarray:
        """``(4, 4)`` similarity where the loop puts the query's segments: from the query side's corrected frame into
        the match side's, (match corrected) @ match_from_query @ (query corrected)^-1 (identity when the graph
        already agrees)."""
        query, match = self.nodes[constraint.query], self.nodes[constraint.match]
        pose = np.asarray(constraint.match_from_query, dtype=np.float64)
        return match.corrected @ pose @ _inverse(query.corrected)

    def optimise(self, suspect: Optional[LoopEdge] = None, together: tuple[LoopEdge, ...] = ()) -> OptimisationResult:
        """Solve the graph; on success the corrected poses and the correction are updated. Loop edges still off by
        more than ``max_loop_error_sigma`` after a solve are removed, the worst first (one wrong loop pulls its
        neighbours' errors up with it), and the graph solved again without them. Where loops disagree once
        ``suspect``, the loop just added, is in, two answers are weighed: the graph without it, and the graph without
        the worst of the loops. The one that keeps more loops wins, and between equals the one whose solve leaves
        the smaller error. A new wrong loop after verified ones is the first (removing a verified loop instead
        accepted it, worse than no loop closure), and a right loop after a wrong first one the second (removing the
        new loop that fitted kept the wrong one for a lap and rejected every right loop meanwhile). ``together``: loops
        that stand or fall together (those that agreed to join two segments): when the solve removes one of them,
        the others would join the segments alone, so nothing is taken. A solver error, a non-finite answer or
        non-convergence keeps the previous poses and loop edges and says why (nothing is raised)."""
        start = time.perf_counter()
        ids = list(self.nodes)
        loops_before = list(self.loops)
        rejected: list[LoopEdge] = []
        result = self._solve_removing_disagreements(ids, loops_before, rejected, start)
        if suspect is not None and any(e is suspect for e in loops_before) and rejected:
            without_suspect: list[LoopEdge] = [suspect]
            others = [e for e in loops_before if e is not suspect]
            alternative = self._solve_removing_disagreements(ids, others, without_suspect, start)
            if not isinstance(alternative, OptimisationResult) and (
                isinstance(result, OptimisationResult)
                or (len(without_suspect), alternative[1]) < (len(rejected), result[1])
            ):
                result, rejected = alternative, without_suspect
        if isinstance(result, OptimisationResult):
            self.loops = loops_before
            return result
        if any(e is r for e in together for r in rejected):
            self.loops = loops_before
            reason = "the solve removed some of the loops that agreed on the join, so the join is not taken"
            return OptimisationResult(False, reason, result[2], _ms(start), result[0], result[1], tuple(rejected))
        self.loops = [e for e in loops_before if not any(e is r for r in rejected)]
        error_before, error_after, iterations, values = result
        for frame_id, value in zip(ids, values):
            self.nodes[frame_id].corrected = value
        newest = self.nodes[ids[-1]]
        self._correction = newest.corrected @ _inverse(newest.chained)
        self._thin_loops()
        return OptimisationResult(True, "", iterations, _ms(start), error_before, error_after, tuple(rejected))

    def _solve_removing_disagreements(
        self, ids: list, loops: list[LoopEdge], rejected: list[LoopEdge], start: float
    ) -> OptimisationResult | tuple[float, float, int, list[np.ndarray]]:
        """Solve with ``loops``, removing disagreeing ones, the worst first, into ``rejected``; (error before,
        error after, iterations, poses) or the failed `OptimisationResult`."""
        iterations = 0
        loops = list(loops)
        while True:
            try:
                solved_ids = self._reduced(ids)
                error_before, error_after, steps, values, converged = self._solve(solved_ids, loops)
                if len(solved_ids) < len(ids):
                    values = self._interpolated(ids, solved_ids, values)
            except (RuntimeError, ValueError, np.linalg.LinAlgError) as error:
                return OptimisationResult(False, f"solver failed: {error}", iterations, _ms(start), math.nan, math.nan)
            iterations += steps
            if not converged:
                reason = f"not converged after {steps} iterations (error {error_before:.3g} -> {error_after:.3g})"
                return OptimisationResult(False, reason, iterations, _ms(start), error_before, error_after)
            if not all(np.isfinite(v).all() for v in values):
                reason = "the solver returned non-finite poses"
                return OptimisationResult(False, reason, iterations, _ms(start), error_before, error_after)
            solved = dict(zip(ids, values))
            errors = [(self._loop_error_sigma(e, solved), k) for k, e in enumerate(loops)]
            worst, k = max(errors, default=(0.0, -1))
            if worst <= self.config.max_loop_error_sigma:
                return error_before, error_after, iterations, values
            rejected.append(loops.pop(k))

    def _thin_loops(self) -> None:
        """Drop loop edges above ``max_loop_edges`` (see there), after a solve: the poses keep what they said."""
        excess = len(self.loops) - self.config.max_loop_edges
        if excess <= 0:
            return
        position = {frame_id: k for k, frame_id in enumerate(self.nodes)}
        ends = np.array([(position[e.query], position[e.match]) for e in self.loops], dtype=np.float64)  # (E, 2)
        segments = [tuple(sorted((self.nodes[e.query].segment, self.nodes[e.match].segment))) for e in self.loops]
        # Distance between edges i and j: how far apart their ends lie along the keyframes, either way round.
        straight = np.abs(ends[:, None, 0] - ends[None, :, 0]) + np.abs(ends[:, None, 1] - ends[None, :, 1])
        crossed = np.abs(ends[:, None, 0] - ends[None, :, 1]) + np.abs(ends[:, None, 1] - ends[None, :, 0])
        distance = np.minimum(straight, crossed)
        same = np.array([[a == b for b in segments] for a in segments])
        distance[~same] = np.inf
        np.fill_diagonal(distance, np.inf)
        order = np.arange(len(self.loops))  # oldest first
        dropped = set()
        for _ in range(excess):
            nearest = np.sort(distance, axis=1)
            # The edge whose two nearest neighbours are closest together: dropping it leaves the smallest gap (an
            # edge at either end of a stretch has one neighbour and stays); ties go to the oldest.
            gap = nearest[:, 0] + (nearest[:, 1] if len(order) > 1 else np.inf)
            if not np.isfinite(gap).any():
                gap = nearest[:, 0]  # only lone pairs left: thin them by their one neighbour
            densest = int(np.lexsort((order, gap))[0])
            if not np.isfinite(distance[densest]).any():
                break  # every edge left is the only one between its segments
            dropped.add(densest)
            distance[densest, :] = np.inf
            distance[:, densest] = np.inf
        self.loops = [edge for k, edge in enumerate(self.loops) if k not in dropped]

    # --- the GTSAM problem -------------------------------------------------------------------------------------

    def _metric_edge(self, a: Hashable, b: Hashable) -> bool:
        """Whether an edge between keyframes ``a`` and ``b`` has its scale fixed: both were added in metres, or, in a
        metric world, they lie in different segments. A segment started after tracking was lost has a scale of its
        own (one window's metric observation at best, the depth where it restarted at worst), yet its keyframes
        count as metric: a loop into another segment's unit-less keyframes would measure that scale's error and
        disagree with the metric keyframes (the solve rejected most such loops), or, joining the segments, rescale
        the old one by whatever scale it measured."""
        first, second = self.nodes[a], self.nodes[b]
        return (first.metric and second.metric) or (self.metric and first.segment != second.segment)

    def _measured(self, query: Hashable, match: Hashable, match_from_query: np.ndarray) -> np.ndarray:
        """A loop edge's measurement between ``query`` and ``match``: without its scale between metric keyframes
        (a loop moved there from a unit-less keyframe by `remove` too), else as measured."""
        return _rigid(match_from_query) if self._metric_edge(query, match) else match_from_query

    def _sigmas(self, residual_ratio, median_depth, metric, factor: float = 1.0) -> np.ndarray:
        """Edge sigmas ``(..., 7)`` in GTSAM's Similarity3 tangent order: rotation (3), translation (3), log-scale
        (1), for residual ratios, median depths and whether the edge joins metric keyframes (scalars or ``(N,)``)."""
        c = self.config
        ratio = np.asarray(residual_ratio, dtype=np.float64)
        ratio = np.where(np.isfinite(ratio), np.maximum(ratio, c.min_residual_ratio), c.min_residual_ratio) * factor
        rotation = c.chain_rotation_sigma_rad * ratio
        translation = c.chain_translation_sigma * ratio * np.asarray(median_depth, dtype=np.float64)
        scale = np.where(metric, c.metric_scale_sigma, c.chain_scale_sigma * ratio)
        return np.stack([rotation] * 3 + [translation] * 3 + [scale], axis=-1)

    def _loop_sigmas(self, edge: LoopEdge) -> np.ndarray:
        """Sigmas ``(7,)`` of a loop edge (see `_sigmas`)."""
        return self._sigmas(
            edge.residual_ratio,
            self.nodes[edge.match].median_depth,
            self._metric_edge(edge.query, edge.match),
            self.config.loop_sigma_factor,
        )

    def _anchor_sigmas(self, node: Node, group_is_metric: bool) -> np.ndarray:
        """Sigmas ``(7,)`` of the prior that anchors a group of segments at its oldest keyframe ``node``: a gauge
        fix. When the group holds metric keyframes but ``node`` came before the world turned metric, the metric
        keyframes' scale priors fix the group's scale, and the anchor leaves its own scale free (infinite sigma),
        so that a loop can correct the unit-less stretch's scale drift there too."""
        sigmas = np.full(7, self.config.anchor_sigma)
        if group_is_metric and not node.metric:
            sigmas[6] = math.inf
        return sigmas

    def _reduced(self, ids: list) -> list:
        """The keyframes solved for (all up to ``max_solve_nodes``): every loop's two, each segment's first and last,
        the two either side of where its keyframes turn metric (so that no metric keyframe takes part of an
        interpolated scale), and evenly spaced ones between; the others follow by `_interpolated`."""
        if len(ids) <= self.config.max_solve_nodes:
            return ids
        stride = math.ceil(len(ids) / max(8, self.config.max_solve_nodes - 2 * len(self.loops)))
        keep = {f for edge in self.loops for f in (edge.query, edge.match)}
        last: dict[int, Hashable] = {}
        for k, frame_id in enumerate(ids):
            node = self.nodes[frame_id]
            previous = last.get(node.segment)
            if previous is None or k % stride == 0:
                keep.add(frame_id)
            if previous is not None and node.metric and not self.nodes[previous].metric:
                keep.update((previous, frame_id))
            last[node.segment] = frame_id
        keep.update(last.values())
        return [f for f in ids if f in keep]

    def _chain_variance(self, ids: list) -> np.ndarray:
        """``(N, 7)`` per keyframe of ``ids``: the sum of the chain edges' variances from its segment's first
        keyframe (the variance of a chain of edges between two keyframes is the difference)."""
        nodes = [self.nodes[f] for f in ids]
        segments = np.array([n.segment for n in nodes])
        ratios = np.array([n.residual_ratio for n in nodes], dtype=np.float64)
        depths = np.array([n.median_depth for n in nodes], dtype=np.float64)
        metric = np.array([n.metric for n in nodes], dtype=bool)
        dropped = np.stack([n.dropped_variance for n in nodes]) if nodes else np.zeros((0, 7))
        cumulative = np.zeros((len(nodes), 7))
        for segment in np.unique(segments):
            positions = np.flatnonzero(segments == segment)
            metric_step = metric[positions]
            metric_step[1:] = _chain_edge_is_metric(metric[positions[:-1]], metric[positions[1:]])
            steps = self._sigmas(ratios[positions], depths[positions], metric_step) ** 2 + dropped[positions]
            steps[0] = 0.0  # a segment's first keyframe has no chain edge
            cumulative[positions] = np.cumsum(steps, axis=0)
        return cumulative

    def _interpolated(self, ids: list, solved_ids: list, solved: list) -> list:
        """Corrected poses of all ``ids`` from those solved: each keyframe between two solved ones of its segment
        takes their corrections (corrected @ chained^-1) blended by the share of chain variance (translation) on
        either side, the least-squares answer for a chain between two fixed ends to first order (rotation by
        its axis-angle, scale by its log, translation linearly; exact at both ends)."""
        solved_at = dict(zip(solved_ids, solved))
        cumulative = self._chain_variance(ids)[:, 3]
        count = len(ids)
        before, after = np.full(count, -1), np.full(count, -1)  # positions of the solved neighbours
        last: dict[int, int] = {}
        for k, frame_id in enumerate(ids):
            segment = self.nodes[frame_id].segment
            if frame_id in solved_at:
                last[segment] = k
            before[k] = last[segment]
        last = {}
        for k in range(count - 1, -1, -1):
            segment = self.nodes[ids[k]].segment
            if ids[k] in solved_at:
                last[segment] = k
            after[k] = last.get(segment, before[k])
        chained = np.stack([self.nodes[f].chained for f in ids])
        corrections = np.stack(
            [solved_at[f] @ _inverse(self.nodes[f].chained) if f in solved_at else np.eye(4) for f in ids]
        )
        start, end = corrections[before], corrections[after]
        span = cumulative[after] - cumulative[before]
        share = np.where(span > 0, (cumulative - cumulative[before]) / np.where(span > 0, span, 1.0), 0.0)
        delta = end @ _batch_inverse(start)
        scale = np.cbrt(np.linalg.det(delta[:, :3, :3]))
        rotation = delta[:, :3, :3] / scale[:, None, None]
        step = np.zeros_like(delta)
        step[:, :3, :3] = (scale**share)[:, None, None] * _rotation_exp(share[:, None] * _rotation_log(rotation))
        step[:, :3, 3] = share[:, None] * delta[:, :3, 3]
        step[:, 3, 3] = 1.0
        blended = step @ start @ chained
        return [solved_at[f] if f in solved_at else blended[k] for k, f in enumerate(ids)]

    def _solve(self, ids: list, loops: list[LoopEdge]):
        gtsam = require_gtsam()
        index = {frame_id: k for k, frame_id in enumerate(ids)}
        graph = gtsam.NonlinearFactorGraph()
        initial = gtsam.Values()
        nodes = [self.nodes[frame_id] for frame_id in ids]
        # Batched numpy for the per-node algebra: a Python-level 4x4 helper per node would cost more than the solve.
        values = _batch_to_gtsam(gtsam, np.stack([n.corrected for n in nodes]))
        chained = np.stack([n.chained for n in nodes])
        previous: dict[int, int] = {}  # segment -> index of its newest node so far
        before = np.full(len(ids), -1)
        for k, node in enumerate(nodes):
            before[k] = previous.get(node.segment, -1)
            previous[node.segment] = k
        chain = np.flatnonzero(before >= 0)
        measured = _batch_to_gtsam(gtsam, _rigid_inverse(chained[before[chain]]) @ chained[chain])
        groups = {segment: self.group(segment) for segment in {n.segment for n in nodes}}
        metric_groups = {groups[n.segment] for n in nodes if n.metric}
        anchored: set[int] = set()
        scale_prior = gtsam.noiseModel.Diagonal.Sigmas(np.array([math.inf] * 6 + [self.config.metric_scale_sigma]))
        for k, node in enumerate(nodes):
            initial.insert(k, values[k])
            group = groups[node.segment]
            if group not in anchored:
                anchored.add(group)
                noise = gtsam.noiseModel.Diagonal.Sigmas(self._anchor_sigmas(node, group in metric_groups))
                graph.add(gtsam.PriorFactorSimilarity3(k, values[k], noise))
            if node.metric:  # in metres: scale 1 (its rotation and position are free)
                graph.add(gtsam.PriorFactorSimilarity3(k, _to_gtsam(gtsam, _rigid(node.corrected)), scale_prior))
        # Edges between solved keyframes carry the variance of the chain edges they skip.
        every = list(self.nodes)
        position = {f: k for k, f in enumerate(every)}
        cumulative = self._chain_variance(every)[[position[f] for f in ids]]
        sigmas = np.sqrt(np.maximum(cumulative[chain] - cumulative[before[chain]], 1e-30))
        for k, measurement, sigma in zip(chain, measured, sigmas):
            noise = gtsam.noiseModel.Diagonal.Sigmas(sigma)
            graph.add(gtsam.BetweenFactorSimilarity3(int(before[k]), int(k), measurement, noise))
        initial_poses = {frame_id: node.corrected for frame_id, node in self.nodes.items()}
        widths = _continuation(
            max((self._loop_error_sigma(e, initial_poses) for e in loops), default=0.0), self.config.cauchy_k
        )
        params = gtsam.LevenbergMarquardtParams()
        params.setMaxIterations(self.config.max_iterations)
        params.setRelativeErrorTol(self.config.relative_error_tol)
        params.setAbsoluteErrorTol(0.0)
        iterations, error_before, estimate = 0, None, initial
        for width in widths:
            stage = gtsam.NonlinearFactorGraph()
            stage.push_back(graph)
            for edge in loops:
                noise = gtsam.noiseModel.Robust.Create(
                    gtsam.noiseModel.mEstimator.Cauchy.Create(width),
                    gtsam.noiseModel.Diagonal.Sigmas(self._loop_sigmas(edge)),
                )
                measured = _to_gtsam(gtsam, edge.match_from_query)
                stage.add(gtsam.BetweenFactorSimilarity3(index[edge.match], index[edge.query], measured, noise))
            if error_before is None:
                error_before = stage.error(initial)
            optimizer = gtsam.LevenbergMarquardtOptimizer(stage, estimate, params)
            estimate = optimizer.optimize()
            iterations += optimizer.iterations()
        error_after = stage.error(estimate)
        converged = optimizer.iterations() < self.config.max_iterations or error_after <= 1e-12
        values = [
            _normalised(np.asarray(estimate.atSimilarity3(k).matrix(), dtype=np.float64)) for k in range(len(ids))
        ]
        return error_before, error_after, iterations, values, converged

    def _loop_error_sigma(self, edge: LoopEdge, values: dict) -> float:
        """The loop edge's error in sigmas (Mahalanobis norm, no kernel) at the solved poses."""
        gtsam = require_gtsam()
        now = _inverse(values[edge.match]) @ values[edge.query]
        error = gtsam.Similarity3.Logmap(_to_gtsam(gtsam, _inverse(edge.match_from_query) @ now))
        return float(np.linalg.norm(np.asarray(error) / self._loop_sigmas(edge)))


def _chain_edge_is_metric(earlier, later):
    """Whether chain edges have their scale fixed (between metric keyframes), from their ends' `Node.metric` flags
    (bools or ``(N,)`` arrays): an edge into a keyframe from before the world turned metric keeps its free scale."""
    return earlier & later


def _continuation(largest_error: float, width: float, step: float = 8.0) -> list[float]:
    """Cauchy widths, widest first, for solving in stages (graduated non-convexity): a right loop after a long
    drift starts many sigmas off and a narrow kernel would switch it off before the chain could bend towards it.
    The first stage is wide enough for every loop to count fully; each next one ``step`` times narrower, down to
    ``width``."""
    widths = [width]
    while widths[-1] * step < largest_error:
        widths.append(widths[-1] * step)
    return widths[::-1]


def similarity_scale(similarity: np.ndarray) -> float:
    """s of ``[[s*R, t], [0, 0, 0, 1]]`` (numpy: the graph's algebra runs thousands of times per solve, where the
    torch-backed `vggt_ros.geometry` helpers cost tens of microseconds a call)."""
    return float(np.cbrt(np.linalg.det(similarity[:3, :3])))


def _rigid(similarity: np.ndarray) -> np.ndarray:
    """``similarity`` without its scale: the rotation and the translation kept."""
    rigid = np.array(similarity, dtype=np.float64)
    rigid[:3, :3] /= similarity_scale(rigid)
    return rigid


def _inverse(similarity: np.ndarray) -> np.ndarray:
    """Inverse ``(4, 4)`` of a similarity: p -> R^T (p - t) / s."""
    scale = similarity_scale(similarity)
    linear_inverse = similarity[:3, :3].T / scale**2
    inverse = np.eye(4)
    inverse[:3, :3] = linear_inverse
    inverse[:3, 3] = -linear_inverse @ similarity[:3, 3]
    return inverse


def _batch_inverse(similarities: np.ndarray) -> np.ndarray:
    """Inverses ``(N, 4, 4)`` of similarities ``(N, 4, 4)``."""
    scales = np.cbrt(np.linalg.det(similarities[:, :3, :3]))
    linear = np.transpose(similarities[:, :3, :3], (0, 2, 1)) / (scales**2)[:, None, None]
    inverse = np.zeros_like(similarities)
    inverse[:, :3, :3] = linear
    inverse[:, :3, 3] = -np.einsum("nij,nj->ni", linear, similarities[:, :3, 3])
    inverse[:, 3, 3] = 1.0
    return inverse


def _rotation_log(rotations: np.ndarray) -> np.ndarray:
    """Axis-angle vectors ``(N, 3)`` of rotations ``(N, 3, 3)`` (angles below pi)."""
    cos = np.clip((np.trace(rotations, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    skew = np.stack(
        (
            rotations[:, 2, 1] - rotations[:, 1, 2],
            rotations[:, 0, 2] - rotations[:, 2, 0],
            rotations[:, 1, 0] - rotations[:, 0, 1],
        ),
        axis=1,
    )
    sine = np.sin(angle)
    factor = np.where(sine > 1e-9, angle / (2.0 * np.where(sine > 1e-9, sine, 1.0)), 0.5)
    return skew * factor[:, None]


def _rotation_exp(vectors: np.ndarray) -> np.ndarray:
    """Rotations ``(N, 3, 3)`` of axis-angle vectors ``(N, 3)`` (Rodrigues)."""
    angle = np.linalg.norm(vectors, axis=1)
    axis = vectors / np.where(angle > 1e-12, angle, 1.0)[:, None]
    cross = np.zeros((len(vectors), 3, 3))
    cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    cross = cross - np.transpose(cross, (0, 2, 1))
    sin, cos = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + sin * cross + (1.0 - cos) * cross @ cross


def _rigid_inverse(poses: np.ndarray) -> np.ndarray:
    """Inverses ``(N, 4, 4)`` of rigid poses ``(N, 4, 4)``."""
    inverse = np.zeros_like(poses)
    rotation_t = np.transpose(poses[:, :3, :3], (0, 2, 1))
    inverse[:, :3, :3] = rotation_t
    inverse[:, :3, 3] = -np.einsum("nij,nj->ni", rotation_t, poses[:, :3, 3])
    inverse[:, 3, 3] = 1.0
    return inverse


def _batch_to_gtsam(gtsam, similarities: np.ndarray) -> list:
    """`_to_gtsam` of ``(N, 4, 4)`` similarities."""
    scales = np.cbrt(np.linalg.det(similarities[:, :3, :3]))
    rotations = similarities[:, :3, :3] / scales[:, None, None]
    translations = similarities[:, :3, 3] / scales[:, None]
    return [gtsam.Similarity3(gtsam.Rot3(r), t, float(s)) for r, t, s in zip(rotations, translations, scales)]


def _to_gtsam(gtsam, similarity: np.ndarray):
    """Our ``[[s*R, t], [0, 0, 0, 1]]`` as GTSAM's Similarity3, which maps p -> s * (R p + t')."""
    scale = similarity_scale(similarity)
    return gtsam.Similarity3(gtsam.Rot3(similarity[:3, :3] / scale), similarity[:3, 3] / scale, scale)


def _normalised(matrix: np.ndarray) -> np.ndarray:
    """GTSAM's Similarity3 matrix is [[R, t], [0, 1/s]]; ours is [[s*R, t], [0, 1]]."""
    return matrix / matrix[3, 3]


def _replace_edge(edge: LoopEdge, query=None, match=None, pose=None) -> LoopEdge:
    return LoopEdge(
        edge.query if query is None else query,
        edge.match if match is None else match,
        edge.match_from_query if pose is None else pose,
        edge.residual_ratio,
        edge.score,
    )


def _ms(start: float) -> float:
    return 1000.0 * (time.perf_counter() - start)
