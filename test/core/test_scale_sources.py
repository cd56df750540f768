# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Scale sources on scenes with a known metres-per-window-unit factor: a rendered plane-and-box scene against a
noisy depth sensor, a calibrated two- and three-camera rig seen through noisy predicted poses, and odometry of a
straight 1 m drive (also standing still and jumping)."""

import math

import numpy as np
import pytest
import torch

from vggt_ros.geometry import quaternion_to_rotation_matrix
from vggt_ros.metric.config import MetricConfig
from vggt_ros.metric.measure import measure_window_scale
from vggt_ros.metric.sources import (
    SINGLE_MEASUREMENT_RELATIVE_SIGMA,
    DepthScaleConfig,
    ScaleObservation,
    ScaleUnavailable,
    depth_scale,
    odometry_scale,
    rig_scale,
)
from vggt_ros.products import WindowProducts
from vggt_ros.window import FrameId

METRES_PER_UNIT = 2.7  # the truth every test recovers
MODEL_HW = (98, 126)
FOCAL = 110.0


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    quaternion = rng.normal(size=4)
    return quaternion_to_rotation_matrix(quaternion / np.linalg.norm(quaternion))


def _rotation_about_y(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


# --- depth ---------------------------------------------------------------------------------------------------


def _render_scene(frames: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """True depth ``(D, h, w)`` metres of a tilted wall with a box in front of it and a far window (14 m) in it,
    seen from ``frames`` poses; and the mask of the far window."""
    height, width = MODEL_HW
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = (u - width / 2) / FOCAL, (v - height / 2) / FOCAL
    depth, far = [], np.zeros((frames, height, width), dtype=bool)
    for k in range(frames):
        # A plane n . X = d with n = (0.3, -0.2 + 0.1 k, 1): along the ray z (x, y, 1), z = d / (n . (x, y, 1)).
        z = (3.0 + 0.5 * k) / (0.3 * x + (-0.2 + 0.1 * k) * y + 1.0)
        z[int(0.3 * height) : int(0.7 * height), int(0.2 * width) : int(0.45 * width)] = 1.2 + 0.1 * k  # the box
        far[k, int(0.1 * height) : int(0.35 * height), int(0.7 * width) : int(0.9 * width)] = True
        z[far[k]] = 14.0
        depth.append(z)
    return np.stack(depth), far


def _sensor(true_depth, far, rng, holes=0.1, flying=0.05):
    """What a depth camera reports: noise sigma = 0.001 z^2 metres, a fraction of holes (half 0, half NaN), a
    fraction of flying pixels (anywhere between 0.5 and 6 m), and biased readings beyond its range."""
    sensor = true_depth + rng.normal(size=true_depth.shape) * 0.001 * true_depth**2
    sensor[far] = 0.8 * true_depth[far]  # beyond its range a stereo sensor under-reads
    flying_mask = rng.random(true_depth.shape) < flying
    sensor[flying_mask] = rng.uniform(0.5, 6.0, int(flying_mask.sum()))
    hole = rng.random(true_depth.shape)
    sensor[hole < holes / 2] = 0.0
    sensor[(hole >= holes / 2) & (hole < holes)] = np.nan
    return sensor.astype(np.float32)


def _prediction(true_depth, rng):
    """Predicted depth in window units and a VGGT-like confidence (> 1, lower far away)."""
    predicted = torch.from_numpy((true_depth / METRES_PER_UNIT).astype(np.float32))
    confidence = 1.0 + 4.0 * np.exp(-true_depth / 4.0) * rng.uniform(0.8, 1.2, true_depth.shape)
    return predicted, torch.from_numpy(confidence.astype(np.float32))


def test_depth_scale_recovers_the_truth_despite_holes_flying_pixels_and_far_readings():
    rng = np.random.default_rng(0)
    true_depth, far = _render_scene()
    predicted, confidence = _prediction(true_depth, rng)

    observation = depth_scale(predicted, confidence, _sensor(true_depth, far, rng), DepthScaleConfig())

    assert isinstance(observation, ScaleObservation) and observation.source == "depth"
    assert observation.metres_per_unit == pytest.approx(METRES_PER_UNIT, rel=0.005)
    # Half the predictions pass the confidence percentile, then holes and far readings go.
    assert 0.35 * true_depth.size < observation.samples < 0.5 * true_depth.size
    assert 0.0 < observation.relative_sigma < 0.005


def test_depth_scale_sigma_matches_the_scatter_over_repeated_windows():
    true_depth, far = _render_scene()
    errors, sigmas = [], []
    for seed in range(32):
        rng = np.random.default_rng(seed)
        predicted, confidence = _prediction(true_depth, rng)
        observation = depth_scale(predicted, confidence, _sensor(true_depth, far, rng, flying=0.0))
        errors.append(math.log(observation.metres_per_unit / METRES_PER_UNIT))
        sigmas.append(observation.relative_sigma)

    # Each window's sigma predicts how far its estimate strays: the scatter across windows (measured over 300
    # windows: 1.02 x the mean sigma; over 32 windows the ratio varies by about 12 %).
    scatter = float(np.sqrt(np.mean(np.square(errors))))
    assert 0.5 < scatter / float(np.mean(sigmas)) < 2.0


def test_depth_scale_uses_only_confident_predictions():
    rng = np.random.default_rng(1)
    true_depth, far = _render_scene()
    predicted, _ = _prediction(true_depth, rng)
    wrong = rng.random(true_depth.shape) < 0.6  # most predictions are 30 % too deep, and VGGT is unsure of them
    predicted[torch.from_numpy(wrong)] *= 1.3
    unsure, sure = rng.uniform(1.0, 1.5, wrong.shape), rng.uniform(2.0, 5.0, wrong.shape)
    confidence = torch.from_numpy(np.where(wrong, unsure, sure))
    sensor = _sensor(true_depth, far, rng, flying=0.0)

    confident = depth_scale(predicted, confidence, sensor, DepthScaleConfig(confidence_percentile=70.0))
    everything = depth_scale(predicted, confidence, sensor, DepthScaleConfig(confidence_percentile=0.0))

    assert confident.metres_per_unit == pytest.approx(METRES_PER_UNIT, rel=0.005)
    assert everything.metres_per_unit == pytest.approx(METRES_PER_UNIT / 1.3, rel=0.01)


@pytest.mark.parametrize("sensor_value", [0.0, math.nan, 25.0, 0.1])
def test_depth_scale_without_usable_sensor_depth(sensor_value):
    rng = np.random.default_rng(2)
    true_depth, _ = _render_scene()
    predicted, confidence = _prediction(true_depth, rng)
    sensor = np.full(true_depth.shape, sensor_value, dtype=np.float32)

    result = depth_scale(predicted, confidence, sensor, DepthScaleConfig())

    assert isinstance(result, ScaleUnavailable) and result.kind == "no_valid_depth"
    assert f"of {true_depth.size} pixels" in result.reason and "0 a sensor depth inside" in result.reason


def _two_depth_cameras(right_factor: float):
    """A window of 2 frame sets x 2 depth cameras (frame-set major), every frame dense, and the sensor depth: the
    left camera's true, the right camera's times ``right_factor`` (NaN: none matched)."""
    rng = np.random.default_rng(9)
    true_depth, far = _render_scene(frames=4)
    predicted, confidence = _prediction(true_depth, rng)
    sensor = _sensor(true_depth, far, rng)
    sensor[1::2] *= right_factor
    products = WindowProducts(
        frame_ids=tuple(FrameId(stamp_ns, camera) for stamp_ns in (0, 100) for camera in (0, 1)),
        stamps=np.array([0.0, 0.0, 1e-7, 1e-7]),
        window_from_camera=np.tile(np.eye(4), (4, 1, 1)),
        intrinsics=np.tile(np.eye(3), (4, 1, 1)),
        dense=(0, 1, 2, 3),
        depth=predicted,
        confidence=confidence,
        colors=torch.zeros((4, *MODEL_HW, 3), dtype=torch.uint8),
    )
    return products, torch.from_numpy(sensor)


@pytest.mark.parametrize("right_factor", [1.15, 2.0])
def test_depth_cameras_that_disagree_measure_no_scale_and_are_named(right_factor):
    """The right camera's depth 15 % (or twice) off, the left's right: their pixels were pooled into one median,
    and every published metre came out 5 - 10 % off without a word."""
    products, sensor = _two_depth_cameras(right_factor)
    result = measure_window_scale(MetricConfig("depth"), products, 2, ("left_optical", "right_optical"), sensor)
    assert isinstance(result, ScaleUnavailable) and result.kind == "inconsistent_depth"
    assert f"disagree on the scale by {right_factor:.2f}x" in result.reason
    assert "camera 0 ('left_optical') 2.7" in result.reason and "camera 1 ('right_optical')" in result.reason


def test_depth_cameras_that_agree_measure_together_and_one_without_depth_is_named():
    products, sensor = _two_depth_cameras(1.0)
    both = measure_window_scale(MetricConfig("depth"), products, 2, ("left_optical", "right_optical"), sensor)
    assert isinstance(both, ScaleObservation) and both.note == ""
    assert both.metres_per_unit == pytest.approx(METRES_PER_UNIT, rel=0.005)
    products, sensor = _two_depth_cameras(math.nan)  # the right camera's depth matched none of its images
    left = measure_window_scale(MetricConfig("depth"), products, 2, ("left_optical", "right_optical"), sensor)
    assert isinstance(left, ScaleObservation) and left.metres_per_unit == pytest.approx(METRES_PER_UNIT, rel=0.005)
    assert left.note.startswith("from the other cameras only") and "camera 1 ('right_optical')" in left.note


def test_a_depth_camera_in_another_unit_beside_a_right_one_is_named():
    """The right camera's 32FC1 depth in millimetres, the left's in metres: every reading of the right lies beyond
    the range, so it measured nothing alone, took no part in the disagreement check, and was left out without a
    word (the scale came from the left alone)."""
    products, sensor = _two_depth_cameras(1000.0)
    left = measure_window_scale(MetricConfig("depth"), products, 2, ("left_optical", "right_optical"), sensor)
    assert isinstance(left, ScaleObservation) and left.metres_per_unit == pytest.approx(METRES_PER_UNIT, rel=0.005)
    assert left.note.startswith("from the other cameras only: the depth of camera 1 ('right_optical') measured nothing")
    assert "millimetres in a 32FC1 image?" in left.note


@pytest.mark.parametrize(
    "factor, cause",
    [(1000.0, "millimetres in a 32FC1 image"), (10.0, "finer unit"), (1.0, "")],
    ids=["millimetres as metres", "0.1 mm as mm", "metres"],
)
def test_depth_in_the_wrong_unit_is_named_by_the_readings_median(factor, cause):
    """Depth in millimetres in a 32FC1 image gave "0 a sensor depth inside [0.2, 10] m" and nothing more: the
    readings' median (2000 - 5000 m here) says which unit it is."""
    rng = np.random.default_rng(2)
    true_depth, _ = _render_scene()
    predicted, confidence = _prediction(true_depth, rng)
    config = DepthScaleConfig(max_range_m=1.0) if factor == 1.0 else DepthScaleConfig()  # metres, out of range
    result = depth_scale(predicted, confidence, (true_depth * factor).astype(np.float32), config)
    if cause:
        median = float(np.median(true_depth * factor))
        assert isinstance(result, ScaleUnavailable) and f"have a median of {median:.4g} m" in result.reason
        assert cause in result.reason
    else:  # a scene beyond max_range_m in metres: its median is no other unit
        assert isinstance(result, ScaleUnavailable) and "a scene beyond the sensor's range" in result.reason


