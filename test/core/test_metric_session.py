# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The metric scale sources through a whole `ReconstructionSession` on the synthetic room, whose unit is the metre.

Each source is fed by a realistic, seeded test double of its sensor (`support.metric_synthetic`: a depth camera
with distance-dependent noise, holes, a range limit and flying pixels; a two-camera rig with a 12 cm baseline on
/tf_static; drifting wheel odometry on TF) and the network by `FakePipelineForWorldTests`. The tests check what a
user of the node sees: the published depth and camera positions in metres against the truth, nothing published
before the scale is known, and, for each kind of bad input (depth missing, all NaN, out of range, of another
resolution; the rig's calibration missing or its frames renamed; the odometry jumping or the robot standing still),
the reason the window gives, a published camera that never jumps, and the last good scale kept.
"""

import math

import numpy as np
import pytest

from support.metric_synthetic import (
    BASE_FROM_CAMERA,
    CAMERA_FRAMES,
    ODOM_FRAME,
    DepthSensorConfig,
    FakeDepthSensorForTests,
    FakeOdometryForTests,
    OdometryConfig,
    evaluate_metric,
    feed,
    metric_session_config,
    newest_position,
    observation_bound,
    published_depth_ratio,
    render_rig,
    rig_camera1_pose,
    run_metric_session,
    single_camera,
    start_metric_session,
)
from support.synthetic import NO_NOISE, camera_path, look_at
from vggt_ros.geometry import invert_rigid
from vggt_ros.live.sync import NearestStampQueue
from vggt_ros.mapping import EmptyMapError
from vggt_ros.metric.config import MetricConfig
from vggt_ros.metric.scale_filter import ScaleFilterConfig
from vggt_ros.metric.sources import DepthScaleConfig, ScaleObservation, ScaleUnavailable
from vggt_ros.metric.tf_buffer import TransformBuffer
from vggt_ros.window import KeyframePolicy, WindowConfig
from vggt_ros.world import WorldConfig

HW = (28, 42)
# The rig's scale comes from stereo alignment of its two images, which needs more than the 1.5-pixel disparity a 12 cm
# baseline has at 42 pixels (point-sampled textures alias there: 1 - 4 % per frame set): the bench's size.
RIG_HW = (56, 84)
# The bench's chaining set-up (bench/world_chaining.py): windows of 8 keyframes sliding by 1.
WINDOWS = WindowConfig(8, 1, KeyframePolicy(min_motion=0.07))
# Small images have ~1200 pixels a frame, a third of them within the sensor's range and confident enough.
DEPTH = MetricConfig("depth", depth=DepthScaleConfig(min_pixels=200))
# A published camera moves between windows by the true motion, give or take its pose noise (1 - 2 cm here);
# beyond this (metres) it jumped.
JUMP_BOUND_M = 0.05
# Without a scale observation the published scale may only change by the chaining's own noise (< 1 % a window).
KEPT_SCALE = 0.015


@pytest.fixture(scope="module")
def straight():
    """Camera 0 along the straight path, 100 frames (5 m in 200 frames: 2.5 m here), one camera."""
    return single_camera("straight", camera_path("straight", 200)[:100], HW)


def _kind(output):
    scale = output.scale
    return scale.kind if isinstance(scale, ScaleUnavailable) else scale.source


def _assert_no_jump(frames, windows):
    """Between consecutive published windows camera 0 moves by its true motion, within `JUMP_BOUND_M`."""
    published = [(t, out) for t, out in windows if out.newest]
    assert len(published) >= 2, "too few windows published"
    true_centres = frames.sequence.centres[frames.indices[:, 0]]
    for (t_a, a), (t_b, b) in zip(published, published[1:]):
        moved = np.linalg.norm(newest_position(b) - newest_position(a))
        true_moved = np.linalg.norm(true_centres[t_b] - true_centres[t_a])
        assert abs(moved - true_moved) < JUMP_BOUND_M, f"camera 0 jumped between frame sets {t_a} and {t_b}"


def _assert_steady(frames, windows, reference_ratio):
    """No jump (`_assert_no_jump`), and every window's published depth keeps ``reference_ratio`` to the truth (the
    last good scale) within `KEPT_SCALE`."""
    _assert_no_jump(frames, windows)
    ratios = np.array([published_depth_ratio(frames, out) for _, out in windows if out.newest])
    assert np.abs(ratios / reference_ratio - 1.0).max() < KEPT_SCALE


# --- the sensors' test doubles --------------------------------------------------------------------------------


def test_fake_depth_sensor_errs_like_a_stereo_camera(straight):
    # The room seen from this path lies 2.3 - 5.4 m away: the range cuts off both ends.
    config = DepthSensorConfig(
        noise_per_m=0.002, hole_fraction=0.08, min_range_m=2.5, max_range_m=5.0, flying_fraction=1.0
    )
    sensor = FakeDepthSensorForTests(straight, config, seed=3)
    truth = straight.sequence.depth[:40]
    readings = np.stack([sensor(0, int(stamp)) for stamp in straight.stamps_ns[:40]])
    assert readings.dtype == np.float32 and readings.shape == truth.shape
    assert np.array_equal(readings[5], sensor.reading(5), equal_nan=True)  # the same frame reads the same
    measured = np.isfinite(readings)
    # Edge pixels: the true depths of a pixel and its 4-neighbours span more than edge_jump_m.
    padded = np.pad(truth, ((0, 0), (1, 1), (1, 1)), mode="edge")
    around = np.stack((truth, padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]))
    edge = around.max(axis=0) - around.min(axis=0) > config.edge_jump_m
    assert np.nanmin(readings) >= 2.5 and np.nanmax(readings) <= 5.0
    # The range applies to the noisy depth: beyond 4 sigmas of the limits nothing is read.
    assert not measured[(truth > 5.25) & ~edge].any() and not measured[(truth < 2.45) & ~edge].any()
    assert measured[(truth > 2.55) & (truth < 4.95) & ~edge].mean() > 0.85
    # Millimetre quantisation, as the 16UC1 encoding carries it.
    assert np.allclose(readings[measured] * 1000.0, np.round(readings[measured] * 1000.0), atol=1e-3)
    # Holes: the fraction of in-range, non-edge pixels without a reading.
    inside = (truth > 2.6) & (truth < 4.8) & ~edge
    assert 1.0 - measured[inside].mean() == pytest.approx(0.08, abs=0.015)
    # Noise grows with the square of the distance: sigma / z^2 is k near and far.
    error = (readings - truth)[inside & measured]
    depth = truth[inside & measured]
    for near, far in ((2.6, 3.7), (4.2, 4.8)):
        band = (depth >= near) & (depth < far)
        assert np.std(error[band] / depth[band] ** 2) == pytest.approx(0.002, rel=0.15)
    # Flying pixels: every edge pixel that was read lies between the surfaces around it, most on none of them.
    tolerance = 5.0 * config.noise_per_m * truth**2 + 0.001  # 5 sigma and a millimetre
    off_surface = np.abs(readings - truth) > tolerance
    assert off_surface[measured & ~edge].mean() < 1e-3
    assert off_surface[measured & edge].mean() > 0.5
    between = (readings >= around.min(axis=0) - tolerance) & (readings <= around.max(axis=0) + tolerance)
    assert between[measured & edge].all()


def test_rig_renders_camera_1_at_the_baseline():
    rig = render_rig("straight", camera_path("straight", 200)[:10], HW, baseline_m=0.12)
    world_from_camera = invert_rigid(rig.sequence.extrinsics)
    for t in range(len(rig)):
        camera0, camera1 = world_from_camera[rig.indices[t]]
        # Camera 1 sits 0.12 m along camera 0's x axis (to its right), with the same orientation.
        assert np.allclose(camera1[:, 3] - camera0[:, 3], 0.12 * camera0[:, 0], atol=1e-12)
        assert np.allclose(camera1[:, :3], camera0[:, :3], atol=1e-12)
    frame_set = rig.frame_set(4)
    assert frame_set.camera_frames == CAMERA_FRAMES and frame_set.stamps_ns[0] == frame_set.stamps_ns[1]
    assert rig.index_of((int(rig.stamps_ns[4]), 1)) == 9


def test_fake_odometry_reads_long_drifts_and_jumps_as_configured(straight):
    transforms, twin = TransformBuffer(), TransformBuffer()
    jump = (0.3, 0.0, -0.2)
    exact = dict(scale_error=0.02, translation_walk_m=0.0, heading_walk_rad=0.0)
    odometry = FakeOdometryForTests(straight, transforms, OdometryConfig(**exact, jump_at=30, jump_m=jump))
    no_jump = FakeOdometryForTests(straight, twin, OdometryConfig(**exact))
    for t in range(40):
        odometry.publish(t)
        no_jump.publish(t)
    assert np.allclose(transforms.lookup_transform("base_link", CAMERA_FRAMES[0], 0), BASE_FROM_CAMERA)

    def odom_position(buffer, t):
        return buffer.lookup_transform(ODOM_FRAME, CAMERA_FRAMES[0], int(straight.stamps_ns[t]))[:3, 3]

    true_centres = straight.sequence.centres
    # Without noise, camera displacements read 2 % long (the camera turns little on this path).
    for a, b in ((0, 10), (5, 29), (30, 39)):
        assert np.linalg.norm(odom_position(transforms, b) - odom_position(transforms, a)) == pytest.approx(
            1.02 * np.linalg.norm(true_centres[b] - true_centres[a]), rel=0.005
        )
    # The jump offsets every later position by the same vector, and nothing before it.
    assert np.allclose(odom_position(transforms, 29), odom_position(twin, 29), atol=1e-12)
    assert np.allclose(odom_position(transforms, 35) - odom_position(twin, 35), jump, atol=1e-12)

    # With noise, the heading and position random-walk away from the noiseless odometry.
    drifting = TransformBuffer()
    noisy = FakeOdometryForTests(straight, drifting, OdometryConfig(scale_error=0.02), seed=1)
    for t in range(40):
        noisy.publish(t)
    drift = np.linalg.norm(odom_position(drifting, 39) - odom_position(twin, 39))
    assert 1e-3 < drift < 0.05


def test_odometry_cramer_rao_bound_is_the_scatter_of_the_efficient_estimate():
    """`FakeOdometryForTests.scale_sigma_pct`, the bench's limit for any odometry scale estimate, against the wheels
    themselves: over many seeds, the least-squares scale of each run's measured steps (in the base's frame before
    each step, so the heading walk plays no part) on the true steps scatters exactly that much, around 1 +
    scale_error. The rotation path, whose base barely moves, so the bound is large."""
    frames = single_camera("rotation", camera_path("rotation", 200)[:20], HW)
    config = OdometryConfig(scale_error=0.01)
    camera_from_base = np.linalg.inv(BASE_FROM_CAMERA)
    scene_from_base = np.stack([np.linalg.inv(_homogeneous(e)) @ camera_from_base for e in frames.sequence.extrinsics])
    true_steps = np.stack([np.linalg.solve(a, b)[:3, 3] for a, b in zip(scene_from_base, scene_from_base[1:])])
    estimates = []
    for seed in range(400):
        odometry = FakeOdometryForTests(frames, TransformBuffer(), config, seed=seed)
        measured = [np.linalg.solve(a, b)[:3, 3] for a, b in zip(odometry.odom_from_base, odometry.odom_from_base[1:])]
        estimates.append(np.sum(np.stack(measured) * true_steps) / np.sum(true_steps**2))
    sigma_pct = odometry.scale_sigma_pct(len(frames) - 1)
    assert sigma_pct > 1.0  # the base moves about 0.3 m in these 19 steps
    relative = 100.0 * (np.asarray(estimates) / 1.01 - 1.0)
    # 400 samples: the standard deviation within about 3.5 % (1 sigma) of the truth, the mean within sigma / 20.
    assert np.std(relative) == pytest.approx(sigma_pct, rel=0.12)
    assert abs(np.mean(relative)) < 3.0 * sigma_pct / math.sqrt(len(estimates))
    # Information only grows, and no walk leaves nothing to scatter.
    assert odometry.scale_sigma_pct(5) > sigma_pct
    assert (
        FakeOdometryForTests(frames, TransformBuffer(), OdometryConfig(translation_walk_m=0.0)).scale_sigma_pct(5)
        == 0.0
    )


def _homogeneous(rigid):
    """A ``(3, 4)`` rigid transform as ``(4, 4)``."""
    return np.vstack((rigid, [0.0, 0.0, 0.0, 1.0]))


def test_accuracy_of_a_noise_free_run_has_known_answers():
    """The bench's figures on runs whose answer is known: exact (zero errors) and 2 % too large everywhere."""
    frames = single_camera("straight", camera_path("straight", 200)[:60], HW)
    perfect = DepthSensorConfig(noise_per_m=0.0, hole_fraction=0.0, flying_fraction=0.0)
    sensor = FakeDepthSensorForTests(frames, perfect)
    config = metric_session_config(frames, WINDOWS, DEPTH)
    exact = run_metric_session(frames, config, depth_lookup=sensor, noise=NO_NOISE)
    accuracy = evaluate_metric(exact)
    assert accuracy.scale_error_pct < 0.05 and accuracy.trajectory_scale_error_pct < 0.05  # millimetre readings
    assert accuracy.ate_m < 1e-3 and accuracy.map_error_cm < 0.1

    large = run_metric_session(
        frames, config, depth_lookup=lambda camera, stamp_ns: sensor(camera, stamp_ns) * 1.02, noise=NO_NOISE
    )
    accuracy = evaluate_metric(large)
    assert accuracy.scale_error_signed_pct == pytest.approx(2.0, abs=0.05)
    assert accuracy.trajectory_scale_error_pct == pytest.approx(2.0, abs=0.05)
    # A rigid fit of an (almost) straight path 2 % too long: errors grow linearly from its middle, RMS 2 % / sqrt(12)
    # of its length; a Sim(3) fit leaves none.
    assert accuracy.ate_pct_of_path == pytest.approx(2.0 / math.sqrt(12.0), rel=0.1)
    assert evaluate_metric(large, rigid=False).ate_m < 1e-3


