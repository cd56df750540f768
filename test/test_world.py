"""World chaining on a synthetic room with ground truth: accuracy targets, and the bad cases (no overlap, pure
rotation, static camera, sudden jump, NaN/Inf) each survive, leave the world and map intact, and say why.

The network is replaced by `FakeVGGTForWorldTests` (ground truth re-expressed per window as VGGT would, plus
noise); everything else (keyframing, windows, decoding, chaining, map) is the real code path."""
import dataclasses

import numpy as np
import pytest

from vggt_ros.geometry import (
    extrinsics_intrinsics_to_pose_encoding,
    invert_rigid,
    invert_similarity,
    transform_points,
    unproject_depth,
)
from vggt_ros.products import CloudConfig, decode_frames
from vggt_ros.reconstruction import ReconstructionConfig, Reconstructor
from vggt_ros.synthetic import (
    NO_NOISE,
    PATHS,
    FakeVGGTForWorldTests,
    camera_path,
    evaluate_chaining,
    look_at,
    render_poses,
    render_sequence,
    run_chaining,
)
from vggt_ros.window import KeyframePolicy, WindowConfig
from vggt_ros.world import World, WorldConfig, WindowStatus

HW = (28, 42)
CLOUD = CloudConfig(confidence_percentile=30.0)
# The recommended chaining set-up (the bench's): windows of 8 keyframes sliding by 1, keyframes at >= 0.07
# grey-level change.
WINDOWS = WindowConfig(8, 1, KeyframePolicy(min_motion=0.07))


@pytest.fixture(scope="module")
def straight():
    return render_sequence("straight", 200, HW)


def _angle_deg(r_a, r_b):
    return np.degrees(2 * np.arcsin(min(1.0, np.linalg.norm(r_a - r_b) / (2 * np.sqrt(2)))))


def _integrate(world, answer, stamps=None):
    return world.integrate(
        answer.frame_indices, answer.extrinsics, answer.intrinsics, answer.depth, answer.confidence, stamps
    )


def _reconstructor(world_config: WorldConfig = WorldConfig()) -> Reconstructor:
    """The node's core without a network: windows come in as network outputs (`Reconstructor.integrate`)."""
    return Reconstructor(pipeline=None, config=ReconstructionConfig(cloud=CLOUD, world=world_config))


def _feed(reconstructor, oracle, indices, sequence, outputs=None):
    """One window through the node's core steps (decode, chain, map); the network's answer unless given."""
    outputs = oracle.model_output(indices) if outputs is None else outputs
    stamps = [sequence.stamps_ns[k] * 1e-9 for k in indices]
    return reconstructor.integrate(outputs, indices, stamps, sequence.rgb[list(indices)], num_new=0).result


def _chain(world, oracle, starts, size=6, step=2):
    """Merge windows [start, start + size*step) every `step` frames; returns the results."""
    return [_integrate(world, oracle.predict(range(s, s + size * step, step))) for s in starts]


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
    frames = decode_frames(noisy.model_output([1, 2, 3]))
    assert np.allclose(invert_rigid(np.stack([f.world_from_camera for f in frames])), a.extrinsics, atol=1e-5)
    assert np.allclose(np.stack([f.intrinsics for f in frames]), a.intrinsics, rtol=1e-5)


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
    lax = WorldConfig(min_inlier_ratio=0.0, inlier_distance_ratio=10.0, max_residual_ratio=10.0,
                      max_camera_offset_ratio=100.0, max_camera_rotation_deg=180.0)
    run = run_chaining(straight, WINDOWS, world_config=lax)
    assert evaluate_chaining(run).wrong_merges == 0
    indices = run.windows[-1][0][1:] + (run.windows[-1][0][-1] + 1,)
    bad = run.oracle.predict(indices, rendered_as=[k - 60 for k in indices])
    run.windows.append((indices, _integrate(run.world, bad)))
    assert run.windows[-1][1].status is WindowStatus.MERGED
    assert evaluate_chaining(run).wrong_merges == 1


