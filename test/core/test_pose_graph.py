# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The Sim(3) pose graph against closed-form answers: loop error spread evenly over equal edges (translation in
SE(3), scale in Sim(3)), a wrong loop switched off by the robust kernel, failures that keep the last poses, and
decimation that keeps a loop."""

import math

import numpy as np
import pytest

from vggt_ros.geometry import similarity_matrix
from vggt_ros.world.loop_constraint import LoopConstraint
from vggt_ros.world.pose_graph import PoseGraph, PoseGraphConfig

# Equal sigmas on every edge; rotations held stiff and a kernel so wide it is quadratic, so the problem is linear.
LINEAR = PoseGraphConfig(chain_rotation_sigma_rad=1e-4, cauchy_k=1e6, max_loop_error_sigma=1e9)


def _pose(x, y=0.0, z=0.0, scale=1.0, yaw=0.0):
    c, s = math.cos(yaw), math.sin(yaw)
    rotation = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return similarity_matrix(scale, rotation, np.array([x, y, z], dtype=np.float64))


def _loop(query, match, match_from_query, residual_ratio=0.01):
    return LoopConstraint(query, match, match_from_query, residual_ratio, 0.9)


def _graph(poses, config, metric=False, residual_ratio=0.01):
    graph = PoseGraph(config)
    if metric:
        graph.set_metric()
    for k, pose in enumerate(poses):
        graph.add(k, pose, 0, residual_ratio, 1.0)
    return graph


def test_square_with_one_loop_spreads_the_translation_error_evenly():
    """Unit square 0-1-2-3 (SE(3): metric), chained exactly; the loop says node 3 is 0.08 further along x than the
    chain does. Four equal edges: each absorbs a quarter, so node k moves by k * 0.02 (least squares, by hand:
    minimise 3 d^2 + (3 d - 0.08)^2 -> d = 0.02)."""
    corners = [_pose(0, 0), _pose(1, 0), _pose(1, 0, 1), _pose(0, 0, 1)]
    graph = _graph(corners, LINEAR, metric=True)
    graph.add_loop(_loop(3, 0, _pose(0.08, 0, 1)))
    result = graph.optimise()
    assert result.ok, result.reason
    for k, corner in enumerate(corners):
        assert np.allclose(graph.nodes[k].corrected[:3, 3], corner[:3, 3] + [0.02 * k, 0, 0], atol=1e-5)
        assert np.allclose(graph.nodes[k].corrected[:3, :3], np.eye(3), atol=1e-5)
    # The correction is the newest keyframe's: corrected = correction @ chained.
    assert np.allclose(graph.correction @ corners[3], graph.nodes[3].corrected, atol=1e-9)


def test_scale_drift_around_a_loop_is_spread_evenly_in_sim3():
    """Four nodes at one place, chained at scale 1; the loop measures node 3 at 1.08x node 0's scale. With equal
    log-scale sigmas each edge takes a quarter of log(1.08): s_k = 1.08^(k/4)."""
    graph = _graph([np.eye(4)] * 4, PoseGraphConfig(cauchy_k=1e6, max_loop_error_sigma=1e9))
    graph.add_loop(_loop(3, 0, _pose(0, scale=1.08)))
    assert graph.optimise().ok
    scales = [np.cbrt(np.linalg.det(graph.nodes[k].corrected[:3, :3])) for k in range(4)]
    assert np.allclose(scales, [1.08 ** (k / 4) for k in range(4)], rtol=1e-5)


def _drifting_ring(count=24, radius=2.0, yaw_drift=0.003):
    """True poses around a circle (each step: forward one chord, turn 2 pi / count) and chained ones whose every
    turn is ``yaw_drift`` rad too large: 0.3 rotation sigma of a chain edge with residual ratio `RING_RESIDUAL`."""
    step_angle = 2 * math.pi / count
    chord = 2 * radius * math.sin(step_angle / 2)
    true, chained = [np.eye(4)], [np.eye(4)]
    for _ in range(count - 1):
        true.append(true[-1] @ _pose(0, 0, chord, yaw=step_angle))
        chained.append(chained[-1] @ _pose(0, 0, chord, yaw=step_angle + yaw_drift))
    return true, chained


RING_RESIDUAL = 0.02


def _ring_graph(chained, config):
    return _graph(chained, config, metric=True, residual_ratio=RING_RESIDUAL)


def _position_error(graph, true):
    return max(np.linalg.norm(graph.nodes[k].corrected[:3, 3] - t[:3, 3]) for k, t in enumerate(true))


def test_a_wrong_loop_is_switched_off_by_the_robust_kernel():
    true, chained = _drifting_ring()
    right = _loop(23, 0, np.linalg.inv(true[0]) @ true[23])
    wrong = _loop(12, 2, np.linalg.inv(true[2]) @ true[12] @ _pose(0.8, 0, 0.5))  # 0.9 units off

    def solved(config, loops):
        graph = _ring_graph(chained, config)
        for loop in loops:
            graph.add_loop(loop)
        return graph, graph.optimise()

    good, result = solved(PoseGraphConfig(), [right])
    assert result.ok, result.reason
    assert _position_error(good, true) < 0.3 * max(np.linalg.norm(c[:3, 3] - t[:3, 3]) for c, t in zip(chained, true))
    # Without a kernel (and no post-solve check) the wrong loop bends the ring; with it the answer barely moves,
    # and the loop still off by > 5 sigma afterwards is removed.
    plain, _ = solved(PoseGraphConfig(cauchy_k=1e6, max_loop_error_sigma=1e9), [right, wrong])
    robust, result = solved(PoseGraphConfig(), [right, wrong])
    baseline = _position_error(good, true)
    assert _position_error(plain, true) > baseline + 0.1
    assert _position_error(robust, true) < baseline + 0.01
    assert result.ok and [e.query for e in result.rejected_loops] == [12] and len(robust.loops) == 1


def test_non_convergence_keeps_the_last_poses():
    true, chained = _drifting_ring()
    graph = _ring_graph(chained, PoseGraphConfig(max_iterations=1))
    graph.add_loop(_loop(23, 0, np.linalg.inv(true[0]) @ true[23]))
    result = graph.optimise()
    assert not result.ok and "not converged" in result.reason
    assert all(np.array_equal(graph.nodes[k].corrected, chained[k]) for k in range(len(chained)))
    assert np.array_equal(graph.correction, np.eye(4))


def test_a_solver_error_keeps_the_last_poses(monkeypatch):
    import gtsam

    def failing(*args):
        raise RuntimeError("Indeterminant linear system detected (test double)")

    true, chained = _drifting_ring()
    graph = _ring_graph(chained, PoseGraphConfig())
    graph.add_loop(_loop(23, 0, np.linalg.inv(true[0]) @ true[23]))
    monkeypatch.setattr(gtsam, "LevenbergMarquardtOptimizer", failing)
    result = graph.optimise()
    assert not result.ok and "solver failed" in result.reason and "Indeterminant" in result.reason
    assert all(np.array_equal(graph.nodes[k].corrected, chained[k]) for k in range(len(chained)))


def test_removing_a_loop_keyframe_moves_the_loop_to_its_neighbour():
    true, chained = _drifting_ring()
    kept = _ring_graph(chained, PoseGraphConfig())
    kept.add_loop(_loop(23, 0, np.linalg.inv(true[0]) @ true[23]))
    assert kept.optimise().ok
    decimated = _ring_graph(chained, PoseGraphConfig())
    decimated.add_loop(_loop(23, 0, np.linalg.inv(true[0]) @ true[23]))
    decimated.remove(0)
    assert {(e.query, e.match) for e in decimated.loops} == {(23, 1)}
    assert decimated.optimise().ok
    # The same loop through node 1 (now the anchor) closes the ring as well: node 23 lands within the drift of one
    # step of where the full graph put it.
    assert np.linalg.norm(decimated.nodes[23].corrected[:3, 3] - kept.nodes[23].corrected[:3, 3]) < 0.05


def test_loops_that_land_on_the_same_keyframes_after_decimation_count_once():
    """A route driven again leaves loops between neighbouring keyframes; when decimation moves them onto the same
    pair, one is kept (the newer), so the edges stay bounded by the kept keyframes."""
    true, chained = _drifting_ring()
    graph = _ring_graph(chained, PoseGraphConfig())
    graph.add_loop(_loop(22, 0, np.linalg.inv(true[0]) @ true[22]))
    newer = graph.add_loop(_loop(23, 0, np.linalg.inv(true[0]) @ true[23]))
    graph.remove(22)  # its loop moves to node 23, beside the newer one
    assert [(e.query, e.match) for e in graph.loops] == [(23, 0)]
    np.testing.assert_array_equal(graph.loops[0].match_from_query, newer.match_from_query)
    assert graph.optimise().ok


def test_segments_join_through_a_loop():
    """Segment 1 was re-anchored at an unknown offset (here 1.5 units off); a loop to segment 0 moves it back."""
    graph = PoseGraph(PoseGraphConfig())
    graph.set_metric()
    for k in range(5):
        graph.add(k, _pose(0.2 * k), 0, 0.01, 1.0)
    offset = _pose(1.5, 0, 0)
    for k in range(5, 10):
        graph.add(k, offset @ _pose(0.2 * (k - 5)), 1, 0.01, 1.0)  # truly at x = 0.2 (k - 5)
    assert graph.group(1) == 1
    graph.add_loop(_loop(7, 2, np.eye(4)))  # node 7 is where node 2 is
    assert graph.group(1) == 0
    assert graph.optimise().ok
    for k in range(5, 10):
        assert np.allclose(graph.nodes[k].corrected[:3, 3], [0.2 * (k - 5), 0, 0], atol=1e-4)
    assert np.allclose(graph.correction, np.linalg.inv(offset), atol=1e-4)


@pytest.mark.parametrize("name", ["cauchy_k", "max_iterations", "anchor_sigma"])
def test_config_rejects_bad_values(name):
    with pytest.raises(ValueError, match=name):
        PoseGraphConfig(**{name: 0})


def test_a_large_graph_solved_on_a_subset_agrees_with_the_full_solve():
    """400 keyframes solved on 40 (the loop's ends, the segment's ends, every tenth) and the rest interpolated:
    every keyframe lands within 3 % of the chain's drift of where the full solve puts it (the skipped edges' rotation
    uncertainty, which a lever arm turns into translation, is left out of the composed edges)."""
    true, chained = _drifting_ring(count=400, radius=12.0, yaw_drift=0.0003)
    loop = _loop(399, 0, np.linalg.inv(true[0]) @ true[399])
    solved = {}
    for nodes in (1000, 40):
        graph = _ring_graph(chained, PoseGraphConfig(max_solve_nodes=nodes))
        graph.add_loop(loop)
        assert graph.optimise().ok
        solved[nodes] = np.stack([graph.nodes[k].corrected[:3, 3] for k in range(400)])
    drift = max(np.linalg.norm(c[:3, 3] - t[:3, 3]) for c, t in zip(chained, true))
    assert np.linalg.norm(solved[1000] - np.stack([t[:3, 3] for t in true]), axis=1).max() < 0.01 * drift
    assert np.linalg.norm(solved[40] - solved[1000], axis=1).max() < 0.03 * drift


def test_a_metric_graph_keeps_the_scale_fixed():
    """Once metric (SE(3)), a loop's measured scale is dropped and every node keeps scale 1; its translation
    error is still spread (unit square as above)."""
    corners = [_pose(0, 0), _pose(1, 0), _pose(1, 0, 1), _pose(0, 0, 1)]
    graph = _graph(corners, LINEAR, metric=True)
    graph.add_loop(_loop(3, 0, _pose(0.08, 0, 1, scale=1.08)))
    assert graph.optimise().ok
    assert np.allclose([np.linalg.det(graph.nodes[k].corrected[:3, :3]) for k in range(4)], 1.0, atol=1e-9)
    assert np.allclose(graph.nodes[3].corrected[:3, 3], [0.06, 0, 1], atol=1e-5)


def test_a_loop_closed_before_the_graph_turned_metric_keeps_its_scale():
    """The Sim(3) loop of `test_scale_drift_around_a_loop_is_spread_evenly_in_sim3` recorded while the world was
    unit-less, then the world turns metric: its keyframes were not placed in metres, so the loop keeps its 8 % and
    they share it as before, s_k = 1.08^(k/4), solve after solve (before, the graph dropped the loop's scale and
    every node kept scale 1)."""
    graph = _graph([np.eye(4)] * 4, PoseGraphConfig(cauchy_k=1e6, max_loop_error_sigma=1e9))
    graph.add_loop(_loop(3, 0, _pose(0, scale=1.08)))
    graph.set_metric()
    for _ in range(2):
        result = graph.optimise()
        assert result.ok and not result.rejected_loops and len(graph.loops) == 1
        scales = [np.cbrt(np.linalg.det(graph.nodes[k].corrected[:3, :3])) for k in range(4)]
        np.testing.assert_allclose(scales, 1.08 ** (np.arange(4) / 4), rtol=1e-6)


def test_a_loop_from_the_metric_world_corrects_the_scale_drift_of_the_unit_less_stretch():
    """Keyframes 0-3 were added before the world turned metric, 4-7 after; all at one place. The loop from 7 to 0
    measures node 0's unit 8 % off the metric one (s_7 / s_0 = 1.08). The metric keyframes keep scale 1; the five
    edges of the cycle through the unit-less stretch (0-1, 1-2, 2-3, 3-4 and the loop, equal log-scale sigmas) share
    log 1.08, so log s_k = -(4 - k) / 5 log 1.08 for k <= 4 (the anchor, node 0, fixes no scale: the metric priors
    do). Before, the loop's scale was dropped and the unit-less stretch kept its drift (every scale 1)."""
    graph = PoseGraph(PoseGraphConfig(cauchy_k=1e6, max_loop_error_sigma=1e9))
    for k in range(8):
        if k == 4:
            graph.set_metric()
        graph.add(k, np.eye(4), 0, 0.01, 1.0)
    graph.add_loop(_loop(7, 0, _pose(0, scale=1.08)))
    assert graph.optimise().ok
    scales = np.array([np.cbrt(np.linalg.det(graph.nodes[k].corrected[:3, :3])) for k in range(8)])
    expected = np.exp(-np.clip(4 - np.arange(8), 0, None) / 5 * math.log(1.08))
    np.testing.assert_allclose(scales, expected, rtol=1e-6)
    assert np.allclose(graph.nodes[0].corrected[:3, 3], 0.0, atol=1e-9)  # the anchor's position stays
    # The newest keyframes' correction is in metres, so the keyframes that follow are too.
    assert np.cbrt(np.linalg.det(graph.correction[:3, :3])) == pytest.approx(1.0, abs=1e-9)