def test_information_bound_has_known_answers():
    """The bench's bound (the error of the source's own observations, weighted as the filter weighs them, each
    against its window's truth): for an exact rig, only the stereo alignment's resampling error, and for a rig whose
    baseline is given 2 % long, exactly 2 % more in every window, whatever the world's chaining does."""
    rig = render_rig("straight", camera_path("straight", 200)[:30], RIG_HW)
    runs = {}
    for stated_m in (0.12, 0.1224):
        metric = MetricConfig("rig", rig_transforms=((1, rig_camera1_pose(stated_m)),))
        runs[stated_m] = run = run_metric_session(rig, metric_session_config(rig, WINDOWS, metric), noise=NO_NOISE)
        assert observation_bound(run).size == len(run.windows) and np.isfinite(observation_bound(run)).all()
    exact, long = (observation_bound(runs[m]) for m in (0.12, 0.1224))
    assert np.abs(exact).max() < 1.0  # %: point-sampled images at 84 x 56
    assert np.allclose((1.0 + long / 100.0) / (1.0 + exact / 100.0), 1.02, atol=1e-6)
    for stated_m, expected_ratio in ((0.12, 1.0), (0.1224, 1.02)):
        accuracy = evaluate_metric(runs[stated_m])
        bound = accuracy.scale_bound_signed_pct
        assert 1.0 + bound / 100.0 == pytest.approx(expected_ratio * (1.0 + exact[-1] / 100.0), abs=1e-6)
        # The published depth follows: the world is made as large as the stated baseline says.
        assert accuracy.scale_error_signed_pct == pytest.approx(bound, abs=0.2)