# --- the first window, the result, errors -----------------------------------------------------------------


def test_first_window_defines_the_world(straight):
    world = World()
    answer = FakeVGGTForWorldTests(straight).predict([5, 8, 11])
    result = _integrate(world, answer, [0.5, 0.8, 1.1])
    assert result.status is WindowStatus.INITIALIZED and result.merged and result.depth_scale == 1.0
    assert np.allclose(result.camera_to_world[0], np.eye(4))
    assert np.all(result.new_frames) and result.segment == 0
    trajectory = world.trajectory()
    assert trajectory.frame_ids == (5, 8, 11) and np.allclose(trajectory.timestamps, [0.5, 0.8, 1.1])
    # camera_to_world is the inverse of the window's extrinsics (scale 1, world = first camera).
    assert np.allclose(trajectory.camera_to_world[:, :3, :], invert_rigid(answer.extrinsics), atol=1e-12)


def test_merged_poses_follow_the_similarity_and_depth_scale(straight):
    world = World()
    oracle = FakeVGGTForWorldTests(straight, noise=NO_NOISE)
    first, second = _chain(world, oracle, [0, 4])
    assert second.status is WindowStatus.MERGED and second.shared_frames == (4, 6, 8, 10)
    assert list(second.new_frames) == [False, False, False, False, True, True]
    # The true depth scale: window 2 is normalised differently from window 1 (the world's unit).
    ratio = oracle.answers[tuple(range(0, 12, 2))].normalization / oracle.answers[tuple(range(4, 16, 2))].normalization
    # (The network's depth is float32: exact up to its rounding.)
    assert second.depth_scale == pytest.approx(ratio, rel=1e-6)
    assert second.residual_ratio < 1e-6 and second.inlier_ratio == 1.0
    # Frame 4 is in both windows: the same world pose either way.
    assert np.allclose(second.camera_to_world[0], first.camera_to_world[2], atol=1e-6)


def test_malformed_arguments_raise_value_error(straight):
    answer = FakeVGGTForWorldTests(straight).predict([0, 1, 2])
    world = World()
    with pytest.raises(ValueError, match="distinct"):
        world.integrate([0, 0, 2], answer.extrinsics, answer.intrinsics, answer.depth, answer.confidence)
    with pytest.raises(ValueError, match=r"extrinsics must be \(S, 3, 4\)"):
        world.integrate([0, 1], answer.extrinsics, answer.intrinsics, answer.depth, answer.confidence)
    with pytest.raises(ValueError, match="confidence"):
        world.integrate([0, 1, 2], answer.extrinsics, answer.intrinsics, answer.depth, answer.confidence[:, :5])
    with pytest.raises(ValueError, match="timestamps"):
        world.integrate([0, 1, 2], answer.extrinsics, answer.intrinsics, answer.depth, answer.confidence, [0.0])
    with pytest.raises(ValueError, match="min_inlier_ratio"):
        WorldConfig(min_inlier_ratio=1.5)
    assert world.is_empty and world.counters.windows == 0


# --- bad cases --------------------------------------------------------------------------------------------


def test_window_without_overlap_is_rejected_and_changes_nothing(straight):
    reconstructor = _reconstructor()
    world, growing_map = reconstructor.world, reconstructor.map
    oracle = FakeVGGTForWorldTests(straight)
    for start in (0, 4):
        indices = tuple(range(start, start + 12, 2))
        _feed(reconstructor, oracle, indices, straight)
    before = (world.trajectory(), len(growing_map), growing_map.version)
    far = tuple(range(100, 112, 2))
    result = _feed(reconstructor, oracle, far, straight)
    assert result.status is WindowStatus.REJECTED and result.cause == "no_overlap"
    assert "0 of the window's frames" in result.reason
    assert result.world_from_window is None and not result.new_frames.any()
    after = world.trajectory()
    assert after.frame_ids == before[0].frame_ids and np.array_equal(after.camera_to_world, before[0].camera_to_world)
    assert (len(growing_map), growing_map.version) == before[1:]
    assert world.counters.rejections["no_overlap"] == 1
    # Tracking goes on: the next overlapping window merges.
    assert _integrate(world, oracle.predict(range(8, 20, 2))).status is WindowStatus.MERGED


