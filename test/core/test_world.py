# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""World chaining on a synthetic room with ground truth: accuracy targets, the bounded keyframe memory, windows
whose depth head ran on a subset of their frames, and the bad cases (no overlap, pure rotation, static camera,
sudden jump, NaN/Inf, lost tracking) each survive, leave the world and map intact, and say why.

The network is replaced by `FakeVGGTForWorldTests` (ground truth re-expressed per window as VGGT would, plus
noise); its answers go through the real decoding (`decode_window`). Tests of the whole path run a
`ReconstructionSession` (keyframing, windows, frame cache, depth-frame choice, decoding, chaining, map) with
`FakePipelineForWorldTests` in place of the pipeline."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from support.synthetic import (
    NO_NOISE,
    PATHS,
    FakePipelineForWorldTests,
    FakeVGGTForWorldTests,
    _axis_angle_to_matrix,
    camera_path,
    chaining_session_config,
    decode_answer,
    evaluate_chaining,
    frame_ids,
    look_at,
    network_outputs,
    render_poses,
    render_sequence,
    run_chaining,
    window_products,
)
from vggt_ros.geometry import (
    compose_rigid,
    compose_similarity,
    invert_rigid,
    invert_similarity,
    transform_points,
    unproject_depth,
)
from vggt_ros.numeric import usable_pixels
from vggt_ros.products import decode_window
from vggt_ros.session import ReconstructionSession
from vggt_ros.window import FrameId, FrameSet, KeyframePolicy, Window, WindowConfig
from vggt_ros.world import WindowStatus, World, WorldConfig
from vggt_ros.world.keyframes import Keyframe, KeyframeStore
from vggt_ros.world.loop_config import LoopConfig

HW = (28, 42)
# The recommended chaining set-up (the bench's): windows of 8 keyframes sliding by 1, keyframes at >= 0.07
# grey-level change.
WINDOWS = WindowConfig(8, 1, KeyframePolicy(min_motion=0.07))


@pytest.fixture(scope="module")
def straight():
    return render_sequence("straight", 200, HW)


def _angle_deg(r_a, r_b):
    return np.degrees(2 * np.arcsin(min(1.0, np.linalg.norm(r_a - r_b) / (2 * np.sqrt(2)))))


def _indices(sequence, ids):
    """Sequence frame indices of session frame ids (stamp ns, camera)."""
    index_of_stamp = {int(s): i for i, s in enumerate(sequence.stamps_ns)}
    return np.array([index_of_stamp[stamp] for stamp, _ in ids])


def _chain(world, oracle, starts, size=6, step=2):
    """Integrate windows [start, start + size*step) every `step` frames (depth on every frame); the results."""
    return [world.integrate(window_products(oracle, range(s, s + size * step, step))) for s in starts]


def _session(sequence, oracle, world_config=WorldConfig()):
    """The whole path (frame cache, depth-frame choice, decoding, world, cloud, map) over `FakePipelineForWorldTests`,
    fed window by window with `_run_window`."""
    config = chaining_session_config(sequence, WindowConfig(6, 1), world_config)
    return ReconstructionSession(FakePipelineForWorldTests(oracle), config)


def _run_window(session, sequence, indices, answer=None):
    """One window of sequence frames through the session. With ``answer``, the network's outputs are replaced by
    that (altered) answer, on the frames the session chose to run the depth head on."""
    sets = tuple(FrameSet((int(sequence.stamps_ns[i]),), (sequence.rgb[i],)) for i in indices)
    inference = session.infer(Window(sets, new_count=len(sets), sequence=0))
    if answer is not None:
        inference = dataclasses.replace(inference, predictions=network_outputs(answer, inference.dense))
    return session.integrate(inference)


def _map_error_pct(growing_map, first_answer, room):
    """Median distance of map points to the true surfaces (% of room size), using the exact gauge: the world is
    the first window's frame, so scene = inverse(window_from_scene of the first window)."""
    scene_from_world = invert_similarity(first_answer.window_from_scene)
    scene_points = transform_points(scene_from_world, growing_map.points.astype(np.float64))
    return 100 * np.median(room.distance_to_surface(scene_points)) / room.size


# --- the test double and the scene themselves ---------------------------------------------------------------


def test_renderer_depth_and_points_lie_on_the_true_surfaces():
    # A camera at the room's centre looking at the far wall z = 3 (no panel on the optical axis): depth 3.
    extrinsics = look_at(np.array([[0.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 1.0]]))
    seq = render_poses("probe", extrinsics, (28, 42))
    assert seq.depth[0, 14, 21] == pytest.approx(3.0)
    u, v = np.meshgrid(np.arange(42.0), np.arange(28.0))
    focal = seq.intrinsics[0, 0]
    rays = np.stack(((u - 21) / focal, (v - 14) / focal, np.ones_like(u)), axis=-1)
    points = transform_points(invert_rigid(extrinsics)[0], (seq.depth[0][..., None] * rays).reshape(-1, 3))
    assert np.abs(seq.room.distance_to_surface(points)).max() < 1e-9
    assert seq.room.distance_to_surface(np.array([[0.0, 0.0, 0.0]]))[0] == pytest.approx(1.5)  # floor / ceiling