@pytest.mark.parametrize("calibration", ["tf_static", "parameter"])
def test_rig_source_publishes_metres(calibration):
    rig = render_rig("straight", camera_path("straight", 200)[:80], RIG_HW)
    transforms = TransformBuffer()
    if calibration == "tf_static":
        transforms.set_transform_static(*CAMERA_FRAMES, rig_camera1_pose(0.12))
        metric = MetricConfig("rig")
    else:
        metric = MetricConfig("rig", rig_transforms=((1, rig_camera1_pose(0.12)),))
    run = run_metric_session(rig, metric_session_config(rig, WINDOWS, metric), transforms)
    assert all(out.metric and _kind(out) == "rig" for _, out in run.windows)
    accuracy = evaluate_metric(run)
    # One window's stereo alignment errs by ~0.5 % per frame set (the test double's 0.2 % depth and focal errors,
    # and the resampling of 84 x 56 images); over the windows the published scale errs by 0.1 - 0.5 % (seeds 0 - 2),
    # where the offsets between the predicted cameras (~4 % a window) left 1 - 2 %.
    assert accuracy.scale_error_pct < 1.0 and accuracy.trajectory_scale_error_pct < 1.5
    assert accuracy.ate_m < 0.05 and accuracy.map_error_cm < 10.0