def test_pure_rotation_is_merged_correctly():
    # The camera pans 150 degrees on the spot, with pitch sway: no translation, no baseline at all.
    yaw = np.radians(np.linspace(0, 150, 80))
    pitch = 0.1 * np.sin(np.linspace(0, 4 * np.pi, 80))
    directions = np.stack((np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)), axis=1)
    seq = render_poses("pan", look_at(np.tile([0.5, 0.2, -0.5], (80, 1)), directions), HW)
    run = run_chaining(seq, WINDOWS)
    assert run.world.counters.rejected == 0 and run.world.counters.merged >= 8
    trajectory = run.world.trajectory()
    ids = np.array(trajectory.frame_ids)
    true_rotation = seq.extrinsics[0][:, :3] @ np.transpose(seq.extrinsics[ids][:, :, :3], (0, 2, 1))
    # The fake network turns each camera by 0.1 deg of noise; chained over the pan that adds up to about 1 deg.
    assert max(_angle_deg(a, b) for a, b in zip(trajectory.camera_to_world[:, :3, :3], true_rotation)) < 1.5
    # All cameras stay at the first one's centre, up to the fake network's pose noise (0.002 world units per axis,
    # the world unit being about the scene's mean depth).
    assert np.linalg.norm(trajectory.camera_to_world[:, :3, 3], axis=1).max() < 0.02
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
    assert np.linalg.norm(trajectory.camera_to_world[:, :3, 3], axis=1).max() < 0.02
    assert max(_angle_deg(r, np.eye(3)) for r in trajectory.camera_to_world[:, :3, :3]) < 0.5
    # but only the first frame has parallax, so the map holds that one view once, not 30 noisy copies of it.
    assert [int(r.map_frames.sum()) for _, r in run.windows] == [1] + [0] * 29
    first = run.oracle.answers[run.windows[0][0]]
    assert 0 < len(run.map) <= seq.depth[0].size
    assert _map_error_pct(run.map, first, seq.room) < 0.5


def test_sudden_jump_is_rejected_then_starts_a_new_segment(straight):
    reconstructor = _reconstructor(WorldConfig(max_consecutive_rejections=3))
    world, growing_map = reconstructor.world, reconstructor.map
    oracle = FakeVGGTForWorldTests(straight)
    for start in range(0, 20, 2):
        indices = tuple(range(start, start + 12, 2))
        assert _feed(reconstructor, oracle, indices, straight).merged
    trajectory, map_points, version = world.trajectory(), growing_map.points.copy(), growing_map.version

    def jumped(start):
        # Frame ids the world knows, but what the network saw is 100 frames (2.5 units) further along.
        indices = tuple(range(start, start + 12, 2))
        answer = oracle.predict(indices, rendered_as=[k + 100 for k in indices])
        return _integrate(world, answer)

    for attempt in range(3):
        result = jumped(20 + 2 * attempt)
        assert result.status is WindowStatus.REJECTED
        assert result.cause in {"inliers", "residual", "camera_mismatch"}, result.reason
        assert world.trajectory().frame_ids == trajectory.frame_ids
        assert np.array_equal(growing_map.points, map_points) and growing_map.version == version
    assert world.counters.rejected == 3

    result = jumped(26)
    assert result.status is WindowStatus.NEW_SEGMENT and result.segment == 1 and "tracking lost" in result.reason
    # Re-anchored where the world last was: the new segment's first camera sits on the last keyframe.
    assert np.allclose(result.camera_to_world[0], trajectory.camera_to_world[-1], atol=1e-9)
    new_trajectory = world.trajectory()
    assert new_trajectory.frame_ids[: len(trajectory.frame_ids)] == trajectory.frame_ids
    assert set(new_trajectory.segment[len(trajectory.frame_ids):]) == {1}
    assert world.counters.segments == 2