def test_a_loop_moved_from_a_unit_less_keyframe_onto_a_metric_one_loses_its_scale():
    """The store drops the unit-less keyframe a loop from the metric world reached; the loop moves to the next
    keyframe, which is metric: between two metric keyframes it keeps only its rotation and translation (with its
    5 % the next solve found it 5e4 sigmas off and dropped it)."""
    graph = PoseGraph(PoseGraphConfig())
    for k in range(8):
        if k == 4:
            graph.set_metric()
        graph.add(k, _pose(0.2 * k), 0, 0.01, 1.0)
    graph.add_loop(_loop(7, 3, _pose(0.8, scale=1.05)))
    graph.remove(3)
    assert [(e.query, e.match) for e in graph.loops] == [(7, 4)]
    assert np.linalg.det(graph.loops[0].match_from_query[:3, :3]) == pytest.approx(1.0)
    result = graph.optimise()
    assert result.ok and not result.rejected_loops and len(graph.loops) == 1


def test_a_loop_between_segments_of_a_metric_world_keeps_only_its_rotation_and_translation():
    """Segment 0: two unit-less keyframes, then metric ones. Segment 1 started after tracking was lost in the metric
    world, at a guessed scale. A loop from segment 1 into segment 0's unit-less start measures that guess's error
    (20 %): with its scale kept, the loop rescaled the old segment when it joined them and disagreed with the
    metric keyframes once they were joined. Across segments it is SE(3): every keyframe keeps scale 1."""
    graph = PoseGraph(PoseGraphConfig())
    for k in range(6):
        if k == 2:
            graph.set_metric()
        graph.add(k, _pose(0.2 * k), 0, 0.01, 1.0)
    for k in range(6, 10):
        graph.add(k, _pose(0.2 * (k - 6)), 1, 0.01, 1.0)
    for query, match in ((7, 1), (6, 0)):  # the first joins the segments, the second lies within the joined group
        graph.add_loop(_loop(query, match, _pose(0, scale=1.2)))
        result = graph.optimise()
        assert result.ok and not result.rejected_loops, result
    assert len(graph.loops) == 2 and all(
        np.linalg.det(e.match_from_query[:3, :3]) == pytest.approx(1) for e in graph.loops
    )
    scales = [np.cbrt(np.linalg.det(graph.nodes[k].corrected[:3, :3])) for k in range(10)]
    np.testing.assert_allclose(scales, 1.0, atol=1e-6)