def test_the_world_becomes_metric_at_the_median_of_min_observations_windows(monkeypatch):
    frames = single_camera("straight", camera_path("straight", 200)[:40], HW)
    world = WorldConfig(scale_filter=ScaleFilterConfig(min_observations=3))
    run = start_metric_session(frames, metric_session_config(frames, WINDOWS, MetricConfig("rig"), world))
    # The first window measures 7 % too many metres per unit, the next two -1 % and +2 %.
    first_errors = (math.log(1.07), math.log(0.99), math.log(1.02))
    source = FakeNoisyScaleSourceForTests(run, sigma=0.04, first_errors=first_errors)
    monkeypatch.setattr("vggt_ros.session.measure_window_scale", source)
    first, second, third = (out for _, out in feed(run, range(len(frames)))[:3])
    assert all(_kind(out) == "rig" for out in (first, second, third))
    assert first.waiting_for_scale and second.waiting_for_scale and not (first.newest or second.newest)
    assert third.metric and third.newest
    # The median of the three decided: the published scale errs by +2 % (give or take the chaining's noise), not by
    # the first window's 7 %.
    assert published_depth_ratio(frames, third) - 1.0 == pytest.approx(0.02, abs=0.005)


class FakeNoisyScaleSourceForTests:
    """Test double of a metric scale source with an exact calibration and noisy windows (a rigid rig): each window
    measures the true metres per window unit (the network test double's normalisation) times exp(N(0, sigma)),
    seeded by the window's frames (the first windows' errors may be given), and reports that sigma. It stands in
    for `measure_window_scale`."""

    def __init__(self, run, sigma: float, seed: int = 0, first_errors: tuple[float, ...] = ()) -> None:
        self.run, self.sigma, self.seed = run, sigma, seed
        self.first_errors = first_errors  # the first windows' log errors, given instead of drawn
        self.errors = []  # each window's log error, in order

    def __call__(self, config, products, cameras, camera_frames, sensor_depth, transforms=None):
        window = tuple(self.run.frames.index_of(frame_id) for frame_id in products.frame_ids)
        if len(self.errors) < len(self.first_errors):
            error = self.first_errors[len(self.errors)]
        else:
            error = float(np.random.default_rng([self.seed, *window]).normal()) * self.sigma
        self.errors.append(error)
        truth = 1.0 / self.run.oracle.answers[window].normalization
        return ScaleObservation(truth * math.exp(error), self.sigma, 8, "rig")