def test_fake_network_answers_in_the_first_camera_with_vggt_normalisation(straight):
    oracle = FakeVGGTForWorldTests(straight, noise=NO_NOISE)
    answer = oracle.predict([10, 14, 18, 22])
    assert np.allclose(answer.extrinsics[0], np.eye(3, 4), atol=1e-12)
    # VGGT's normalisation: the window's 3-D points are at mean distance 1 from the first camera.
    points = unproject_depth(answer.depth.astype(np.float64), answer.extrinsics, answer.intrinsics)
    assert np.linalg.norm(points, axis=-1).mean() == pytest.approx(1.0, rel=1e-6)
    # Depth is the true depth times the normalisation; relative poses are the true ones, scaled.
    assert np.allclose(answer.depth, straight.depth[[10, 14, 18, 22]] * answer.normalization, rtol=1e-6)
    true_rel = straight.extrinsics[14][:, :3] @ straight.extrinsics[10][:, :3].T
    assert np.allclose(answer.extrinsics[1][:, :3], true_rel, atol=1e-9)
    # The same window twice gives the same noisy answer (seeded); the network output format decodes to it.
    noisy = FakeVGGTForWorldTests(straight, seed=3)
    a, b = noisy.predict([1, 2, 3]), noisy.predict([1, 2, 3])
    assert np.array_equal(a.depth, b.depth) and not np.array_equal(a.depth, answer.depth[:3])
    products = window_products(noisy, [1, 2, 3], dense=[0, 2])
    assert products.frame_ids == frame_ids(straight, [1, 2, 3]) and np.allclose(products.stamps, [0.1, 0.2, 0.3])
    assert np.allclose(invert_rigid(products.window_from_camera[:, :3]), a.extrinsics, atol=1e-5)
    assert np.allclose(products.intrinsics, a.intrinsics, rtol=1e-5)
    assert products.dense == (0, 2) and np.array_equal(products.depth.numpy(), a.depth[[0, 2]])
    assert np.array_equal(products.colors.numpy(), straight.rgb[[1, 3]])


# --- accuracy ---------------------------------------------------------------------------------------------


def test_noise_free_chaining_is_exact(straight):
    run = run_chaining(straight, WINDOWS, noise=NO_NOISE)
    metrics = evaluate_chaining(run)
    assert metrics.rejected == 0 and metrics.keyframes >= 15
    assert metrics.ate_pct < 1e-4 and metrics.scale_drift_pct < 1e-4
    # Map points are voxel means of points on the true surfaces: on them, except at edges and corners.
    assert metrics.map_error_pct < 1e-3


@pytest.mark.parametrize("name", PATHS)
def test_chaining_meets_the_targets(name):
    # The bench's 200-frame paths and keyframing (25 - 80 windows of one new keyframe each), at lower resolution.
    seq = render_sequence(name, 200, (42, 56))
    metrics = evaluate_chaining(run_chaining(seq, WINDOWS))
    assert metrics.keyframes >= 20 and metrics.segments == 1
    assert metrics.rejected == 0 and metrics.wrong_merges == 0
    assert metrics.ate_pct < 1.0
    assert metrics.scale_drift_pct < 1.0
    assert metrics.map_error_pct < 0.5


def test_a_wrong_merge_is_counted_by_the_evaluation(straight):
    """The bench's 'wrong merges' check can fire: with every threshold lifted, a window whose shared frames
    the network saw elsewhere gets merged, and the evaluation counts it."""
    lax = WorldConfig(
        min_inlier_ratio=0.0,
        inlier_distance_ratio=10.0,
        max_residual_ratio=10.0,
        max_camera_offset_ratio=100.0,
        max_camera_rotation_deg=180.0,
    )
    run = run_chaining(straight, WINDOWS, world_config=lax)
    assert evaluate_chaining(run).wrong_merges == 0
    indices = run.windows[-1][0][1:] + (run.windows[-1][0][-1] + 1,)
    bad = run.oracle.predict(indices, rendered_as=[k - 60 for k in indices])
    run.windows.append((indices, run.world.integrate(decode_answer(bad, straight))))
    assert run.windows[-1][1].status is WindowStatus.MERGED
    assert evaluate_chaining(run).wrong_merges == 1


# --- the first window, the result, errors -----------------------------------------------------------------


def test_first_window_defines_the_world(straight):
    world = World()
    oracle = FakeVGGTForWorldTests(straight)
    result = world.integrate(window_products(oracle, [5, 8, 11]))
    answer = oracle.answers[(5, 8, 11)]
    assert result.status is WindowStatus.INITIALIZED and result.merged and result.depth_scale == 1.0
    assert np.allclose(result.world_from_camera[0], np.eye(4), atol=1e-6)
    assert np.all(result.new_frames) and result.segment == 0
    trajectory = world.trajectory()
    assert trajectory.frame_ids == frame_ids(straight, [5, 8, 11]) and np.allclose(
        trajectory.timestamps, [0.5, 0.8, 1.1]
    )
    # world_from_camera is the inverse of the window's extrinsics (scale 1, world = first camera), up to the
    # float32 of the network's pose encoding.
    assert np.allclose(trajectory.world_from_camera[:, :3, :], invert_rigid(answer.extrinsics), atol=1e-6)
    # The new frames are placed with the network's own depth (scale 1) and colours.
    assert result.placed.frames == (0, 1, 2)
    assert np.array_equal(result.placed.depth.numpy(), answer.depth)
    assert np.array_equal(result.placed.colors.numpy(), straight.rgb[[5, 8, 11]])