def test_depth_scale_needs_min_pixels():
    rng = np.random.default_rng(3)
    true_depth, _ = _render_scene(frames=1)
    predicted, confidence = _prediction(true_depth, rng)
    sensor = np.full(true_depth.shape, np.nan, dtype=np.float32)
    sensor[0, :2, :100] = true_depth[0, :2, :100]  # 200 measured pixels, about half of them confident

    result = depth_scale(predicted, confidence, sensor, DepthScaleConfig(min_pixels=150))
    assert isinstance(result, ScaleUnavailable) and "need 150" in result.reason
    assert isinstance(depth_scale(predicted, confidence, sensor, DepthScaleConfig(min_pixels=20)), ScaleObservation)


def test_depth_scale_refuses_arrays_of_different_shapes():
    predicted = torch.ones(2, 8, 8)
    with pytest.raises(ValueError, match="depth_to_model"):
        depth_scale(predicted, torch.ones(2, 8, 8), np.ones((2, 8, 9), dtype=np.float32))


@pytest.mark.parametrize(
    "settings",
    [
        dict(min_range_m=0.0),
        dict(min_range_m=-0.1),
        dict(max_range_m=0.1),
        dict(max_range_m=math.inf),
        dict(confidence_percentile=100.0),
        dict(min_pixels=0),
        dict(min_pixels=2.5),
    ],
)
def test_depth_scale_config_rejects_bad_settings(settings):
    with pytest.raises(ValueError):
        DepthScaleConfig(**settings)


