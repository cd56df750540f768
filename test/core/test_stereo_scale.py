# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The rig's scale from its images (`vggt_ros.metric.stereo`) on the synthetic room, whose unit is the metre: a
12 cm two-camera rig rendered along a path, and the test double of the network's answers for it, whose
normalisation (window units per metre) is the known answer."""

import math

import numpy as np
import pytest
import torch

from support.metric_synthetic import render_rig, rig_camera1_pose
from support.synthetic import NO_NOISE, FakeVGGTForWorldTests, OracleNoise, camera_path
from vggt_ros.geometry import invert_rigid
from vggt_ros.metric.config import MetricConfig
from vggt_ros.metric.measure import measure_window_scale
from vggt_ros.metric.sources import ScaleObservation, rig_scale
from vggt_ros.metric.stereo import STEREO_SET_RELATIVE_SIGMA, align_stereo_pair, grey
from vggt_ros.products import WindowProducts

HW = (112, 168)  # a 12 cm baseline is a disparity of about 4 - 8 pixels here
BASELINE_M = 0.12
SETS = (0, 6, 12, 18)


@pytest.fixture(scope="module")
def rig():
    return render_rig("straight", camera_path("straight", 200)[:20], HW, BASELINE_M)


def _answer(rig, noise=NO_NOISE, seed=0):
    """The test double of the network's answer for the frame sets `SETS` (both cameras, frame-set major)."""
    frames = [int(rig.indices[t, camera]) for t in SETS for camera in range(2)]
    return FakeVGGTForWorldTests(rig.sequence, noise, seed).predict(frames), frames


def _products(rig, answer, frames, camera1_offset_factor=1.0) -> WindowProducts:
    """The answer as the session's decoded window, every frame dense. ``camera1_offset_factor`` lengthens camera 1's
    predicted offset from camera 0 in every frame set (a pose head biased along the baseline)."""
    window_from_camera = invert_rigid(answer.extrinsics)
    window_from_camera = np.concatenate((window_from_camera, np.tile([[[0.0, 0.0, 0.0, 1.0]]], (len(frames), 1, 1))), 1)
    for first in range(0, len(frames), 2):
        offset = window_from_camera[first + 1, :3, 3] - window_from_camera[first, :3, 3]
        window_from_camera[first + 1, :3, 3] = window_from_camera[first, :3, 3] + camera1_offset_factor * offset
    return WindowProducts(
        frame_ids=tuple((t, camera) for t in SETS for camera in range(2)),
        stamps=np.repeat(np.asarray(SETS, dtype=np.float64) / 10.0, 2),
        window_from_camera=window_from_camera,
        intrinsics=answer.intrinsics,
        dense=tuple(range(len(frames))),
        depth=torch.from_numpy(answer.depth),
        confidence=torch.from_numpy(answer.confidence),
        colors=torch.from_numpy(rig.sequence.rgb[frames]),
    )


def _align(rig, answer, frames, first, start, grey1=None, inside1=None, camera0_from_camera1=None):
    """`align_stereo_pair` on frame set ``first // 2`` of the answer (camera 1's image, its image pixels and the
    calibration as rendered unless given)."""
    image1 = grey(torch.from_numpy(rig.sequence.rgb[frames[first + 1]])) if grey1 is None else grey1
    return align_stereo_pair(
        torch.from_numpy(answer.depth[first]),
        torch.from_numpy(answer.confidence[first]),
        grey(torch.from_numpy(rig.sequence.rgb[frames[first]])),
        image1,
        torch.ones(HW, dtype=torch.bool) if inside1 is None else inside1,
        torch.from_numpy(answer.intrinsics[first]),
        torch.from_numpy(answer.intrinsics[first + 1]),
        torch.from_numpy(rig_camera1_pose(BASELINE_M) if camera0_from_camera1 is None else camera0_from_camera1),
        start,
    )