def test_merged_poses_follow_the_similarity_and_depth_scale(straight):
    world = World()
    oracle = FakeVGGTForWorldTests(straight, noise=NO_NOISE)
    first, second = _chain(world, oracle, [0, 4])
    assert second.status is WindowStatus.MERGED and second.shared_frames == frame_ids(straight, (4, 6, 8, 10))
    assert list(second.new_frames) == [False, False, False, False, True, True]
    assert second.placed.frames == (4, 5)
    # The true depth scale: window 2 is normalised differently from window 1 (the world's unit).
    ratio = oracle.answers[tuple(range(0, 12, 2))].normalization / oracle.answers[tuple(range(4, 16, 2))].normalization
    # (The network's outputs are float32: exact up to their rounding.)
    assert second.depth_scale == pytest.approx(ratio, rel=1e-6)
    assert second.residual_ratio < 1e-6 and second.inlier_ratio == 1.0
    # Frame 4 is in both windows: the same world pose either way.
    assert np.allclose(second.world_from_camera[0], first.world_from_camera[2], atol=1e-6)
    # The new frames' world points lie on the room's true surfaces (world = the first window's frame).
    scene_from_world = invert_similarity(oracle.answers[tuple(range(0, 12, 2))].window_from_scene)
    points = transform_points(scene_from_world, second.placed.points.numpy().reshape(-1, 3).astype(np.float64))
    assert np.abs(straight.room.distance_to_surface(points)).max() < 1e-4