# --- rig -----------------------------------------------------------------------------------------------------


def _rigid(rotation, translation) -> np.ndarray:
    transform = np.eye(4)
    transform[:3, :3], transform[:3, 3] = rotation, translation
    return transform


def _rig_window(camera0_from_camera: list[np.ndarray], sets: int, noise_m: float, rng) -> np.ndarray:
    """``(sets * K, 4, 4)`` predicted window poses of a rig driven along a curve: the true poses moved into an
    arbitrary window frame at 1 / METRES_PER_UNIT, camera centres perturbed by ``noise_m`` metres per axis."""
    window_rotation, window_offset = _random_rotation(rng), rng.normal(size=3)
    poses = []
    for i in range(sets):
        world_from_camera0 = _rigid(_rotation_about_y(4.0 * i), [0.3 * i, 0.02 * i**2, 0.1 * i])
        for camera_from in camera0_from_camera:
            world_from_camera = world_from_camera0 @ camera_from
            centre = window_rotation @ world_from_camera[:3, 3] + rng.normal(size=3) * noise_m
            poses.append(_rigid(window_rotation @ world_from_camera[:3, :3], centre / METRES_PER_UNIT + window_offset))
    return np.stack(poses)


BASELINE = _rigid(_rotation_about_y(5.0), [0.12, 0.0, 0.0])  # camera 0 -> camera 1, 12 cm apart
WIDE = _rigid(_rotation_about_y(-3.0), [0.0, -0.3, 0.0])  # camera 0 -> camera 2, 30 cm apart


