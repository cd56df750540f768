"""products: cameras, depth and clouds from a pipeline output, against hand-built cameras and plain pinhole maths."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from vggt_ros.products import CloudConfig, FrameProducts, build_cloud, decode_frames, express_in_world, pack_rgb

H, W = 6, 8
FX, FY = 10.0, 12.0


def _rotation_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# Camera 0 at the world origin; camera 1 turned 30 degrees about y and shifted. Extrinsics are camera-from-world.
ANGLE = math.radians(30.0)
CAMERA_FROM_WORLD = [(np.eye(3), np.zeros(3)), (_rotation_y(ANGLE), np.array([0.5, -0.2, 0.1]))]
QUATERNIONS = [(0.0, 0.0, 0.0, 1.0), (0.0, math.sin(ANGLE / 2), 0.0, math.cos(ANGLE / 2))]


@pytest.fixture(scope="module")
def outputs():
    rng = np.random.default_rng(3)
    fov_h, fov_w = 2 * math.atan((H / 2) / FY), 2 * math.atan((W / 2) / FX)
    pose_enc = np.array([[*t, *q, fov_h, fov_w] for (_, t), q in zip(CAMERA_FROM_WORLD, QUATERNIONS)], dtype=np.float32)
    return {
        "pose_enc": torch.from_numpy(pose_enc)[None],
        "depth": torch.from_numpy(rng.uniform(1.0, 3.0, (1, 2, H, W, 1)).astype(np.float32)),
        "depth_conf": torch.from_numpy(rng.uniform(1.0, 5.0, (1, 2, H, W)).astype(np.float32)),
        "world_points": torch.zeros(1, 2, H, W, 3),  # present in real outputs, unused here
    }


@pytest.fixture(scope="module")
def colors():
    rng = np.random.default_rng(4)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(2)]


def _expected_world_point(frame: int, depth: np.ndarray, v: int, u: int) -> np.ndarray:
    rotation, translation = CAMERA_FROM_WORLD[frame]
    d = float(depth[frame, v, u])
    camera_point = np.array([(u - W / 2) * d / FX, (v - H / 2) * d / FY, d])
    return rotation.T @ (camera_point - translation)


def test_decode_gives_the_encoded_cameras(outputs):
    frames = decode_frames(outputs)
    assert len(frames) == 2
    for frame, (rotation, translation) in zip(frames, CAMERA_FROM_WORLD):
        np.testing.assert_allclose(frame.intrinsics, [[FX, 0, W / 2], [0, FY, H / 2], [0, 0, 1]], rtol=1e-6)
        np.testing.assert_allclose(frame.world_from_camera[:, :3], rotation.T, atol=1e-6)
        np.testing.assert_allclose(frame.world_from_camera[:, 3], -rotation.T @ translation, atol=1e-6)
        assert frame.depth.shape == (H, W) and frame.depth.dtype == np.float32
        assert frame.confidence.shape == (H, W) and frame.image_hw == (H, W)
    np.testing.assert_array_equal(frames[1].depth, outputs["depth"][0, 1, :, :, 0].numpy())


def test_decode_accepts_numpy_without_the_batch_axis(outputs):
    unbatched = {key: value[0].numpy() for key, value in outputs.items()}
    a, b = decode_frames(outputs), decode_frames(unbatched)
    np.testing.assert_array_equal(a[1].world_from_camera, b[1].world_from_camera)
    np.testing.assert_array_equal(a[1].depth, b[1].depth)


def test_unfiltered_cloud_is_organised_and_every_point_is_its_pixel_unprojected(outputs, colors):
    frames = decode_frames(outputs)
    cloud = build_cloud(frames, colors, CloudConfig())
    assert (cloud.height, cloud.width) == (2 * H, W)
    grid = cloud.points.reshape(2, H, W, 5)
    depth = outputs["depth"][0, ..., 0].numpy()
    for f in range(2):
        for v in range(H):
            for u in range(W):
                np.testing.assert_allclose(
                    grid[f, v, u, :3], _expected_world_point(f, depth, v, u), rtol=1e-5, atol=1e-5
                )
        bits = grid[f, :, :, 3].view(np.uint32)
        np.testing.assert_array_equal(np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], -1), colors[f])
        np.testing.assert_array_equal(grid[f, :, :, 4], outputs["depth_conf"][0, f].numpy())


def test_decimation_keeps_every_nth_pixel_of_the_full_cloud(outputs, colors):
    frames = decode_frames(outputs)
    full = build_cloud(frames, colors, CloudConfig()).points.reshape(2, H, W, 5)
    cloud = build_cloud(frames, colors, CloudConfig(point_decimation=3))
    assert (cloud.height, cloud.width) == (2 * 2, 3)
    np.testing.assert_allclose(cloud.points.reshape(2, 2, 3, 5), full[:, ::3, ::3], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("percentile, threshold", [(50.0, 0.0), (0.0, 3.0), (25.0, 3.5), (80.0, 2.0)])
def test_confidence_filter_keeps_exactly_the_confident_points(outputs, colors, percentile, threshold):
    frames = decode_frames(outputs)
    full = build_cloud(frames, colors, CloudConfig()).points
    confidence = outputs["depth_conf"].numpy().reshape(-1)
    cut = max(threshold, np.percentile(confidence, percentile) if percentile else 0.0)
    expected = full[confidence >= cut]

    cloud = build_cloud(frames, colors, CloudConfig(confidence_percentile=percentile, confidence_threshold=threshold))

    assert cloud.height == 1 and cloud.width == len(expected) > 0
    np.testing.assert_array_equal(cloud.points, expected)


def test_express_in_world_moves_cameras_depth_and_points_by_the_similarity(outputs, colors):
    scale, rotation, translation = 2.0, _rotation_z(math.radians(90.0)), np.array([1.0, 2.0, 3.0])
    world_from_window = np.eye(4)
    world_from_window[:3, :3] = scale * rotation
    world_from_window[:3, 3] = translation
    frames = decode_frames(outputs)

    moved = express_in_world(frames, world_from_window)

    before = build_cloud(frames, colors, CloudConfig()).points[:, :3].astype(np.float64)
    after = build_cloud(moved, colors, CloudConfig()).points[:, :3]
    np.testing.assert_allclose(after, scale * before @ rotation.T + translation, rtol=1e-5, atol=1e-5)
    for old, new in zip(frames, moved):
        np.testing.assert_allclose(new.depth, scale * old.depth, rtol=1e-6)
        np.testing.assert_array_equal(new.intrinsics, old.intrinsics)
        np.testing.assert_allclose(new.world_from_camera[:, :3], rotation @ old.world_from_camera[:, :3], atol=1e-12)
        # The camera centre is a point, so it moves like one.
        np.testing.assert_allclose(
            new.world_from_camera[:, 3], scale * rotation @ old.world_from_camera[:, 3] + translation
        )


def test_identity_leaves_frames_unchanged(outputs):
    frames = decode_frames(outputs)
    moved = express_in_world(frames, np.eye(4))
    for old, new in zip(frames, moved):
        np.testing.assert_array_equal(new.depth, old.depth)
        np.testing.assert_allclose(new.world_from_camera, old.world_from_camera, atol=1e-15)


def test_pack_rgb_puts_the_channels_in_pointcloud2_bit_order():
    packed = pack_rgb(np.array([[255, 128, 1], [0, 0, 0]], dtype=np.uint8))
    assert packed.dtype == np.float32
    assert packed.view(np.uint32).tolist() == [0x00FF8001, 0]


def test_missing_output_is_reported(outputs):
    with pytest.raises(KeyError, match="depth_conf"):
        decode_frames({"pose_enc": outputs["pose_enc"], "depth": outputs["depth"]})


def test_unusable_field_of_view_names_the_frame(outputs):
    broken = dict(outputs)
    pose_enc = outputs["pose_enc"].clone()
    pose_enc[0, 1, 8] = 0.0  # the ReLU clipped fov_w: the focal length would be infinite
    broken["pose_enc"] = pose_enc
    with pytest.raises(ValueError, match=r"\[1\].*fov_w"):
        decode_frames(broken)


def test_inconsistent_shapes_are_rejected(outputs, colors):
    with pytest.raises(ValueError, match="shapes disagree"):
        decode_frames({**outputs, "depth_conf": outputs["depth_conf"][:, :1]})
    frames = decode_frames(outputs)
    small = FrameProducts(
        frames[0].depth[:4], frames[0].confidence[:4], frames[0].intrinsics, frames[0].world_from_camera
    )
    with pytest.raises(ValueError, match="must be"):
        build_cloud([frames[0], small], colors, CloudConfig())
    with pytest.raises(ValueError, match="point_decimation"):
        CloudConfig(point_decimation=0)
    with pytest.raises(ValueError, match="confidence_percentile"):
        CloudConfig(confidence_percentile=100.0)


def test_filtered_cloud_drops_masked_pixels_and_keeps_filtering(outputs, colors):
    frames = decode_frames(outputs)
    depth = frames[0].depth.copy()
    depth[:2] = np.nan  # pixels the world masked as unusable
    confidence = frames[0].confidence.copy()
    confidence[2, :] = np.nan
    holed = [dataclasses.replace(frames[0], depth=depth, confidence=confidence), *frames[1:]]
    cloud = build_cloud(holed, colors, CloudConfig(confidence_percentile=50.0)).points
    finite = build_cloud(holed, colors, CloudConfig()).points
    finite = finite[np.isfinite(finite[:, [0, 1, 2, 4]]).all(axis=1)]
    assert np.isfinite(cloud).all()
    np.testing.assert_array_equal(cloud, finite[finite[:, 4] >= np.percentile(finite[:, 4], 50.0)])
    assert len(cloud) <= len(finite) // 2 + 1