def test_a_constant_scale_measured_by_noisy_windows_is_combined_over_all_of_them(monkeypatch):
    """A rigid rig's scale is one constant that every window measures again: the world's scale converges as the
    mean of all windows (sigma / sqrt(windows)), not as a median of the last few, and follows the chaining's slow
    drift meanwhile. Each window here errs by 4 %, so the last 15 windows' median errs by ~1.3 % while 50 windows
    together err by ~0.6 %."""
    frames = single_camera("loop", camera_path("loop", 200), HW)
    run = start_metric_session(frames, metric_session_config(frames, WINDOWS, MetricConfig("rig")))
    source = FakeNoisyScaleSourceForTests(run, sigma=0.04)
    monkeypatch.setattr("vggt_ros.session.measure_window_scale", source)
    feed(run, range(len(frames)))

    errors = np.array([published_depth_ratio(frames, out) - 1.0 for _, out in run.windows])
    assert len(errors) >= 40 and np.isfinite(errors).all()
    # The best any estimator can do from these windows: the mean of their errors so far.
    best = np.cumsum(source.errors) / np.arange(1, len(errors) + 1)
    tail = slice(len(errors) - 15, None)
    assert np.sqrt(np.mean(errors[tail] ** 2)) < 0.01 and abs(errors[-1]) < 0.01
    # Within the chaining's jitter (a few 0.1 % a window) of that mean: all windows count, not the last 15.
    assert np.sqrt(np.mean((errors[tail] - best[tail]) ** 2)) < 0.005
    _assert_no_jump(frames, run.windows)


def _turn_move_turn(turn_frames: int = 20, move_frames: int = 40, turn_back_frames: int = 36) -> np.ndarray:
    """Camera-from-scene extrinsics: turn in place by 0.8 rad, drive 1.5 m ahead, turn back in place by 1.2 rad."""
    yaw = np.concatenate(
        (np.linspace(-0.4, 0.4, turn_frames), np.full(move_frames, 0.4), np.linspace(0.4, -0.8, turn_back_frames))
    )
    travel = np.concatenate((np.zeros(turn_frames), np.linspace(0.0, 1.5, move_frames), np.full(turn_back_frames, 1.5)))
    heading = np.array([math.sin(0.4), 0.0, math.cos(0.4)])
    centres = np.array([-1.0, 0.2, -2.0]) + travel[:, None] * heading
    directions = np.stack((np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)), axis=1)
    return look_at(centres, directions)


def test_odometry_source_waits_while_the_robot_turns_in_place_then_publishes_metres_and_keeps_them(tmp_path):
    frames = single_camera("turn_move_turn", _turn_move_turn(), HW)
    transforms = TransformBuffer()
    odometry = FakeOdometryForTests(frames, transforms)
    run = start_metric_session(frames, metric_session_config(frames, WINDOWS, MetricConfig("odometry")), transforms)
    turning = feed(run, range(20), before=odometry.publish)
    assert len(turning) >= 3 and all(
        out.waiting_for_scale and not out.newest and out.cloud is None for _, out in turning
    )
    assert {_kind(out) for _, out in turning[1:]} == {"still"} and len(run.session.map) == 0
    # ~/save says why there is nothing to save (it said "the map is empty (no window has been merged into it yet"
    # while windows merged).
    with pytest.raises(
        EmptyMapError, match="nothing to save yet: the world waits for its first metric scale from the odometry source"
    ):
        run.session.save(tmp_path)
    assert list(tmp_path.iterdir()) == []

    moving = feed(run, range(20, 60), before=odometry.publish)
    assert moving and all(out.metric and _kind(out) == "odometry" for _, out in moving)
    assert len(run.session.map) > 0
    last_good = published_depth_ratio(frames, moving[-1][1])
    assert abs(last_good - 1.0) < 0.05  # from few, noisy windows; the wheels read 1 % long

    turning_again = feed(run, range(60, len(frames)), before=odometry.publish)
    # Once the window holds only frames of the turn, it cannot measure and keeps the scale.
    still = [(t, out) for t, out in turning_again if _kind(out) == "still"]
    assert len(still) >= 3 and turning_again[-1] == still[-1] and all(out.metric for _, out in still)
    measured = [out for _, out in turning_again if _kind(out) == "odometry"]
    _assert_steady(frames, still, published_depth_ratio(frames, (measured or [moving[-1][1]])[-1]))