def test_rig_scale_from_a_12_cm_baseline_and_noisy_poses():
    rng = np.random.default_rng(4)
    poses = _rig_window([np.eye(4), BASELINE], sets=10, noise_m=0.002, rng=rng)

    observation = rig_scale(poses, 2, {1: BASELINE})

    assert isinstance(observation, ScaleObservation) and observation.source == "rig" and observation.samples == 10
    error = abs(math.log(observation.metres_per_unit / METRES_PER_UNIT))
    assert error < 0.03 and error < 4.0 * observation.relative_sigma
    # camera0_from_camera1 is what TF gives; the inverse puts camera 1 on the other side, which no set predicts,
    # and the reason names the camera and the cause, not a broken window.
    reversed_rig = rig_scale(poses, 2, {1: np.linalg.inv(BASELINE)})
    assert isinstance(reversed_rig, ScaleUnavailable) and reversed_rig.kind == "reversed_rig"
    assert "camera(s) [1]" in reversed_rig.reason and "not its inverse" in reversed_rig.reason
    # One broken frame set that puts camera 1 on the far side is a bad pose, not a reversed rig: left out.
    broken = poses.copy()
    broken[1, :3, 3] = 2.0 * broken[0, :3, 3] - broken[1, :3, 3]
    kept = rig_scale(broken, 2, {1: BASELINE})
    assert isinstance(kept, ScaleObservation) and kept.samples == 9


