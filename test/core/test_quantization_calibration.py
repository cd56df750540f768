# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Calibration: images from a folder or a bag, statistics from image tokens only (against the layer inputs computed
directly from the model), the compensation token (known answers, and the camera head it reaches), the task
objective on outputs with known geometry."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from support.bags import write_image_bag, write_ros1_image_bag
from support.torch_threads import one_torch_thread  # noqa: F401 (autouse, module-wide)
from vggt_ros.geometry import extrinsics_intrinsics_to_pose_encoding, unproject_depth
from vggt_ros.model import VGGT
from vggt_ros.model.stages import build_stages
from vggt_ros.quantization.calibration import (
    CalibrationConfig,
    CalibrationError,
    calibration_windows,
    load_calibration_images,
    reference_pass,
    token_layout,
)
from vggt_ros.quantization.compensation import CompensationError, compensation_token
from vggt_ros.quantization.objective import ObjectiveWeights, errors_vs_reference, task_loss
from vggt_ros.quantized_formats.compensated_head import CompensatedCameraHead

COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (250, 250, 10), (10, 250, 250)]


def write_images(folder, colours=COLOURS, size=(28, 28)):
    folder.mkdir(exist_ok=True)
    for index, colour in enumerate(colours):
        Image.fromarray(np.full((*size, 3), colour, dtype=np.uint8)).save(folder / f"{index:02d}.png")
    return folder


def test_a_folder_is_subsampled_evenly_and_cut_into_windows(tmp_path):
    images = load_calibration_images(
        write_images(tmp_path / "images"), CalibrationConfig(frames=2, max_images=3, image_size=28)
    )
    assert images.shape == (3, 3, 28, 28)
    kept = [tuple(round(float(c) * 255) for c in image[:, 0, 0]) for image in images]
    assert kept == [COLOURS[0], COLOURS[2], COLOURS[4]]  # first, middle, last
    assert [len(w) for w in calibration_windows(images, 2)] == [2, 1]


def test_a_bag_topic_gives_the_same_images_as_their_files(tmp_path):
    frames = [(i * 100_000_000, np.full((28, 28, 3), c, dtype=np.uint8)) for i, c in enumerate(COLOURS)]
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/camera/image", frames)])
    config = CalibrationConfig(frames=2, max_images=3, image_size=28, topic="/camera/image")
    from_bag = load_calibration_images(bag, config)
    assert torch.equal(from_bag, load_calibration_images(write_images(tmp_path / "files"), config))
    with pytest.raises(CalibrationError, match=r"is a bag; name its image topic \(--topic"):
        load_calibration_images(bag, CalibrationConfig(image_size=28))
    # A ROS 1 bag too (docs/engines.md shows one; it was "neither a folder of images nor a rosbag2 recording").
    ros1 = write_ros1_image_bag(tmp_path / "camera.bag", "/camera/image", frames)
    assert torch.equal(load_calibration_images(ros1, config), from_bag)


def test_an_empty_calibration_set_says_what_to_pass(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(
        CalibrationError,
        match=r"calibration set is empty: no images \(.png.*\) in .*empty; it holds 1 other entry: notes.txt; pass",
    ):
        load_calibration_images(tmp_path / "empty", CalibrationConfig())
    with pytest.raises(CalibrationError, match="does not exist; pass a folder of images or a bag"):
        load_calibration_images(tmp_path / "missing", CalibrationConfig())
    with pytest.raises(CalibrationError, match="calibration set is empty"):
        calibration_windows(torch.empty(0, 3, 28, 28), 2)


def test_statistics_count_image_tokens_only():
    model = VGGT.from_pretrained(TINY)
    window = torch.rand(2, 3, 28, 42, generator=torch.Generator().manual_seed(0))
    layers = [
        "aggregator.frame_blocks.0.attn.qkv",
        "aggregator.global_blocks.0.attn.qkv",
        "camera_head.trunk.0.mlp.fc1",
    ]
    reference = reference_pass(model, [window], layers)

    # The same inputs computed directly: special tokens, then patch tokens, per frame (P = 5 + 2 * 3 here).
    aggregator = model.aggregator
    stages = build_stages(model, (28, 42))
    with torch.no_grad():
        patches = stages["dinov2"](window)
        tokens = torch.cat((aggregator.special_tokens(2, patches.dtype), patches), dim=1)
        frame_input = aggregator.frame_blocks[0].norm1(tokens)
        frame_out = aggregator.frame_blocks[0](tokens, (stages["aggregator"].rope_cos, stages["aggregator"].rope_sin))
        global_input = aggregator.global_blocks[0].norm1(
            frame_out
        )  # (S, P, C): the global block sees it as (1, S*P, C)
    for name, layer_input in zip(layers[:2], (frame_input, global_input)):
        image = layer_input[:, 5:]
        stats = reference.statistics[name]
        torch.testing.assert_close(stats.channel_mean_abs, image.abs().mean(dim=(0, 1)), rtol=1e-5, atol=1e-6)
        assert stats.image_amax == pytest.approx(float(image.abs().max()), rel=1e-6)
        assert stats.all_amax == pytest.approx(float(layer_input.abs().max()), rel=1e-6)
    assert token_layout("camera_head.trunk.0", model.config, (28, 42)) == (None, 0)  # camera tokens only: all count
    assert reference.camera_tokens.shape == (2, 32)
    torch.testing.assert_close(reference.outputs[0]["pose_enc"], model(window)["pose_enc"])


def test_compensation_token_is_the_mean_projected_on_the_principal_directions_at_patch_norm():
    # Tokens vary along e0 (most) and e1, around a mean with components along e0, e1 and e2.
    mean = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 0.0])
    offsets = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # uncorrelated: e0, then e1
    tokens = mean + torch.cat((offsets, torch.zeros(4, 4)), dim=1)
    two = compensation_token(tokens, patch_token_norm=10.0, components=32)  # only 2 directions exist
    torch.testing.assert_close(two, torch.tensor([1.0, 2.0, 0, 0, 0, 0]) * 10.0 / math.sqrt(5.0))
    one = compensation_token(tokens, patch_token_norm=10.0, components=1)
    torch.testing.assert_close(one, torch.tensor([10.0, 0, 0, 0, 0, 0]))
    with pytest.raises(CompensationError, match="at least two calibration frames"):
        compensation_token(tokens[:1], patch_token_norm=10.0)