def test_odometry_that_lags_the_images_is_named_when_the_window_cannot_measure():
    """Odometry 3 frame sets behind the images: the newest frames have none, the rest of a window may not span
    odometry_min_translation, and the reason said the robot barely moved "during the window", sending the user
    after a still robot. It says how many frames had odometry and that it lags."""
    frames = single_camera("turn_move_turn", _turn_move_turn(), HW)
    transforms = TransformBuffer()
    odometry = FakeOdometryForTests(frames, transforms)
    run = start_metric_session(frames, metric_session_config(frames, WINDOWS, MetricConfig("odometry")), transforms)
    lag = 3
    turning = feed(run, range(20), before=lambda t: odometry.publish(t - lag) if t >= lag else None)
    still = [out.scale.reason for _, out in turning[1:] if _kind(out) == "still"]
    assert still and all("frames had odometry at their stamps" in reason for reason in still), still
    assert all("odometry that lags the images" in reason for reason in still)


# --- bad input at the session level ----------------------------------------------------------------------------


# Windows of 4 keyframes: a window stops holding frames read before a depth outage sooner than one of 8.
SHORT_WINDOWS = WindowConfig(4, 1, KeyframePolicy(min_motion=0.07))


def _depth_run(frames, lookup):
    run = start_metric_session(frames, metric_session_config(frames, SHORT_WINDOWS, DEPTH))
    feed(run, range(len(frames)), lookup)
    return run


def test_a_slow_network_measures_with_the_depth_the_node_kept_for_its_keyframes(straight):
    """The node keeps the depth of its newest window_size keyframes (`NearestStampQueue.keep`; at the defaults
    every frame set is one). The session looked it up after the network had run, when the keyframes that arrived
    meanwhile had pushed the window's out: a network slower than a few frame periods never had a scale. Here, as in
    the node, every frame set goes into the window, the worker takes the newest window when it is free, and 20
    frame sets' depth arrives while the test double's network runs."""
    every_frame = WindowConfig(4, 1, KeyframePolicy())
    sensor = FakeDepthSensorForTests(straight)
    store = NearestStampQueue(queue_size=3, slop=0.01, kept=every_frame.window_size)  # the node's depth store
    arrived = []

    def arrive(t: int) -> None:  # depth of frame set t reaching the node, kept: each frame set is a keyframe
        if t < len(straight.stamps_ns) and t not in arrived:
            stamp_ns = int(straight.stamps_ns[t])
            store.add(stamp_ns, sensor(0, stamp_ns))
            store.keep(stamp_ns)
            arrived.append(t)

    run = start_metric_session(straight, metric_session_config(straight, every_frame, DEPTH))
    session, network = run.session, run.session.pipeline
    predict = network.predict

    def slow_predict(*args, **kwargs):  # 20 frame periods: their depth arrives meanwhile
        for t in range(max(arrived) + 1, max(arrived) + 21):
            arrive(t)
        return predict(*args, **kwargs)

    network.predict = slow_predict
    outputs, newest_window, busy_until = [], None, -1
    for t in range(60):
        arrive(t)
        update = session.add(straight.frame_set(t))
        newest_window = update.window or newest_window
        if t >= busy_until and newest_window is not None:  # the worker is free: it takes the newest window
            outputs.append(session.integrate(session.infer(newest_window, lambda camera, ns: store.nearest(ns))))
            newest_window, busy_until = None, t + 20
    assert len(outputs) >= 3 and all(_kind(out) == "depth" for out in outputs[1:]), [_kind(o) for o in outputs]