@pytest.mark.parametrize("start_factor", [0.7, 0.9, 1.15, 1.35])
def test_alignment_recovers_the_rig_scale_from_exact_depth_starting_far_off(rig, start_factor):
    answer, frames = _answer(rig)
    truth = answer.normalization  # window units per metre
    for first in range(0, len(frames), 2):
        aligned = _align(rig, answer, frames, first, truth * start_factor)
        assert aligned is not None and aligned.pixels > 500
        # Exact depth and poses: what remains is the resampling of point-sampled images (0.02 - 0.2 % per frame set
        # at this size, 0.2 - 0.7 % at 84 x 56, under 0.1 % at 336 x 224).
        assert abs(aligned.units_per_metre / truth - 1.0) < 3e-3


def test_alignment_of_a_camera_to_the_left():
    """The baseline's direction comes from the calibration: camera 1 12 cm to the left of camera 0 works alike."""
    left = render_rig("straight", camera_path("straight", 200)[:20], HW, -BASELINE_M)
    answer, frames = _answer(left)
    aligned = _align(
        left, answer, frames, 0, answer.normalization * 1.2, camera0_from_camera1=rig_camera1_pose(-BASELINE_M)
    )
    assert aligned is not None and abs(aligned.units_per_metre / answer.normalization - 1.0) < 3e-3


def test_alignment_sees_through_a_different_exposure_of_camera_1(rig):
    answer, frames = _answer(rig)
    image1 = grey(torch.from_numpy(rig.sequence.rgb[frames[1]]))
    same = _align(rig, answer, frames, 0, answer.normalization)
    darker = _align(rig, answer, frames, 0, answer.normalization, 0.6 * image1 + 0.05)
    assert same is not None and darker is not None
    assert abs(darker.units_per_metre / same.units_per_metre - 1.0) < 1e-4