def test_the_compensation_token_reaches_the_camera_head():
    model = VGGT.from_pretrained(TINY)
    head = CompensatedCameraHead(model.camera_head, torch.randn(32))
    seen = []
    model.camera_head.trunk[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    camera_tokens = torch.randn(1, 3, 32)
    with torch.no_grad():
        first = head(camera_tokens)
        head.compensation_token.copy_(torch.randn(32).reshape(1, 1, 32))
        second = head(camera_tokens)
    assert first.shape == (4, 1, 3, 9) and seen[0].shape == (1, 4, 32)  # one more sequence element in the trunk
    assert (first - second).abs().max() > 1e-4  # the frames' cameras depend on it


def synthetic_outputs(frames=2, height=6, width=8):
    generator = torch.Generator().manual_seed(0)
    angle = torch.tensor([0.0, 0.3])[:frames]
    rotation = torch.zeros(frames, 3, 3)
    rotation[:, 0, 0], rotation[:, 0, 2], rotation[:, 1, 1] = angle.cos(), angle.sin(), 1.0
    rotation[:, 2, 0], rotation[:, 2, 2] = -angle.sin(), angle.cos()
    extrinsics = torch.cat((rotation, torch.tensor([[0.0], [0.1], [0.2]]).expand(frames, 3, 1)), dim=-1)
    intrinsics = torch.tensor([[8.0, 0, width / 2], [0, 8.0, height / 2], [0, 0, 1]]).expand(frames, 3, 3)
    depth = 1.0 + torch.rand(frames, height, width, generator=generator)
    return {
        "pose_enc": extrinsics_intrinsics_to_pose_encoding(extrinsics, intrinsics, (height, width))[None],
        "depth": depth[None, ..., None],
        "depth_conf": 1.0 + torch.rand(1, frames, height, width, generator=generator),
        "world_points": unproject_depth(depth, extrinsics, intrinsics)[None],
        "world_points_conf": 1.0 + torch.rand(1, frames, height, width, generator=generator),
    }


def test_task_objective_terms_and_weights_on_known_geometry():
    reference = synthetic_outputs()
    same = task_loss([reference], [reference])
    assert same.camera == same.depth == same.points == 0.0 and same.consistency < 1e-6  # the heads agree exactly

    # Depth, points and camera translation all 10 % larger: the same scene at another scale, so the heads still agree.
    pose = reference["pose_enc"].clone()
    pose[..., :3] *= 1.1
    scaled = dict(
        reference, depth=1.1 * reference["depth"], world_points=1.1 * reference["world_points"], pose_enc=pose
    )
    loss = task_loss([scaled], [reference], ObjectiveWeights())
    assert loss.depth == pytest.approx(0.1) and loss.points == pytest.approx(0.1) and loss.consistency < 1e-6
    assert loss.camera == pytest.approx(
        0.1 * float(reference["pose_enc"][..., :3].abs().sum() / reference["pose_enc"].abs().sum())
    )
    assert loss.total == pytest.approx(loss.camera + 0.1 * 0.1 + 0.1 * 0.1 + loss.consistency)

    # Points 0.05 off the depth-and-camera points everywhere: consistency = 0.05 over the mean point norm.
    moved = dict(reference, world_points=reference["world_points"] + torch.tensor([0.0, 0.05, 0.0]))
    consistency = task_loss([moved], [reference], ObjectiveWeights(camera=0, depth=0, points=0))
    assert consistency.total == pytest.approx(0.05 / float(reference["world_points"].norm(dim=-1).mean()), rel=1e-6)

    errors = errors_vs_reference([dict(reference, depth=1.05 * reference["depth"])] * 2, [reference] * 2)
    assert errors["depth_rel"] == pytest.approx(5.0, rel=1e-5) and errors["points_rel"] == errors["camera_rel"] == 0.0


def test_consistency_leaves_out_frames_without_a_reference_camera_and_rejects_broken_cameras():
    reference = synthetic_outputs()
    broken = reference["pose_enc"].clone()
    broken[0, 1, 8] = -0.1  # frame 1 loses its field of view
    moved = dict(reference, world_points=reference["world_points"] + torch.tensor([0.0, 0.05, 0.0]))
    weights = ObjectiveWeights(camera=0, depth=0, points=0)
    assert task_loss([dict(moved, pose_enc=broken)], [reference], weights).consistency == math.inf
    both_broken = task_loss([dict(moved, pose_enc=broken)], [dict(reference, pose_enc=broken)], weights)
    only_frame_0 = 0.05 / float(reference["world_points"].norm(dim=-1).mean())
    assert both_broken.consistency == pytest.approx(only_frame_0, rel=1e-6)