def test_rig_scale_is_not_biased_by_pose_noise_across_the_baseline():
    """Noise across a short baseline lengthens the plain distance between the centres on average (|b + n| > |b|);
    the offset along the known baseline is unbiased."""
    rng = np.random.default_rng(7)
    poses = _rig_window([np.eye(4), BASELINE], sets=2000, noise_m=0.01, rng=rng)
    observation = rig_scale(poses, 2, {1: BASELINE})
    assert abs(math.log(observation.metres_per_unit / METRES_PER_UNIT)) < 0.006  # median's error: about 0.2 %
    centres = poses[:, :3, 3].reshape(-1, 2, 3)
    distance_based = float(np.linalg.norm(BASELINE[:3, 3])) / np.median(
        np.linalg.norm(centres[:, 1] - centres[:, 0], axis=1)
    )
    assert distance_based < METRES_PER_UNIT * 0.99  # about 1.4 % low: the bias the projection avoids


def test_rig_scale_uses_every_pair_fully():
    """Each pair's predicted offset is the baseline plus the poses' noise, so the window's mean of them scatters as
    sigma / sqrt(pairs), where a median of them scatters sqrt(pi / 2) = 1.25 times more."""
    rng = np.random.default_rng(8)
    noise_m, sets = 0.003, 8
    errors = []
    for _ in range(400):
        observation = rig_scale(_rig_window([np.eye(4), BASELINE], sets, noise_m, rng), 2, {1: BASELINE})
        errors.append(math.log(observation.metres_per_unit / METRES_PER_UNIT))
    # The offset along the baseline differs from it by both centres' noise along it: sqrt(2) noise_m.
    mean_error = math.sqrt(2.0) * noise_m / float(np.linalg.norm(BASELINE[:3, 3])) / math.sqrt(sets)
    assert math.sqrt(np.mean(np.square(errors))) < 1.1 * mean_error  # 400 windows: +-3.5 %


def test_rig_windows_whose_pairs_agree_by_chance_do_not_outvote_the_others():
    """Eight pairs measure their own scatter to +-40 %: weighted by it, the windows whose pairs happen to agree
    would dominate a combination of windows. Each window's sigma is held at the per-pair floor, so combining 400
    windows of 8 pairs (24 cm rig, 3 mm pose noise: 1.8 % per pair) with the filter's weights, 1 / sigma^2,
    scatters no more than their plain mean."""
    rng = np.random.default_rng(9)
    wide = _rigid(np.eye(3), [0.24, 0.0, 0.0])
    combined = []
    for _ in range(40):
        windows = [rig_scale(_rig_window([np.eye(4), wide], 8, 0.003, rng), 2, {1: wide}) for _ in range(10)]
        sigmas = np.array([window.relative_sigma for window in windows])
        assert (sigmas >= SINGLE_MEASUREMENT_RELATIVE_SIGMA / math.sqrt(8) - 1e-12).all()
        errors = np.array([math.log(window.metres_per_unit / METRES_PER_UNIT) for window in windows])
        combined.append(float(np.average(errors, weights=1.0 / sigmas**2)))
    per_window = math.sqrt(2.0) * 0.003 / 0.24 / math.sqrt(8)
    # The plain mean of 10 windows scatters as per_window / sqrt(10); 40 combinations measure that to +-11 %.
    assert math.sqrt(np.mean(np.square(combined))) < 1.3 * per_window / math.sqrt(10)


def test_rig_scale_uses_every_known_pair_and_skips_broken_sets():
    rng = np.random.default_rng(5)
    poses = _rig_window([np.eye(4), BASELINE, WIDE], sets=6, noise_m=0.001, rng=rng)
    poses[4, :3, 3] = np.nan  # set 1, camera 1: the camera head failed

    both = rig_scale(poses, 3, {1: BASELINE, 2: WIDE})
    wide_only = rig_scale(poses, 3, {2: WIDE})

    assert both.samples == 2 * 6 - 1 and wide_only.samples == 6
    for observation in (both, wide_only):
        assert observation.metres_per_unit == pytest.approx(METRES_PER_UNIT, rel=0.03)