def test_alignment_ignores_the_padding_of_camera_1(rig):
    """Camera 1's image padded white over its bottom third (as frames of another shape are, `PixelMap.image_box`):
    the padding is left out, the blur's reach into it weighs little under the Huber weights, and the scale is the
    unpadded one."""
    answer, frames = _answer(rig)
    image1 = grey(torch.from_numpy(rig.sequence.rgb[frames[1]]))
    inside1 = torch.ones(HW, dtype=torch.bool)
    inside1[2 * HW[0] // 3 :] = False
    padded = torch.where(inside1, image1, torch.ones_like(image1))
    whole = _align(rig, answer, frames, 0, answer.normalization)
    aligned = _align(rig, answer, frames, 0, answer.normalization * 1.1, padded, inside1)
    assert aligned is not None and aligned.pixels < whole.pixels
    assert abs(aligned.units_per_metre / answer.normalization - 1.0) < 3e-3


def test_alignment_refuses_a_view_without_texture(rig):
    answer, frames = _answer(rig)
    flat = torch.full(HW, 0.5)
    assert _align(rig, answer, frames, 0, answer.normalization, flat) is None


def test_alignment_refuses_cameras_that_share_no_view(rig):
    """A rear camera (turned 180 degrees about y): camera 0's pixels lie behind it, nothing to compare."""
    answer, frames = _answer(rig)
    rear = rig_camera1_pose(BASELINE_M)
    rear[:3, :3] = np.diag([-1.0, 1.0, -1.0])
    aligned = _align(rig, answer, frames, 0, answer.normalization, camera0_from_camera1=rear)
    assert aligned is None


def test_the_rig_window_scale_rests_on_the_images_where_the_predicted_offsets_are_biased(rig):
    """A pose head that predicts camera 1 10 % too far from camera 0 makes the offsets' estimate 10 % off; the images
    and camera 0's depth still give the truth."""
    answer, frames = _answer(rig)
    products = _products(rig, answer, frames, camera1_offset_factor=1.1)
    truth = 1.0 / answer.normalization  # metres per window unit
    transforms = {1: rig_camera1_pose(BASELINE_M)}
    from_poses = rig_scale(products.window_from_camera, 2, transforms)
    assert abs(from_poses.metres_per_unit * 1.1 / truth - 1.0) < 1e-6

    observation = measure_window_scale(
        MetricConfig("rig", rig_transforms=tuple(transforms.items())), products, 2, ("", ""), None
    )

    assert isinstance(observation, ScaleObservation) and observation.source == "rig"
    assert abs(observation.metres_per_unit / truth - 1.0) < 3e-3
    assert observation.relative_sigma == pytest.approx(STEREO_SET_RELATIVE_SIGMA / math.sqrt(len(SETS)), rel=0.5)
    assert observation.samples > 500 * len(SETS)


def test_the_rig_window_scale_with_realistic_noise_is_several_times_better_than_the_offsets(rig):
    """Over 12 seeds of the test double's noise (2 mm-like pose noise, 1.5 % per-pixel depth noise, 0.2 % per-frame
    depth and focal errors), the images' window estimate scatters several times less than the offsets'."""
    transforms = {1: rig_camera1_pose(BASELINE_M)}
    config = MetricConfig("rig", rig_transforms=tuple(transforms.items()))
    images, offsets = [], []
    for seed in range(12):
        answer, frames = _answer(rig, OracleNoise(), seed)
        products = _products(rig, answer, frames)
        truth = 1.0 / answer.normalization
        images.append(measure_window_scale(config, products, 2, ("", ""), None).metres_per_unit / truth - 1.0)
        offsets.append(rig_scale(products.window_from_camera, 2, transforms).metres_per_unit / truth - 1.0)
    rms_images, rms_offsets = float(np.sqrt(np.mean(np.square(images)))), float(np.sqrt(np.mean(np.square(offsets))))
    assert rms_images < 0.006 and rms_images < rms_offsets / 4.0


def test_a_textureless_rig_window_keeps_the_offsets_estimate(rig):
    answer, frames = _answer(rig)
    products = _products(rig, answer, frames)
    products = WindowProducts(**{**products.__dict__, "colors": torch.full_like(products.colors, 128)})
    transforms = {1: rig_camera1_pose(BASELINE_M)}

    observation = measure_window_scale(
        MetricConfig("rig", rig_transforms=tuple(transforms.items())), products, 2, ("", ""), None
    )

    from_poses = rig_scale(products.window_from_camera, 2, transforms)
    assert (observation.metres_per_unit, observation.relative_sigma) == (
        from_poses.metres_per_unit,
        from_poses.relative_sigma,
    )
    # ... and says so: the scale is several times less precise than the images give.
    assert from_poses.note == "" and observation.note.startswith("no frame set of the rig aligned")
    assert f"({len(SETS)} camera pairs: {len(SETS)} found too little texture or overlap, 0 settled" in observation.note
    assert f"{from_poses.relative_sigma:.1%} per window" in observation.note


def test_a_rig_given_in_centimetres_is_named_with_each_window_it_measures(rig):
    """A 6 cm stereo camera published as 6.0 (centimetres) passed every check: its images agree with any unit, and
    6 "m" is under the implausible baseline. Every output was 100 times too large, and /diagnostics said "metric
    (metres)". Such a baseline, over 2 m, is named in each window's note."""
    answer, frames = _answer(rig)
    products = _products(rig, answer, frames)
    notes = {}
    for stated in (BASELINE_M, 6.0):
        config = MetricConfig("rig", rig_transforms=((1, rig_camera1_pose(stated)),))
        notes[stated] = measure_window_scale(config, products, 2, ("", ""), None).note
    assert notes[BASELINE_M] == ""
    assert notes[6.0].startswith("the rig's baselines are longer than most rigs' (camera 1: 6 m; over 2 m)")
    assert "if its transforms are in centimetres, every output is 100 times too large" in notes[6.0]