def test_a_real_jump_the_network_resolves_is_merged_through_the_shared_frames(straight):
    world = World()
    oracle = FakeVGGTForWorldTests(straight)
    _chain(world, oracle, [0, 4])
    # The camera jumped from frame 14 to 120; the window still holds frames the world knows.
    result = _integrate(world, oracle.predict([10, 12, 14, 120, 122, 124]))
    assert result.status is WindowStatus.MERGED
    # Where frame 120 lands agrees with the ground truth through the first window's gauge.
    first = oracle.answers[tuple(range(0, 12, 2))]
    true_centre = transform_points(first.window_from_scene, straight.centres[120:121])[0]
    assert np.linalg.norm(result.camera_to_world[3, :3, 3] - true_centre) < 0.02 * np.linalg.norm(true_centre)


def test_nan_and_inf_from_the_network_are_rejected_or_masked(straight):
    world = World()
    oracle = FakeVGGTForWorldTests(straight)

    # NaN in the very first window: nothing is defined, the next good window defines the world.
    bad_first = oracle.predict(range(0, 12, 2))
    nan_pose = dataclasses.replace(bad_first, extrinsics=bad_first.extrinsics.copy())
    nan_pose.extrinsics[2, 1, 3] = np.nan
    result = _integrate(world, nan_pose)
    assert result.status is WindowStatus.REJECTED and result.cause == "non_finite_camera" and "[4]" in result.reason
    assert world.is_empty
    assert _integrate(world, bad_first).status is WindowStatus.INITIALIZED

    # Inf / NaN / negative depth and NaN confidence on some pixels: masked, merged, accurate, nothing non-finite.
    clean = oracle.predict(range(4, 16, 2))
    rng = np.random.default_rng(0)
    depth, conf = clean.depth.copy(), clean.confidence.copy()
    holes = rng.random(depth.shape) < 0.15
    depth[holes] = rng.choice([np.inf, -np.inf, np.nan, -1.0], size=int(holes.sum()))
    conf[rng.random(conf.shape) < 0.05] = np.nan
    holed = dataclasses.replace(clean, depth=depth, confidence=conf)
    result = _integrate(world, holed)
    assert result.status is WindowStatus.MERGED
    assert not result.valid[holes].any() and result.valid.mean() > 0.75
    unharmed = World()
    _integrate(unharmed, bad_first)
    clean_result = _integrate(unharmed, clean)
    assert np.allclose(result.camera_to_world, clean_result.camera_to_world, atol=2e-3)
    assert abs(result.depth_scale / clean_result.depth_scale - 1) < 2e-3

    # Through the node's path the map gets only finite points from such a window.
    outputs = {
        "pose_enc": extrinsics_intrinsics_to_pose_encoding(clean.extrinsics, clean.intrinsics, HW)[None],
        "depth": depth[None, ..., None],
        "depth_conf": conf[None],
    }
    reconstructor = _reconstructor()
    growing_map = reconstructor.map
    first = tuple(range(0, 12, 2))
    _feed(reconstructor, oracle, first, straight)
    before = len(growing_map)
    indices = tuple(range(4, 16, 2))
    assert _feed(reconstructor, oracle, indices, straight, outputs=outputs).merged
    assert len(growing_map) > before and np.isfinite(growing_map.points).all()

    # Mostly invalid depth: the window is rejected with the share of bad pixels.
    ruined = dataclasses.replace(clean, depth=np.full_like(clean.depth, np.nan))
    result = _integrate(world, ruined)
    assert result.status is WindowStatus.REJECTED and result.cause == "invalid_depth" and "100.0 %" in result.reason


def test_reset_starts_a_new_world(straight):
    world = World()
    oracle = FakeVGGTForWorldTests(straight)
    _chain(world, oracle, [0, 4])
    world.reset()
    assert world.is_empty and world.counters.windows == 0 and world.trajectory().frame_ids == ()
    assert _integrate(world, oracle.predict(range(40, 52, 2))).status is WindowStatus.INITIALIZED