def test_a_reduced_solve_keeps_every_metric_keyframe_at_scale_1():
    """200 keyframes at one place solved on 16 (every 15th and the ends), the first 47 unit-less; the loop from the
    newest to the first measures node 0's unit 10 % off. The keyframes either side of where the segment turns
    metric are solved too, so the metric keyframes between solved ones take no part of the unit-less stretch's
    scale correction (by interpolation they took up to 0.34 %). The 47 chain edges and the loop share log 1.1 as
    in the full solve: s_0 = 1.1^(47/48)."""
    graph = PoseGraph(PoseGraphConfig(max_solve_nodes=16, cauchy_k=1e6, max_loop_error_sigma=1e9))
    for k in range(200):
        if k == 47:
            graph.set_metric()
        graph.add(k, np.eye(4), 0, 0.01, 1.0)
    graph.add_loop(_loop(199, 0, _pose(0, scale=1 / 1.1)))
    assert graph.optimise().ok
    scales = np.array([np.cbrt(np.linalg.det(graph.nodes[k].corrected[:3, :3])) for k in range(200)])
    np.testing.assert_allclose(scales[47:], 1.0, atol=1e-9)
    assert scales[0] == pytest.approx(1.1 ** (47 / 48), rel=1e-6)


def test_a_decimated_chain_keeps_the_variance_of_the_edges_it_dropped_and_takes_the_right_loop():
    """A 96-keyframe ring with 0.01 rad of yaw drift a step, thinned by the keyframe store to every 4th keyframe
    before the loop closes it. The edge joining two kept keyframes carried one step's variance, not four: the
    chain looked four times too stiff for its drift, and the solve switched the right loop off as disagreeing."""
    true, chained = _drifting_ring(count=96, radius=8.0, yaw_drift=0.01)
    graph = _ring_graph(chained, PoseGraphConfig())
    for k in range(1, 95):
        if k % 4:
            graph.remove(k)
    graph.add_loop(_loop(95, 0, np.linalg.inv(true[0]) @ true[95]))
    result = graph.optimise()
    assert result.ok and not result.rejected_loops, result
    drift = max(np.linalg.norm(c[:3, 3] - t[:3, 3]) for c, t in zip(chained, true))
    error = max(np.linalg.norm(graph.nodes[k].corrected[:3, 3] - true[k][:3, 3]) for k in graph.nodes)
    assert error < 0.1 * drift, (error, drift)