def test_malformed_input_raises_value_error_and_changes_nothing(straight):
    oracle = FakeVGGTForWorldTests(straight)
    world = World()
    # Every frame is new to an empty world, so each needs depth.
    with pytest.raises(ValueError, match="new to the world"):
        world.integrate(window_products(oracle, [0, 2, 4], dense=[0, 1]))
    assert world.is_empty and world.counters.windows == 0
    world.integrate(window_products(oracle, [0, 2, 4]))
    trajectory = world.trajectory()
    # Frame 6 is new: the depth head must have run on it; frames 0..4 are known and may go without.
    with pytest.raises(ValueError, match=r"\[\(600000000, 0\)\]"):
        world.integrate(window_products(oracle, [0, 2, 4, 6], dense=[2]))
    assert world.trajectory().frame_ids == trajectory.frame_ids and world.counters.windows == 1
    assert world.integrate(window_products(oracle, [0, 2, 4, 6], dense=[2, 3])).status is WindowStatus.MERGED
    duplicated = decode_answer(oracle.predict([4, 6, 8]), straight)
    with pytest.raises(ValueError, match="distinct"):
        world.integrate(dataclasses.replace(duplicated, frame_ids=frame_ids(straight, [4, 8, 8])))
    assert world.counters.windows == 2
    for bad in (
        dict(min_inlier_ratio=1.5),
        dict(camera_weight=-1.0),
        dict(camera_weight=float("nan")),
        dict(trajectory_history=0),
        dict(retained_frames=20, trajectory_recent=10),
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            WorldConfig(**bad)


# --- the bounded keyframe memory --------------------------------------------------------------------------


def test_keyframe_store_keeps_the_recent_keyframes_and_a_decimated_history_of_the_whole_run():
    recent, history = 5, 8
    store = KeyframeStore(recent, history)
    for k in range(203):
        store.add(Keyframe((k, 0), 0.1 * k, np.eye(4), 1.0, 0, 1.0))
        assert len(store) <= recent + history
    ids = [keyframe.frame_id[0] for keyframe in store]
    assert store.total == 203 and store.last.frame_id == (202, 0)
    # The newest keyframes, all of them, in order, after the history; only they are known by id.
    assert ids[-recent:] == list(range(198, 203))
    assert all((k, 0) in store for k in range(198, 203)) and not any((k, 0) in store for k in range(198))
    # The history starts at the very first keyframe and covers the rest of the run evenly: every n-th keyframe,
    # n a power of two, the smallest that fits the 198 keyframes that left the recent ones into 8.
    kept = ids[:-recent]
    spacing = 32  # 198 / 16 > 8 >= 198 / 32
    assert kept == list(range(0, 198, spacing)) and len(kept) <= history
    trajectory = store.trajectory()
    assert [f[0] for f in trajectory.frame_ids] == ids and np.allclose(trajectory.timestamps, 0.1 * np.array(ids))


def test_the_keyframe_store_keeps_and_drops_whole_frame_sets_so_every_camera_keeps_its_history():
    """Two cameras: keyframes (stamp, 0), (stamp, 1), ... Thinned one by one, every other keyframe was camera 0's,
    and camera 1's trajectory lost all its history. Each camera's kept stamps are the one-camera store's."""
    recent, history = 10, 16
    store, one_camera = KeyframeStore(recent, history), KeyframeStore(recent // 2, history // 2)
    for k in range(203):
        for camera in (0, 1):
            store.add(Keyframe((k, camera), 0.1 * k, np.eye(4), 1.0, 0, 1.0))
        one_camera.add(Keyframe((k, 0), 0.1 * k, np.eye(4), 1.0, 0, 1.0))
        assert len(store) <= recent + history
    expected = [f[0] for f in one_camera.trajectory().frame_ids]
    for camera in (0, 1):
        assert [f[0] for f in store.trajectory().frame_ids if f[1] == camera] == expected
    assert len(expected) > recent // 2 + 2, "the history spans the run"
    assert store.trajectory().frame_ids[:2] == ((0, 0), (0, 1))


def test_trajectory_is_bounded_and_a_keyframe_never_moves(straight):
    """A frame keeps the pose of the window that first merged it (TF, path and TUM file never move backwards),
    and bounding the trajectory changes none of the chaining."""
    oracle = FakeVGGTForWorldTests(straight)
    bounded = World(WorldConfig(retained_frames=6, trajectory_recent=6, trajectory_history=4))
    unbounded = World()
    first_poses, merged_order = {}, []
    for result in _chain(bounded, oracle, range(0, 42, 2)):
        for k in np.flatnonzero(result.new_frames):
            first_poses[result.frame_ids[k]] = result.world_from_camera[k]
            merged_order.append(result.frame_ids[k])
    _chain(unbounded, oracle, range(0, 42, 2))
    assert merged_order == list(frame_ids(straight, range(0, 52, 2)))
    trajectory = bounded.trajectory()
    # 26 keyframes: the newest 6, and every 8th of the 20 before them (0, 8, 16: the smallest power-of-two spacing
    # that fits 20 into a history of 4).
    assert trajectory.frame_ids == tuple(merged_order[k] for k in (0, 8, 16, 20, 21, 22, 23, 24, 25))
    assert np.all(np.diff(trajectory.timestamps) > 0)
    for frame_id, pose in zip(trajectory.frame_ids, trajectory.world_from_camera):
        assert np.array_equal(pose, first_poses[frame_id])
    full = unbounded.trajectory()
    assert full.frame_ids == tuple(merged_order)
    rows = [full.frame_ids.index(frame_id) for frame_id in trajectory.frame_ids]
    assert np.array_equal(full.world_from_camera[rows], trajectory.world_from_camera)


# --- windows whose depth head ran on some of their frames --------------------------------------------------


@pytest.mark.parametrize("camera_weight", [0.0, WorldConfig.camera_weight, 4.0])
@pytest.mark.parametrize("dense", [(3, 4, 5), (0, 3, 4, 5), (1, 4, 5)])
def test_depth_on_the_new_and_a_few_shared_frames_aligns_like_depth_on_all(straight, camera_weight, dense):
    """Noise-free, the window frame's true place in the world is known; every choice of depth frames (one or two
    shared ones besides the new frames 4, 5) and any weight of the shared cameras, pixels only (0) included,
    must find it. Tolerance: the network's outputs are float32 (relative rounding 6e-8 on depth, pose and focal
    length); the errors measured are below 4e-8, and 1e-6 still catches any real misalignment (one pixel of this
    42-pixel-wide image is 3e-2 rad)."""
    oracle = FakeVGGTForWorldTests(straight, noise=NO_NOISE)
    first, second = tuple(range(0, 12, 2)), tuple(range(4, 16, 2))
    true = compose_similarity(
        oracle.predict(first).window_from_scene, invert_similarity(oracle.predict(second).window_from_scene)
    )
    results = []
    for frames in (dense, range(6)):
        world = World(WorldConfig(camera_weight=camera_weight))
        world.integrate(window_products(oracle, first))
        results.append(world.integrate(window_products(oracle, second, dense=frames)))
    subset, everything = results
    assert subset.status is WindowStatus.MERGED and subset.inlier_ratio == 1.0
    assert subset.shared_frames == frame_ids(straight, [second[i] for i in dense if i < 4])
    assert np.abs(subset.world_from_window - true).max() < 1e-6
    assert np.abs(subset.world_from_window - everything.world_from_window).max() < 1e-6
    assert np.abs(subset.world_from_camera - everything.world_from_camera).max() < 1e-6


# --- bad cases --------------------------------------------------------------------------------------------


def test_window_without_overlap_is_rejected_and_changes_nothing(straight):
    world = World()
    oracle = FakeVGGTForWorldTests(straight)
    _chain(world, oracle, [0, 4])
    trajectory, held = world.trajectory(), {k: v.points.copy() for k, v in world.samples.items()}
    result = world.integrate(window_products(oracle, range(100, 112, 2)))
    assert result.status is WindowStatus.REJECTED and result.cause == "no_overlap"
    assert "0 of the window's frames" in result.reason
    assert result.world_from_window is None and result.placed is None and not result.new_frames.any()
    after = world.trajectory()
    assert after.frame_ids == trajectory.frame_ids
    assert np.array_equal(after.world_from_camera, trajectory.world_from_camera)
    assert held.keys() == world.samples.keys()
    assert all(np.array_equal(world.samples[k].points, points) for k, points in held.items())
    assert world.counters.rejections["no_overlap"] == 1
    # Tracking goes on: the next overlapping window merges.
    assert world.integrate(window_products(oracle, range(8, 20, 2))).status is WindowStatus.MERGED


def test_pure_rotation_is_merged_correctly():
    # The camera pans 150 degrees on the spot, with pitch sway: no translation, no baseline at all.
    yaw = np.radians(np.linspace(0, 150, 80))
    pitch = 0.1 * np.sin(np.linspace(0, 4 * np.pi, 80))
    directions = np.stack((np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)), axis=1)
    seq = render_poses("pan", look_at(np.tile([0.5, 0.2, -0.5], (80, 1)), directions), HW)
    run = run_chaining(seq, WINDOWS)
    assert run.world.counters.rejected == 0 and run.world.counters.merged >= 8
    trajectory = run.world.trajectory()
    ids = _indices(seq, trajectory.frame_ids)
    true_rotation = seq.extrinsics[0][:, :3] @ np.transpose(seq.extrinsics[ids][:, :, :3], (0, 2, 1))
    # The fake network turns each camera by 0.1 deg of noise; chained over the pan that adds up to about 1 deg.
    assert max(_angle_deg(a, b) for a, b in zip(trajectory.world_from_camera[:, :3, :3], true_rotation)) < 1.5
    # All cameras stay at the first one's centre, up to the fake network's pose noise (0.002 world units per axis,
    # the world unit being about the scene's mean depth).
    assert np.linalg.norm(trajectory.world_from_camera[:, :3, 3], axis=1).max() < 0.02
    first = run.oracle.answers[run.windows[0][0]]
    assert _map_error_pct(run.map, first, seq.room) < 0.5


def test_static_camera_is_merged_in_place_and_the_map_does_not_pile_up():
    seq = render_poses("static", np.repeat(camera_path("straight", 200)[100:101], 30, axis=0), HW)
    # Every frame the same: the recommended keyframe policy keeps only the first one...
    assert len(run_chaining(seq, WINDOWS).windows) == 1
    # ...and without it, 30 identical windows still merge in place,
    run = run_chaining(seq, WindowConfig(8, 1, KeyframePolicy()))
    assert run.world.counters.merged == 30 and run.world.counters.rejected == 0
    trajectory = run.world.trajectory()
    assert len(trajectory.frame_ids) == 30
    assert np.linalg.norm(trajectory.world_from_camera[:, :3, 3], axis=1).max() < 0.02
    # Each window passes on the pose noise of the shared frames it aligns through (0.1 deg per axis and frame,
    # about 0.15 deg per window measured): a random walk of about 0.8 deg over the 29 windows after the first.
    assert max(_angle_deg(r, np.eye(3)) for r in trajectory.world_from_camera[:, :3, :3]) < 1.5
    # but only the first frame has parallax, so the map holds that one view once, not 30 noisy copies of it.
    assert [int(r.map_frames.sum()) for _, r in run.windows] == [1] + [0] * 29
    # The test double recognises frames by their image, and all 30 are the same: the first window's answer is the
    # first one it gave, whichever frame index it took the image for.
    first = next(iter(run.oracle.answers.values()))
    assert 0 < len(run.map) <= seq.depth[0].size
    assert _map_error_pct(run.map, first, seq.room) < 0.5


def test_sudden_jump_is_rejected_then_starts_a_new_segment(straight):
    """Through the whole path: windows of frames the world holds, which the network saw 100 frames (2.5 units)
    further along, are rejected without touching the world or the map, until tracking is declared lost."""
    oracle = FakeVGGTForWorldTests(straight)
    session = _session(straight, oracle, WorldConfig(max_consecutive_rejections=3))
    world, growing_map = session.world, session.map
    for start in range(0, 20, 2):
        assert _run_window(session, straight, range(start, start + 12, 2)).merged
    trajectory, map_points, version = world.trajectory(), growing_map.points.copy(), growing_map.version
    first_window = oracle.answers[tuple(range(0, 12, 2))]

    def jumped(start):
        indices = tuple(range(start, start + 12, 2))
        return _run_window(session, straight, indices, oracle.predict(indices, rendered_as=[k + 100 for k in indices]))

    for attempt in range(3):
        output = jumped(20 + 2 * attempt)
        assert output.status is WindowStatus.REJECTED and output.cloud is None and not output.map_reset
        assert output.result.cause in {"inliers", "residual", "camera_mismatch"}, output.reason
        assert world.trajectory().frame_ids == trajectory.frame_ids
        assert np.array_equal(growing_map.points, map_points) and growing_map.version == version
    assert world.counters.rejected == 3

    # The fourth starts a new segment, re-anchored on its first frame with depth, frame 26, which the world holds:
    # frame 26 keeps its world pose, and the window is scaled so that the depth it gives frame 26 (having seen
    # frame 126) has the median depth frame 26 has in the world.
    anchor = frame_ids(straight, [26])[0]
    anchor_pose = trajectory.world_from_camera[trajectory.frame_ids.index(anchor)]
    output = jumped(26)
    result = output.result
    assert result.status is WindowStatus.NEW_SEGMENT and result.segment == 1 and "tracking lost" in result.reason
    assert result.frame_ids[0] == anchor
    assert np.allclose(result.world_from_camera[0], anchor_pose, atol=1e-9)
    # World units per scene unit: the first window's normalisation (the noisy chain drifts < 1 %); the window's
    # frame 0 is frame 126. Medians over different pixel sets (the stored sample, all pixels) differ by ~1 %.
    true_depth_scale = (
        first_window.normalization
        * np.median(straight.depth[26])
        / (oracle.answers[tuple(range(26, 38, 2))].normalization * np.median(straight.depth[126]))
    )
    assert result.depth_scale == pytest.approx(true_depth_scale, rel=0.03)
    new_trajectory = world.trajectory()
    assert new_trajectory.frame_ids[: len(trajectory.frame_ids)] == trajectory.frame_ids
    assert set(new_trajectory.segment[len(trajectory.frame_ids) :]) == {1}
    assert set(world.samples) == set(new_trajectory.frame_ids[len(trajectory.frame_ids) :])
    assert world.counters.segments == 2
    # The map starts over with the new segment's points.
    assert output.map_reset and 0 < len(growing_map) <= len(output.cloud.points)


def test_one_frame_the_network_got_wrong_is_left_out_and_tracking_goes_on(straight):
    """Window 5 places its new frame 20 one unit sideways, a fifth of the path's length (the network got that one
    frame wrong, as on a blurred image). Nothing can check a new frame, so it merges; every later window shares it
    as the newest frame the world holds, and failed its alignment: three rejections, then tracking lost and a new
    segment (the map cleared) for one frame. Now the next window aligns without it, through the frames earlier
    windows confirmed."""

    def run(corrupt_at: int):
        oracle = FakeVGGTForWorldTests(straight)
        session = _session(straight, oracle, WorldConfig(max_consecutive_rejections=3))
        outputs = []
        for start in range(0, 30, 2):
            indices = tuple(range(start, start + 12, 2))
            answer = oracle.predict(indices)
            if start == corrupt_at:
                extrinsics = answer.extrinsics.copy()
                extrinsics[-1, 0, 3] += 1.0 * answer.normalization  # 1 scene unit sideways, newest frame only
                answer = dataclasses.replace(answer, extrinsics=extrinsics)
            outputs.append(_run_window(session, straight, indices, answer))
        return session, outputs

    clean_session, clean = run(corrupt_at=-1)
    session, outputs = run(corrupt_at=10)
    bad_frame = frame_ids(straight, [20])[0]
    assert [o.status for o in outputs] == [WindowStatus.INITIALIZED] + [WindowStatus.MERGED] * 14
    assert bad_frame in outputs[5].result.frame_ids and outputs[5].result.new_frames[-1]
    note = outputs[6].reason
    assert f"frames [FrameId(stamp_ns={bad_frame[0]}, camera=0)]" in note, note
    assert "pixel pairs agree with the best alignment" in note and "left out of the alignments from now on" in note
    assert session.world.counters.frames_left_out == 1 and session.world.counters.segments == 1
    assert bad_frame not in session.world.samples
    assert not any(o.map_reset for o in outputs[1:])
    # The windows after it chain as without the bad frame: their new frames land where the clean run put them.
    trajectory, clean_trajectory = session.world.trajectory(), clean_session.world.trajectory()
    later = [i for i, f in enumerate(clean_trajectory.frame_ids) if f[0] > bad_frame[0]]
    offsets = [
        np.linalg.norm(
            trajectory.world_from_camera[trajectory.frame_ids.index(clean_trajectory.frame_ids[i])][:3, 3]
            - clean_trajectory.world_from_camera[i][:3, 3]
        )
        for i in later
    ]
    assert max(offsets) < 0.02, offsets


def test_a_save_after_tracking_was_lost_says_which_segments_the_map_leaves_out(straight, tmp_path):
    """~/save after tracking was lost (loop closure off) wrote map.ply with the new segment's points only and said
    nothing of it; the trajectory kept both segments."""
    import logging

    from vggt_ros.live.log_policy import LogPolicy
    from vggt_ros.live.reconstruction import LiveReconstruction
    from vggt_ros.live.saving import save_world

    oracle = FakeVGGTForWorldTests(straight)
    session = _session(straight, oracle, WorldConfig(max_consecutive_rejections=2))
    for start in range(0, 10, 2):
        assert _run_window(session, straight, range(start, start + 12, 2)).merged
    for start in (10, 12, 14):  # frames the world holds, seen 100 frames further along (as in the test above)
        indices = tuple(range(start, start + 12, 2))
        jumped = oracle.predict(indices, rendered_as=[k + 100 for k in indices])
        output = _run_window(session, straight, indices, jumped)
    assert output.status is WindowStatus.NEW_SEGMENT and session.world.segment == 1
    live = LiveReconstruction(session, LogPolicy(logging.getLogger("test")), "vggt_world", 0, False)
    saved = save_world(live, tmp_path)
    assert saved.segments_left_out == (0,) and saved.map_points > 0
    assert "map.ply holds tracking segment 1 (with those loops joined to it) only: segments [0] were left out" in (
        saved.message()
    )
    trajectory = (tmp_path / "trajectory.tum").read_text()
    assert "# segment 0" in trajectory and "# segment 1" in trajectory


def test_lost_tracking_without_shared_frames_re_anchors_at_the_last_keyframe(straight):
    world = World(WorldConfig(max_consecutive_rejections=2))
    oracle = FakeVGGTForWorldTests(straight, noise=NO_NOISE)
    _chain(world, oracle, [0, 4])
    last = world.trajectory().world_from_camera[-1]  # frame 14
    for start in (100, 102):
        assert world.integrate(window_products(oracle, range(start, start + 12, 2))).cause == "no_overlap"
    products = window_products(oracle, range(104, 116, 2))
    result = world.integrate(products)
    assert result.status is WindowStatus.NEW_SEGMENT and result.new_frames.all()
    assert np.allclose(result.world_from_camera[0], last, atol=1e-9)
    # Frame 104 is put at frame 14's depth: world units per scene unit (exact: noise-free) times frame 14's true
    # median depth, up to the median over a sample of frame 14's pixels rather than all.
    world_units = oracle.answers[tuple(range(0, 12, 2))].normalization
    expected = (
        world_units
        * np.median(straight.depth[14])
        / float(products.depth[0][usable_pixels(products.depth, products.confidence)[0]].median())
    )
    assert result.depth_scale == pytest.approx(expected, rel=0.01)
    assert world.trajectory().segment[-6:].tolist() == [1] * 6 and world.counters.segments == 2


def test_a_real_jump_the_network_resolves_is_merged_through_the_shared_frames(straight):
    world = World()
    oracle = FakeVGGTForWorldTests(straight)
    _chain(world, oracle, [0, 4])
    # The camera jumped from frame 14 to 120; the window still holds frames the world knows.
    result = world.integrate(window_products(oracle, [10, 12, 14, 120, 122, 124]))
    assert result.status is WindowStatus.MERGED
    # Where frame 120 lands agrees with the ground truth through the first window's gauge.
    first = oracle.answers[tuple(range(0, 12, 2))]
    true_centre = transform_points(first.window_from_scene, straight.centres[120:121])[0]
    assert np.linalg.norm(result.world_from_camera[3, :3, 3] - true_centre) < 0.02 * np.linalg.norm(true_centre)


def test_nan_and_inf_from_the_network_are_rejected_or_masked(straight):
    world = World()
    oracle = FakeVGGTForWorldTests(straight)

    # NaN in the very first window: nothing is defined, the next good window defines the world.
    bad_first = oracle.predict(range(0, 12, 2))
    nan_pose = dataclasses.replace(bad_first, extrinsics=bad_first.extrinsics.copy())
    nan_pose.extrinsics[2, 1, 3] = np.nan
    result = world.integrate(decode_answer(nan_pose, straight))
    assert result.status is WindowStatus.REJECTED and result.cause == "non_finite_camera"
    assert repr([frame_ids(straight, [4])[0]]) in result.reason
    assert world.is_empty
    assert world.integrate(decode_answer(bad_first, straight)).status is WindowStatus.INITIALIZED

    # Inf / NaN / negative depth and NaN confidence on some pixels: masked, merged, accurate, nothing non-finite.
    clean = oracle.predict(range(4, 16, 2))
    rng = np.random.default_rng(0)
    depth, conf = clean.depth.copy(), clean.confidence.copy()
    holes = rng.random(depth.shape) < 0.15
    depth[holes] = rng.choice([np.inf, -np.inf, np.nan, -1.0], size=int(holes.sum()))
    conf[rng.random(conf.shape) < 0.05] = np.nan
    holed = dataclasses.replace(clean, depth=depth, confidence=conf)
    products = decode_answer(holed, straight)
    unusable = holes | np.isnan(conf)
    assert np.array_equal(usable_pixels(products.depth, products.confidence).numpy(), ~unusable)
    result = world.integrate(products)
    assert result.status is WindowStatus.MERGED
    assert np.array_equal(torch.isnan(result.placed.depth).numpy(), unusable[[4, 5]])
    assert np.array_equal(torch.isnan(result.placed.points).any(dim=-1).numpy(), unusable[[4, 5]])
    unharmed = World()
    unharmed.integrate(decode_answer(bad_first, straight))
    clean_result = unharmed.integrate(decode_answer(clean, straight))
    assert np.allclose(result.world_from_camera, clean_result.world_from_camera, atol=2e-3)
    assert abs(result.depth_scale / clean_result.depth_scale - 1) < 2e-3

    # Mostly invalid depth: the window is rejected with the share of bad pixels.
    ruined = dataclasses.replace(clean, depth=np.full_like(clean.depth, np.nan))
    result = world.integrate(decode_answer(ruined, straight))
    assert result.status is WindowStatus.REJECTED and result.cause == "invalid_depth" and "100.0 %" in result.reason

    # Through the whole path the map and the published newest frame get only the usable pixels of such a window.
    session = _session(straight, oracle)
    assert _run_window(session, straight, range(0, 12, 2)).merged
    before = len(session.map)
    output = _run_window(session, straight, range(4, 16, 2), holed)
    assert output.merged and len(session.map) > before and np.isfinite(session.map.points).all()
    assert np.array_equal(np.isnan(output.newest[0].depth), unusable[5])


def test_padding_is_no_invalid_depth_but_holes_within_the_images_are(straight):
    """Frames padded to one model size (a wide camera in pad mode, or mixed shapes): the padding's NaN counted as
    invalid depth, so a window whose images filled a third of the model image was rejected as "67.6 % NaN"."""
    world = World()
    oracle = FakeVGGTForWorldTests(straight)
    _chain(world, oracle, [0])
    height, width = straight.rgb.shape[1:3]
    band = (height * 3 // 10, height * 7 // 10)  # the image fills 40 % of the rows; the rest is padding
    boxes = [(*band, 0, width)] * 6
    padded = world.integrate(decode_answer(oracle.predict(range(4, 16, 2)), straight, image_boxes=boxes))
    assert padded.status is WindowStatus.MERGED, padded.reason
    assert torch.isnan(padded.placed.depth[:, : band[0]]).all() and torch.isnan(padded.placed.depth[:, band[1] :]).all()
    # Holes in 60 % of the image rows within the box: rejected, with the share of the images' pixels.
    answer = oracle.predict(range(8, 20, 2))
    depth = answer.depth.copy()
    depth[:, band[0] : band[0] + (band[1] - band[0]) * 6 // 10] = np.nan
    holed = world.integrate(decode_answer(dataclasses.replace(answer, depth=depth), straight, image_boxes=boxes))
    assert holed.status is WindowStatus.REJECTED and holed.cause == "invalid_depth"
    share = float(holed.reason.split(" %")[0])
    assert 50.0 < share < 65.0 and "of the depth pixels within the images" in holed.reason  # 60 %, on the grid


@pytest.mark.parametrize("huge", [3e38, 1e20])
def test_depth_too_large_to_place_is_masked_and_later_windows_still_merge(straight, huge):
    """A few depth pixels near float32's largest value (the depth head's exp overflowing) are finite, but their
    world points were not: the alignment stored Inf samples, and every later window failed in the alignment."""
    world = World()
    oracle = FakeVGGTForWorldTests(straight)
    assert world.integrate(window_products(oracle, range(0, 12, 2))).status is WindowStatus.INITIALIZED
    clean = oracle.predict(range(4, 16, 2))
    depth = clean.depth.copy()
    depth[-1, ::3, ::3] = huge
    products = decode_answer(dataclasses.replace(clean, depth=depth), straight)
    assert not usable_pixels(products.depth, products.confidence)[-1, ::3, ::3].any()
    result = world.integrate(products)
    assert result.status is WindowStatus.MERGED
    assert not torch.isinf(result.placed.points).any() and torch.isnan(result.placed.depth[-1, ::3, ::3]).all()
    assert all(np.isfinite(samples.points).all() for samples in world.samples.values())
    for start in (8, 12, 16):
        assert world.integrate(window_products(oracle, range(start, start + 12, 2))).status is WindowStatus.MERGED


def test_reset_starts_a_new_world(straight):
    world = World()
    oracle = FakeVGGTForWorldTests(straight)
    _chain(world, oracle, [0, 4])
    world.reset()
    assert world.is_empty and world.counters.windows == 0 and world.trajectory().frame_ids == ()
    assert len(world.samples) == 0
    assert world.integrate(window_products(oracle, range(40, 52, 2))).status is WindowStatus.INITIALIZED


# --- a rig of cameras ------------------------------------------------------------------------------------------------


def _rig_world(camera_from_camera0: list, frame_sets: int, path: str = "loop", still: bool = False, **config):
    """A world fed by a rig test double: camera c at ``camera_from_camera0[c - 1]`` (rigid ``(4, 4)``) from camera
    0, which follows ``path`` (or stands at its first pose), windows of 4 frame sets answered exactly. Returns the
    world and ``integrate(first frame set)`` for windows [first, first + 4)."""
    extrinsics = camera_path(path, frame_sets)
    if still:
        extrinsics = np.repeat(extrinsics[:1], frame_sets, axis=0)
    cameras = [extrinsics] + [compose_rigid(offset[:3], extrinsics) for offset in camera_from_camera0]
    count = len(cameras)
    sequence = render_poses("rig", np.stack(cameras, 1).reshape(-1, 3, 4), (42, 56))
    oracle = FakeVGGTForWorldTests(sequence, noise=NO_NOISE)
    stamps = np.arange(frame_sets) * 100_000_000
    world = World(WorldConfig(retained_frames=4 * count, trajectory_recent=16 * count, **config))

    def integrate(first: int):
        indices = [count * t + c for t in range(first, first + 4) for c in range(count)]
        ids = [FrameId(int(stamps[i // count]), i % count) for i in indices]
        dense = list(range(len(indices)))
        outputs = network_outputs(oracle.predict(indices), dense)
        times = [stamps[i // count] * 1e-9 for i in indices]
        return world.integrate(decode_window(outputs, ids, times, dense, torch.from_numpy(sequence.rgb[indices])))

    return world, integrate


def _offset(x: float, yaw_deg: float = 0.0) -> np.ndarray:
    """camera_from_camera0 ``(4, 4)`` of a rig camera ``x`` to the right of camera 0, turned by ``yaw_deg``."""
    camera0_from_camera = np.eye(4)
    camera0_from_camera[:3, :3] = _axis_angle_to_matrix(np.array([0.0, math.radians(yaw_deg), 0.0]))
    camera0_from_camera[0, 3] = x
    return np.linalg.inv(camera0_from_camera)


def test_a_still_rig_adds_its_surfaces_to_the_map_once():
    """The parallax test compared each new frame with the last frame marked for the map, whatever its camera: a rig's
    cameras are a baseline apart, so a rig standing still marked every frame (50 of 50), copies of its surfaces."""
    world, integrate = _rig_world([_offset(0.12)], 30, still=True)
    marked = new = 0
    for first in range(26):
        result = integrate(first)
        assert result.merged, result.reason
        if first:
            marked, new = marked + int(result.map_frames.sum()), new + int(result.new_frames.sum())
    assert new == 50 and marked == 0
    assert len(world.loops.map) == 2  # each camera's first frame


def test_a_new_segment_of_a_rig_is_anchored_at_its_own_camera():
    """Tracking lost: the new segment's camera 0 was put at the world's last keyframe, camera 1 of the newest frame
    set (here turned 90 degrees), and took its scale from that camera's depth."""
    world, integrate = _rig_world([_offset(0.1, yaw_deg=90)], 80, loop=LoopConfig(enabled=False))
    for first in range(10):
        assert integrate(first).merged
    anchor = world.keyframes.newest_of_camera(0)
    assert world.keyframes.last.frame_id[1] == 1 and anchor.frame_id[1] == 0
    result = next(r for r in map(integrate, range(40, 46)) if r.status is WindowStatus.NEW_SEGMENT)
    np.testing.assert_allclose(result.world_from_camera[0], anchor.world_from_camera, atol=1e-9)