def test_depth_that_arrives_while_the_network_runs_counts_in_that_window(straight):
    """Looked up only before the network, a keyframe's depth that arrived just after its colour image (as depth
    usually does) missed its own window: each window measured on fewer pixels than its frames had. It is asked again
    after the network: every window measures on as many pixels as with depth there from the start."""
    every_frame = WindowConfig(4, 1, KeyframePolicy())
    sensor = FakeDepthSensorForTests(straight)
    samples = {}
    for arrives in ("before", "during the network"):
        run = start_metric_session(straight, metric_session_config(straight, every_frame, DEPTH))
        pushed, arrived = [], set()
        network = run.session.pipeline
        predict = network.predict

        def predict_while_depth_arrives(*args, predict=predict, pushed=pushed, arrived=arrived, **kwargs):
            arrived.update(pushed)
            return predict(*args, **kwargs)

        network.predict = predict_while_depth_arrives

        def lookup(camera, stamp_ns, arrived=arrived, arrives=arrives):
            return sensor(camera, stamp_ns) if arrives == "before" or stamp_ns in arrived else None

        def push(t, pushed=pushed):
            pushed.append(int(straight.stamps_ns[t]))

        outputs = feed(run, range(12), lookup, before=push)
        samples[arrives] = [out.scale.samples for _, out in outputs if isinstance(out.scale, ScaleObservation)]
    assert samples["before"] and samples["during the network"] == samples["before"]


def test_frames_held_back_for_the_scale_give_no_points_to_a_loops_map(straight):
    """Frames merged while the world waited for its scale are in no map, map.ply or bag; yet the world kept their
    points (unfiltered by the cloud's settings) for the map a loop rebuilds, which then showed them. Only the
    points the map took are kept."""
    sensor = FakeDepthSensorForTests(straight)
    run = start_metric_session(straight, metric_session_config(straight, WINDOWS, DEPTH))
    waiting = feed(run, range(15), lambda camera, stamp_ns: None)
    assert waiting and all(out.waiting_for_scale for _, out in waiting)
    kept = run.session.world.loops.map
    assert len(kept) == 0, "no map keyframe of the frames held back"
    metric = feed(run, range(15, 40), sensor)
    map_frames = {
        frame_id
        for _, out in metric
        if out.metric and out.cloud is not None
        for frame_id, in_map in zip(out.result.frame_ids, out.result.map_frames)
        if in_map
    }
    assert map_frames and len(kept) == sum(frame_id in kept for frame_id in map_frames), "the map's keyframes only"


def _last_ratio_before(frames, run, t_first):
    return published_depth_ratio(frames, [out for t, out in run.windows if t < t_first][-1])


def test_depth_missing_for_some_windows_keeps_the_scale(straight):
    sensor = FakeDepthSensorForTests(straight)

    def sometimes(camera, stamp_ns):
        return None if 30 <= straight.time_of(stamp_ns) < 85 else sensor(camera, stamp_ns)

    run = _depth_run(straight, sometimes)
    # Windows still holding a frame read before the outage measure on it; the others have no depth.
    outage = [(t, out) for t, out in run.windows if 30 <= t < 85]
    assert sum(_kind(out) == "no_depth" for _, out in outage) >= 2
    assert all(out.metric and out.merged and _kind(out) in {"depth", "no_depth"} for _, out in outage)
    assert _kind(run.windows[-1][1]) == "depth"  # measuring again once depth is back
    _assert_steady(straight, [(t, out) for t, out in run.windows if t >= 30], _last_ratio_before(straight, run, 30))


@pytest.mark.parametrize(
    "reading, kinds",
    [
        ("all_nan", {"no_depth", "no_valid_depth"}),
        ("out_of_range", {"no_valid_depth"}),
        ("other_resolution", {"resolution"}),
    ],
)
def test_unusable_depth_is_reported_and_keeps_the_scale(straight, reading, kinds):
    sensor = FakeDepthSensorForTests(straight)
    image_hw = straight.sequence.depth.shape[1:]

    def lookup(camera, stamp_ns):
        if straight.time_of(stamp_ns) < 30:
            return sensor(camera, stamp_ns)
        if reading == "all_nan":  # the lens covered
            return np.full(image_hw, np.nan, dtype=np.float32)
        if reading == "out_of_range":  # nearer than the sensor's minimum everywhere: a wall against the lens
            return np.full(image_hw, 0.1, dtype=np.float32)
        return np.ones((image_hw[0] + 2, image_hw[1]), dtype=np.float32)  # not registered to the colour image

    run = _depth_run(straight, lookup)
    bad = [(t, out) for t, out in run.windows if t >= 30]
    # Windows still holding a frame read before frame 30 may measure on it; the others say why they cannot.
    unusable = [out for _, out in bad if _kind(out) != "depth"]
    assert len(unusable) >= 3 and {out.scale.kind for out in unusable} <= kinds
    assert _kind(bad[-1][1]) in kinds and all(out.metric for _, out in bad)
    _assert_steady(straight, bad, _last_ratio_before(straight, run, 30))