def test_rig_scale_from_one_frame_set_uses_the_documented_sigma():
    rng = np.random.default_rng(6)
    observation = rig_scale(_rig_window([np.eye(4), BASELINE], 1, 0.0, rng), 2, {1: BASELINE})
    assert observation.metres_per_unit == pytest.approx(METRES_PER_UNIT, rel=1e-9)
    assert observation.relative_sigma == SINGLE_MEASUREMENT_RELATIVE_SIGMA


def test_rig_scale_unavailable():
    rng = np.random.default_rng(7)
    one_camera = _rig_window([np.eye(4)], 4, 0.0, rng)
    assert rig_scale(one_camera, 1, {}).kind == "no_rig"
    two_cameras = _rig_window([np.eye(4), BASELINE], 4, 0.0, rng)
    assert rig_scale(two_cameras, 2, {}).kind == "no_rig"
    tiny = _rigid(np.eye(3), [0.005, 0.0, 0.0])
    assert rig_scale(two_cameras, 2, {1: tiny}).kind == "degenerate"
    coincident = two_cameras.copy()
    coincident[1::2, :3, 3] = coincident[0::2, :3, 3]  # the window puts both cameras at one point
    result = rig_scale(coincident, 2, {1: BASELINE})
    assert isinstance(result, ScaleUnavailable) and result.kind == "degenerate" and "4 frame sets" in result.reason


def test_a_rig_in_millimetres_or_in_another_camera_order_measures_no_scale_and_says_why():
    """Transforms in millimetres (a 120 m "baseline") were taken, and the images then locked onto that unit: the
    scale came out 1000 times off with a 0.5 % sigma. A third camera's transforms swapped with the second's made the
    two pairs disagree sixfold, and their mean went metric 31 % off."""
    rng = np.random.default_rng(8)
    poses = _rig_window([np.eye(4), BASELINE, WIDE], 6, 0.001, rng)
    millimetres = _rigid(BASELINE[:3, :3], BASELINE[:3, 3] * 1000.0)
    result = rig_scale(poses, 3, {1: millimetres, 2: WIDE})
    assert isinstance(result, ScaleUnavailable) and result.kind == "implausible_rig"
    assert "camera 1: 120 m" in result.reason and "millimetres" in result.reason
    swapped = rig_scale(poses, 3, {1: WIDE, 2: BASELINE})
    assert isinstance(swapped, ScaleUnavailable) and swapped.kind == "inconsistent_rig"
    assert "disagree on the scale" in swapped.reason and "cameras' order" in swapped.reason


@pytest.mark.parametrize(
    "poses_shape, cameras, known",
    [
        ((5, 4, 4), 2, {1: BASELINE}),
        ((4, 4, 4), 2, {2: BASELINE}),
        ((4, 4, 4), 2, {0: BASELINE}),
        ((4, 4, 4), 2, {1: np.full((4, 4), np.nan)}),
        ((4, 3, 4), 2, {1: BASELINE}),
        ((4, 4, 4), 0, {}),
    ],
)
def test_rig_scale_refuses_malformed_arguments(poses_shape, cameras, known):
    with pytest.raises(ValueError):
        rig_scale(np.tile(np.eye(4), (poses_shape[0], 1, 1))[:, : poses_shape[1]], cameras, known)


# --- odometry ------------------------------------------------------------------------------------------------