def test_loop_edges_stay_capped_on_a_route_driven_again_and_again():
    """A 240-keyframe ring closed at its end (4 loops) and then every 4 keyframes along it (57 loops, each the true
    relative pose), one solve per loop: above the cap of 12 the edge whose neighbours are closest goes, so 12 stay,
    spread along the ring with the ring's closure among them, and the ring is corrected about as well as with all
    61."""
    true, chained = _drifting_ring(count=240, radius=8.0, yaw_drift=0.001)
    loops = [_loop(query, query - 236, np.linalg.inv(true[query - 236]) @ true[query]) for query in range(236, 240)]
    loops += [_loop(k, k - 4, np.linalg.inv(true[k - 4]) @ true[k]) for k in range(8, 236, 4)]
    solved = {}
    for cap in (12, 100):
        graph = _ring_graph(chained, PoseGraphConfig(max_loop_edges=cap))
        for loop in loops:
            graph.add_loop(loop)
            assert graph.optimise().ok
            assert len(graph.loops) <= cap
        solved[cap] = graph
    kept = solved[12].loops
    assert len(kept) == 12 and len(solved[100].loops) == 61
    queries = sorted(e.query for e in kept if e.match != e.query - 236)
    assert max(np.diff([0, *queries, 236])) <= 40  # no stretch of the ring left without a loop
    assert any(e.match == e.query - 236 for e in kept)  # the closure
    drift = max(np.linalg.norm(c[:3, 3] - t[:3, 3]) for c, t in zip(chained, true))
    uncapped = _position_error(solved[100], true)
    assert uncapped < 0.02 * drift
    assert _position_error(solved[12], true) < uncapped + 0.01 * drift


def test_an_edge_that_alone_joins_two_segments_is_never_dropped():
    graph = PoseGraph(PoseGraphConfig(max_loop_edges=1))
    graph.set_metric()
    for k in range(6):
        graph.add(k, _pose(0.2 * k), 0, 0.01, 1.0)
    for k in range(6, 12):
        graph.add(k, _pose(0.2 * (k - 6)), 1, 0.01, 1.0)
    graph.add_loop(_loop(7, 1, np.eye(4)))  # joins segments 0 and 1
    graph.add_loop(_loop(5, 1, _pose(0.8)))  # within segment 0
    assert graph.optimise().ok
    assert len(graph.loops) == 2 and graph.group(1) == 0  # over the cap, but neither has a partner to merge into