def test_rig_waits_without_its_calibration_and_keeps_the_scale_when_its_frames_are_renamed():
    rig = render_rig("straight", camera_path("straight", 200)[:90], RIG_HW)
    transforms = TransformBuffer()
    transforms.set_transform_static("camera0_optical", "imu", np.eye(4))  # TF runs, but without the rig
    run = start_metric_session(rig, metric_session_config(rig, WINDOWS, MetricConfig("rig")), transforms)
    waiting = feed(run, range(20))
    assert waiting and all(_kind(out) == "no_rig" and out.waiting_for_scale and not out.newest for _, out in waiting)
    assert "/tf_static" in waiting[-1][1].scale.reason

    transforms.set_transform_static(*CAMERA_FRAMES, rig_camera1_pose(0.12))
    measured = feed(run, range(20, 60))
    assert measured[0][1].metric and all(_kind(out) == "rig" for _, out in measured)

    renamed = ("camera0_optical", "camera1_optical_new")  # a driver restarted with another frame id
    lost = feed(run, range(60, 90), frame_set=lambda t: rig.frame_set(t, renamed))
    assert lost and all(_kind(out) == "no_rig" and out.metric for _, out in lost)
    _assert_steady(rig, measured[-1:] + lost, published_depth_ratio(rig, measured[-1][1]))


def test_odometry_jump_moves_neither_the_scale_nor_the_published_path():
    frames = single_camera("straight", camera_path("straight", 200)[:130], HW)
    config = metric_session_config(frames, WINDOWS, MetricConfig("odometry"))
    runs = {}
    for name, jump_m in (("jump", (0.0, -0.5, 0.0)), ("twin", (0.0, 0.0, 0.0))):
        # A relocalisation 0.5 m along the way the camera travels, at frame set 60; the twin's odometry is the same
        # without it.
        transforms = TransformBuffer()
        odometry = FakeOdometryForTests(frames, transforms, OdometryConfig(jump_at=60, jump_m=jump_m))
        runs[name] = run_metric_session(frames, config, transforms, before=odometry.publish)
    jumped, twin = runs["jump"].windows, runs["twin"].windows
    assert [t for t, _ in jumped] == [t for t, _ in twin]
    straddling = [out for t, out in jumped if frames.time_of(out.window.stamps_ns[0]) < 60 <= t]
    assert len(straddling) >= 4 and all(out.metric for out in straddling)
    # Windows whose frames straddle the jump measure up to 30 % too many metres per unit; the source or the
    # filter's gate refuses the worst, and the filter's clipped update bounds what the rest can move.
    assert any(_kind(out) in {"inconsistent", "outlier"} for out in straddling)
    for (t, with_jump), (_, without) in zip(jumped, twin):
        if t >= 60:
            ratio = published_depth_ratio(frames, with_jump) / published_depth_ratio(frames, without)
            assert abs(ratio - 1.0) < KEPT_SCALE, f"the jump changed the published scale at frame set {t}"
    _assert_no_jump(frames, [(t, out) for t, out in jumped if t >= 50])


def test_a_bad_start_in_windows_that_share_frames_is_dropped_once_sound_windows_outweigh_it(monkeypatch):
    """Three bad frame sets at start-up, at a window of 4 sliding by 1, make 4 windows that measure 25 % too many
    metres per unit. Counted in windows they supported the estimate as 4 would, and the sound windows after them were
    rejected for 32 windows (the outputs 25 % off all along). Those 4 windows share their frames: the growing first
    windows hold 1, 2, 3 and 4 frames, so they weigh 1 + 1/2 + 1/3 + 1/4 independent windows, and the 9th sound
    window (9 x 1/4) outweighs them."""
    frames = single_camera("straight", camera_path("straight", 200)[:60], HW)
    windows = WindowConfig(4, 1, KeyframePolicy(min_motion=0.0))  # every frame set a keyframe, as pass H's node
    run = start_metric_session(frames, metric_session_config(frames, windows, MetricConfig("rig")))
    source = FakeNoisyScaleSourceForTests(run, sigma=0.005, first_errors=(math.log(1.25),) * 4)
    monkeypatch.setattr("vggt_ros.session.measure_window_scale", source)
    outputs = [out for _, out in feed(run, range(len(frames)))]
    ratios = np.array([published_depth_ratio(frames, out) for out in outputs])

    assert len(ratios) >= 40 and ratios[3] == pytest.approx(1.25, abs=0.01)
    assert [len(out.window.frame_sets) for out in outputs[:5]] == [1, 2, 3, 4, 4]
    rejected = [out.scale.reason for out in outputs[4:] if _kind(out) == "outlier"]
    assert len(rejected) == 8 and all("beyond the gate" in reason for reason in rejected)
    # From the restart on the world steps towards the sound scale by at most 1 % a window, and stays there.
    restart = 4 + len(rejected)
    assert np.all(np.diff(ratios[restart : restart + 20]) < 0)
    assert np.abs(ratios[restart + 30 :] - 1.0).max() < 0.01