def _drive(rng, frames: int = 12, length_m: float = 1.0, odometry_noise: float = 0.03):
    """A straight drive of ``length_m`` metres while the camera turns: the window's predicted poses (an arbitrary
    frame, 1 / METRES_PER_UNIT, 1 mm of pose noise) and the odometry positions (another arbitrary frame, error
    of ``odometry_noise`` x the distance driven)."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    start = rng.normal(size=3)
    travelled = np.linspace(0.0, length_m, frames)
    positions = start + travelled[:, None] * direction  # metres, scene frame
    window_rotation, odom_rotation = _random_rotation(rng), _random_rotation(rng)
    poses = np.stack(
        [
            _rigid(
                window_rotation @ _rotation_about_y(10.0 * i),
                (window_rotation @ p + rng.normal(size=3) * 0.001) / METRES_PER_UNIT,
            )
            for i, p in enumerate(positions)
        ]
    )
    odom = positions @ odom_rotation.T + 5.0
    odom += rng.normal(size=odom.shape) * (odometry_noise * travelled / math.sqrt(3.0))[:, None]
    return poses, odom


def test_odometry_scale_of_a_straight_metre_with_3_percent_noise():
    rng = np.random.default_rng(8)
    poses, odom = _drive(rng)

    observation = odometry_scale(poses, odom)

    assert isinstance(observation, ScaleObservation) and observation.source == "odometry"
    assert observation.samples == 10  # frames 2..11: frame 1 is only 9.1 cm from frame 0
    error = abs(math.log(observation.metres_per_unit / METRES_PER_UNIT))
    assert error < 0.03 and error < 4.0 * observation.relative_sigma


def test_odometry_scale_skips_frames_without_odometry_and_short_displacements():
    rng = np.random.default_rng(9)
    poses, odom = _drive(rng)
    odom[[0, 5]] = np.nan  # TF had no answer: frame 1 becomes the reference

    observation = odometry_scale(poses, odom, min_translation_m=0.25)

    # From frame 1 (at 9.1 cm) frames 2..11 lie 9.1 .. 90.9 cm away; 4..11 reach 25 cm, minus frame 5.
    assert observation.samples == 7
    assert observation.metres_per_unit == pytest.approx(METRES_PER_UNIT, rel=0.03)


def test_odometry_scale_of_a_robot_standing_still():
    rng = np.random.default_rng(10)
    poses, odom = _drive(rng, length_m=0.0)
    odom += rng.normal(size=odom.shape) * 0.01  # wheel and localisation jitter

    result = odometry_scale(poses, odom)

    assert isinstance(result, ScaleUnavailable) and result.kind == "still" and "undefined" in result.reason


def test_odometry_jump_is_inconsistent():
    rng = np.random.default_rng(11)
    poses, odom = _drive(rng)
    odom[7:] += np.array([2.0, 0.0, 0.0])  # a relocalisation moved the odometry by 2 m

    result = odometry_scale(poses, odom)

    assert isinstance(result, ScaleUnavailable) and result.kind == "inconsistent" and "jumped" in result.reason


def test_odometry_moving_while_the_window_stands_still_is_inconsistent():
    rng = np.random.default_rng(12)
    poses, odom = _drive(rng)
    poses[:, :3, 3] = poses[0, :3, 3]  # the wheels spin, the images do not move

    assert odometry_scale(poses, odom).kind == "inconsistent"


def test_a_window_of_one_frame_has_no_displacement_yet():
    """The first window's single frame was reported as "1 of the window's 1 frames have odometry ... check that TF
    can transform the camera frames", at every start, with TF in order."""
    rng = np.random.default_rng(13)
    poses, odom = _drive(rng)
    result = odometry_scale(poses[:1], odom[:1])
    assert isinstance(result, ScaleUnavailable) and result.kind == "single_frame" and "TF" not in result.reason


def test_odometry_missing():
    rng = np.random.default_rng(13)
    poses, odom = _drive(rng)
    odom[1:] = np.nan

    result = odometry_scale(poses, odom)

    assert isinstance(result, ScaleUnavailable) and result.kind == "missing_odometry" and "1 of" in result.reason


@pytest.mark.parametrize(
    "odom_rows, settings",
    [
        (11, {}),
        (12, dict(min_translation_m=0.0)),
        (12, dict(max_ratio_spread=1.0)),
        (12, dict(min_translation_m=math.nan)),
    ],
)
def test_odometry_scale_refuses_malformed_arguments(odom_rows, settings):
    with pytest.raises(ValueError):
        odometry_scale(np.tile(np.eye(4), (12, 1, 1)), np.zeros((odom_rows, 3)), **settings)
