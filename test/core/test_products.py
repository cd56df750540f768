# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""products: decoding, placing and packing one window, against hand-built cameras, float64 geometry and numpy.

The fixture window has S = 3 frames; the depth head ran on D = 2 of them (window frames 0 and 2, so frame 1 has
a camera but no depth), with H x W = 6 x 8 maps and a few unusable pixels (zero, negative, NaN or infinite
depth; zero or NaN confidence).
"""

import math
import re

import numpy as np
import pytest
import torch

from vggt_ros.geometry import unproject, unproject_depth
from vggt_ros.numeric import pack_rgb, percentile, read_rgb, usable_pixels, write_rgb
from vggt_ros.products import decode_window
from vggt_ros.world.cloud import CloudConfig, build_cloud
from vggt_ros.world.placement import cameras_in_world, place_in_world

H, W = 6, 8
FRAME_IDS = ("a", "b", "c")
STAMPS = (1.0, 1.5, 2.25)
DENSE = (0, 2)
FOCALS = ((10.0, 12.0), (9.0, 11.0), (14.0, 13.0))  # (fx, fy) of each window frame
# Unusable pixels: (dense row, v, u, which output, value).
HOLES = (
    (0, 0, 0, "depth", 0.0),
    (0, 1, 2, "depth", -1.0),
    (0, 2, 3, "depth_conf", 0.0),
    (1, 3, 4, "depth", math.nan),
    (1, 0, 6, "depth", math.inf),
    (1, 5, 7, "depth_conf", math.nan),
)
ON_THRESHOLD = (0, 4, 4, 3.0)  # a usable pixel whose confidence is exactly a filter case's threshold

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def _rotation(axis: int, degrees: float) -> np.ndarray:
    """``(3, 3)`` rotation about coordinate axis 0 (x), 1 (y) or 2 (z)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = (axis + 1) % 3, (axis + 2) % 3
    rotation = np.eye(3)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    return rotation


def _quaternion(axis: int, degrees: float) -> list[float]:
    """(x, y, z, w) of `_rotation` (axis, degrees)."""
    half = math.radians(degrees) / 2
    xyz = [0.0, 0.0, 0.0]
    xyz[axis] = math.sin(half)
    return [*xyz, math.cos(half)]


# Camera-from-window rotations (axis, degrees) and translations: frame 0 is the window's frame, as in VGGT.
TURNS = ((0, 0.0), (0, 20.0), (1, -35.0))
SHIFTS = ((0.0, 0.0, 0.0), (0.3, -0.1, 0.2), (-0.4, 0.2, 0.5))
# World from window: p -> SCALE * R p + T with R a quarter turn about z.
SCALE, TURN, SHIFT = 2.0, (2, 90.0), np.array([1.0, 2.0, 3.0])


def _camera_from_window(frame: int) -> np.ndarray:
    """``(3, 4)`` [R | t] of window frame ``frame``."""
    return np.column_stack((_rotation(*TURNS[frame]), SHIFTS[frame]))


def _window_from_camera(frame: int) -> np.ndarray:
    """``(4, 4)`` [[R^T, -R^T t], [0, 0, 0, 1]]."""
    rotation, translation = _rotation(*TURNS[frame]), np.array(SHIFTS[frame])
    pose = np.eye(4)
    pose[:3, :3] = rotation.T
    pose[:3, 3] = -rotation.T @ translation
    return pose


def _intrinsics(frame: int) -> np.ndarray:
    fx, fy = FOCALS[frame]
    return np.array([[fx, 0.0, W / 2], [0.0, fy, H / 2], [0.0, 0.0, 1.0]])


def _world_from_window() -> np.ndarray:
    """``(4, 4)`` similarity [[SCALE * R, T], [0, 0, 0, 1]]."""
    matrix = np.eye(4)
    matrix[:3, :3] = SCALE * _rotation(*TURN)
    matrix[:3, 3] = SHIFT
    return matrix


def _expected_valid() -> np.ndarray:
    """``(D, H, W)`` bool: False exactly at `HOLES`."""
    valid = np.ones((len(DENSE), H, W), dtype=bool)
    for row, v, u, _, _ in HOLES:
        valid[row, v, u] = False
    return valid


def _unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """``(...)`` float32 PointCloud2 rgb -> ``(..., 3)`` uint8."""
    bits = packed.view(np.uint32)
    assert not (bits >> 24).any(), "the top byte of a packed colour must be zero"
    return np.stack(((bits >> 16) & 255, (bits >> 8) & 255, bits & 255), axis=-1).astype(np.uint8)


@pytest.fixture(scope="module", params=DEVICES)
def window(request):
    """The pipeline's outputs and the dense frames' colours on one device.

    Returns dict: ``pose_enc`` (S, 9), ``depth`` (D, H, W, 1), ``depth_conf`` (D, H, W) float32 and
    ``colors`` (D, H, W, 3) uint8.
    """
    rng = np.random.default_rng(3)
    pose_enc = [
        [*SHIFTS[f], *_quaternion(*TURNS[f]), 2 * math.atan((H / 2) / fy), 2 * math.atan((W / 2) / fx)]
        for f, (fx, fy) in enumerate(FOCALS)
    ]
    depth = rng.uniform(1.0, 3.0, (len(DENSE), H, W)).astype(np.float32)
    confidence = rng.uniform(1.0, 5.0, (len(DENSE), H, W)).astype(np.float32)
    for row, v, u, key, value in HOLES:
        (depth if key == "depth" else confidence)[row, v, u] = value
    row, v, u, value = ON_THRESHOLD
    confidence[row, v, u] = value
    return {
        "pose_enc": torch.tensor(pose_enc, dtype=torch.float32, device=request.param),
        "depth": torch.from_numpy(depth[..., None]).to(request.param),
        "depth_conf": torch.from_numpy(confidence).to(request.param),
        "colors": torch.from_numpy(rng.integers(0, 256, (len(DENSE), H, W, 3), dtype=np.uint8)).to(request.param),
    }


def _decode(window, **changes):
    """`decode_window` of the fixture with some of its arguments or outputs replaced."""
    args = {"frame_ids": FRAME_IDS, "stamps": STAMPS, "dense": DENSE, "colors": window["colors"], **changes}
    outputs = {key: args.pop(key, window[key]) for key in ("pose_enc", "depth", "depth_conf")}
    return decode_window(outputs, **args)


@pytest.fixture(scope="module")
def products(window):
    """`WindowProducts` of the fixture window (S = 3, D = 2)."""
    return _decode(window)


@pytest.fixture(scope="module")
def placed(products):
    """Window frames 2 and 0 (in that order: rows must follow the request) under `_world_from_window`."""
    return place_in_world(products, cameras_in_world(_world_from_window(), products.window_from_camera), SCALE, (2, 0))


def _placed_on_grid(products, step: int):
    """`placed`, unprojected on every ``step``-th row and column only."""
    poses = cameras_in_world(_world_from_window(), products.window_from_camera)
    return place_in_world(products, poses, SCALE, (2, 0), step)


def _host(tensor: torch.Tensor) -> np.ndarray:
    return tensor.cpu().numpy()


# decode_window


def test_decode_gives_the_encoded_cameras_and_the_dense_maps(window, products):
    assert products.frame_ids == FRAME_IDS and products.dense == DENSE and products.image_hw == (H, W)
    assert products.stamps.dtype == np.float64 and products.stamps.tolist() == list(STAMPS)
    assert products.window_from_camera.dtype == np.float64 and products.window_from_camera.shape == (3, 4, 4)
    for f in range(3):
        # float32 pose encoding: the quaternion and FoVs carry ~1e-7 rounding.
        np.testing.assert_allclose(products.window_from_camera[f], _window_from_camera(f), atol=1e-6)
        np.testing.assert_allclose(products.intrinsics[f], _intrinsics(f), rtol=1e-6, atol=1e-12)
    device = window["depth"].device
    for name, expected in (("depth", window["depth"][..., 0]), ("confidence", window["depth_conf"])):
        tensor = getattr(products, name)
        assert tensor.device == device and tensor.dtype == torch.float32
        np.testing.assert_array_equal(_host(tensor), _host(expected))
    assert products.colors.device == device and products.colors.dtype == torch.uint8
    np.testing.assert_array_equal(_host(products.colors), _host(window["colors"]))


def test_usable_pixels_are_exactly_those_with_finite_positive_depth_and_confidence(products):
    usable = usable_pixels(products.depth, products.confidence)
    assert usable.dtype == torch.bool
    np.testing.assert_array_equal(_host(usable), _expected_valid())
    for step in (1, 2, 3):
        depth, confidence, grid_usable = products.grid(step)
        np.testing.assert_array_equal(_host(grid_usable), _expected_valid()[:, ::step, ::step])
        np.testing.assert_array_equal(_host(depth), _host(products.depth)[:, ::step, ::step])
        np.testing.assert_array_equal(_host(confidence), _host(products.confidence)[:, ::step, ::step])


def test_depth_without_the_channel_axis_decodes_the_same(window, products):
    squeezed = _decode(window, depth=window["depth"][..., 0])
    np.testing.assert_array_equal(_host(squeezed.depth), _host(products.depth))
    np.testing.assert_array_equal(squeezed.window_from_camera, products.window_from_camera)


def test_image_boxes_make_the_padding_unusable_and_leave_the_outputs_as_they_were(window, products):
    """Pixels outside a frame's image box (padding) get NaN depth and confidence; the rest is as predicted, and the
    pipeline's own output tensors are not written to."""
    depth_before = _host(window["depth"]).copy()
    boxes = ((1, 5, 0, W), (0, H, 2, 7))  # dense row 0: rows 1..4; dense row 1: columns 2..6
    masked = _decode(window, image_boxes=boxes)
    for row, (top, bottom, left, right) in enumerate(boxes):
        inside = np.zeros((H, W), dtype=bool)
        inside[top:bottom, left:right] = True
        for name in ("depth", "confidence"):
            values, original = _host(getattr(masked, name))[row], _host(getattr(products, name))[row]
            assert np.isnan(values[~inside]).all()
            np.testing.assert_array_equal(values[inside], original[inside])
        np.testing.assert_array_equal(
            _host(usable_pixels(masked.depth, masked.confidence))[row], _expected_valid()[row] & inside
        )
    np.testing.assert_array_equal(_host(window["depth"]), depth_before)
    full = _decode(window, image_boxes=((0, H, 0, W),) * len(DENSE))
    np.testing.assert_array_equal(_host(full.depth), _host(products.depth))
    with pytest.raises(ValueError, match="1 image boxes for 2 dense frames"):
        _decode(window, image_boxes=boxes[:1])


def test_colours_follow_the_depth_to_its_device(window):
    """Depth on another device than the colours (the meta device stands in for a GPU on any machine)."""
    meta = {key: window[key].to("meta") for key in ("depth", "depth_conf")}
    products = _decode(window, colors=window["colors"].cpu(), **meta)
    assert products.colors.device.type == "meta"


def test_slot_maps_dense_frames_to_their_rows_and_rejects_frames_without_depth(products):
    assert [products.slot(f) for f in DENSE] == [0, 1]
    with pytest.raises(ValueError, match=r"window frame 1 has no depth.*\(0, 2\)"):
        products.slot(1)
    with pytest.raises(ValueError, match="window frame 1 has no depth"):
        products.sample(1, np.array([0]))
    with pytest.raises(ValueError, match="window frame 1 has no depth"):
        place_in_world(products, products.window_from_camera, 1.0, (0, 1))


@pytest.mark.parametrize("frame", DENSE)
def test_sample_and_window_points_agree_with_unproject_depth(window, products, frame):
    row = DENSE.index(frame)
    pixels = np.array([0, 5, 2 * W + 3, 3 * W + 4, 5 * W + 7, H * W - 1])  # (P,) flat, holes included
    depth, confidence, valid = products.sample(frame, pixels)

    assert depth.dtype == confidence.dtype == np.float64 and valid.dtype == bool
    np.testing.assert_array_equal(depth, _host(window["depth"][row, ..., 0]).reshape(-1)[pixels])
    np.testing.assert_array_equal(confidence, _host(window["depth_conf"][row]).reshape(-1)[pixels])
    np.testing.assert_array_equal(valid, _expected_valid()[row].reshape(-1)[pixels])

    usable = pixels[valid]
    reference = unproject_depth(
        _host(window["depth"][row : row + 1, ..., 0]).astype(np.float64),
        _camera_from_window(frame)[None],
        _intrinsics(frame)[None],
    )[0].reshape(-1, 3)[usable]
    np.testing.assert_allclose(products.window_points(frame, usable, depth[valid]), reference, atol=1e-5)


def test_missing_output_is_reported(window):
    with pytest.raises(KeyError, match="depth_conf"):
        decode_window(
            {"pose_enc": window["pose_enc"], "depth": window["depth"]}, FRAME_IDS, STAMPS, DENSE, window["colors"]
        )


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda w: {"pose_enc": w["pose_enc"][:2]}, r"pose_enc \(2, 9\)"),
        (lambda w: {"depth_conf": w["depth_conf"][:1]}, r"depth_conf \(1, 6, 8\)"),
        (lambda w: {"depth": w["depth"][:, :5]}, r"depth \(2, 5, 8\)"),
        (lambda w: {"colors": w["colors"][..., :1]}, r"colours \(2, 6, 8, 1\)"),
        (lambda w: {"stamps": STAMPS[:2]}, "2 stamps"),
        (lambda w: {"dense": (0,)}, r"D = 1 dense frames \(0,\)"),
    ],
)
def test_shapes_that_disagree_are_named(window, change, named):
    with pytest.raises(ValueError, match=f"window outputs disagree.*{named}"):
        _decode(window, **change(window))


@pytest.mark.parametrize("dense", [(2, 0), (0, 0), (0, 3), (-1, 0)])
def test_dense_indices_must_increase_within_the_window(window, dense):
    with pytest.raises(ValueError, match=rf"increasing and within \[0, 3\).*{re.escape(str(dense))}"):
        _decode(window, dense=dense)


@pytest.mark.parametrize(
    "frame, column, name, value", [(1, 8, "fov_w", 0.0), (2, 7, "fov_h", math.pi), (0, 8, "fov_w", math.nan)]
)
def test_unusable_field_of_view_names_the_frame(window, frame, column, name, value):
    pose_enc = window["pose_enc"].clone()
    pose_enc[frame, column] = value
    with pytest.raises(ValueError, match=rf"\[{frame}\].*{name}.*outside \(0, pi\)"):
        _decode(window, pose_enc=pose_enc)


# cameras_in_world, place_in_world, unproject


def test_cameras_in_world_against_hand_computed_poses():
    """A camera turned a quarter about z, centred at (1, 0, 0), under s = 2, R = quarter turn about z, t = (1, 2, 3):
    its rotation becomes a half turn about z and its centre 2 * (0, 1, 0) + (1, 2, 3) = (1, 4, 3)."""
    window_from_camera = np.eye(4)[None].repeat(2, axis=0)
    window_from_camera[1, :3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    window_from_camera[1, :3, 3] = [1.0, 0.0, 0.0]

    poses = cameras_in_world(_world_from_window(), window_from_camera)

    expected = np.array(
        [
            [[0.0, -1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 0.0, 1.0]],
            [[-1.0, 0.0, 0.0, 1.0], [0.0, -1.0, 0.0, 4.0], [0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 0.0, 1.0]],
        ]
    )
    np.testing.assert_allclose(poses, expected, atol=1e-12)
    np.testing.assert_array_equal(cameras_in_world(np.eye(4), window_from_camera), window_from_camera)


def test_place_in_world_scales_depth_masks_holes_and_moves_points_by_the_similarity(window, products, placed):
    assert placed.frames == (2, 0)
    rows = [DENSE.index(f) for f in placed.frames]
    valid = _expected_valid()[rows]
    window_depth = _host(window["depth"][..., 0]).astype(np.float64)[rows]
    depth = np.where(valid, window_depth, np.nan)  # (K, H, W)

    np.testing.assert_allclose(_host(placed.depth), SCALE * depth, rtol=1e-7)
    assert np.isnan(_host(placed.depth)[~valid]).all() and np.isnan(_host(placed.points)[~valid]).all()
    np.testing.assert_array_equal(_host(placed.confidence), _host(window["depth_conf"])[rows])
    np.testing.assert_array_equal(_host(placed.colors), _host(window["colors"])[rows])
    np.testing.assert_array_equal(placed.intrinsics, products.intrinsics[list(placed.frames)])
    for k, f in enumerate(placed.frames):
        # The similarity applied to the camera's frame, its scale taken out of the axes (it went to the depth).
        np.testing.assert_allclose(
            placed.world_from_camera[k],
            _world_from_window() @ _window_from_camera(f) @ np.diag([1 / SCALE, 1 / SCALE, 1 / SCALE, 1.0]),
            atol=1e-6,
        )

    window_points = unproject_depth(
        depth,
        np.stack([_camera_from_window(f) for f in placed.frames]),
        np.stack([_intrinsics(f) for f in placed.frames]),
    )  # (K, H, W, 3) float64
    expected = SCALE * window_points @ _rotation(*TURN).T + SHIFT
    assert placed.points.dtype == torch.float32 and placed.points.shape == (2, H, W, 3)
    np.testing.assert_allclose(_host(placed.points), expected, atol=2e-5)


def test_identity_placement_leaves_depth_and_poses_unchanged(products):
    placed = place_in_world(products, cameras_in_world(np.eye(4), products.window_from_camera), 1.0, DENSE)
    valid = _expected_valid()
    np.testing.assert_array_equal(_host(placed.depth)[valid], _host(products.depth)[valid])
    np.testing.assert_array_equal(placed.world_from_camera, products.window_from_camera[list(DENSE)])


def test_select_equals_placing_the_chosen_frames(products, placed):
    world_from_camera = cameras_in_world(_world_from_window(), products.window_from_camera)
    chosen, direct = placed.select([1]), place_in_world(products, world_from_camera, SCALE, (0,))
    assert chosen.frames == direct.frames == (0,)
    np.testing.assert_array_equal(chosen.world_from_camera, direct.world_from_camera)
    for name in ("depth", "confidence", "points", "colors"):
        np.testing.assert_array_equal(_host(getattr(chosen, name)), _host(getattr(direct, name)))


def test_unproject_matches_unproject_depth_in_float64():
    """Three random cameras, depth (3, 5, 7): float32 points within float32 rounding of the float64 reference."""
    rng = np.random.default_rng(7)
    depth = rng.uniform(0.5, 20.0, (3, 5, 7))
    camera_from_world = np.stack(
        [np.column_stack((_rotation(a, d), rng.uniform(-5, 5, 3))) for a, d in ((0, 10.0), (1, 170.0), (2, -60.0))]
    )
    world_from_camera = np.stack([np.eye(4)] * 3)
    world_from_camera[:, :3, :3] = camera_from_world[:, :, :3].transpose(0, 2, 1)
    world_from_camera[:, :3, 3] = -np.einsum("kji,kj->ki", camera_from_world[:, :, :3], camera_from_world[:, :, 3])
    intrinsics = np.stack([[[fx, 0.0, 3.5 + fx / 10], [0.0, fx * 1.1, 2.5], [0.0, 0.0, 1.0]] for fx in (4.0, 6.0, 9.0)])

    points = unproject(torch.from_numpy(depth).float(), world_from_camera, intrinsics)

    assert points.dtype == torch.float32 and points.shape == (3, 5, 7, 3)
    np.testing.assert_allclose(points.numpy(), unproject_depth(depth, camera_from_world, intrinsics), atol=1e-4)


# build_cloud, pack_rgb, percentile


def test_unfiltered_cloud_is_organised_and_each_pixel_lands_on_its_cloud_point(placed):
    cloud = build_cloud(placed, CloudConfig())

    assert (cloud.height, cloud.width) == (2 * H, W) and cloud.points.dtype == np.float32
    grid = cloud.points.reshape(2, H, W, 5)
    depth = _host(placed.depth).astype(np.float64)  # the published depth images
    v, u = np.mgrid[:H, :W]
    for k in range(2):
        # Pinhole: the published depth, intrinsics and world pose put pixel (u, v) here.
        (fx, _, cx), (_, fy, cy), _ = placed.intrinsics[k]
        camera = np.stack(((u - cx) * depth[k] / fx, (v - cy) * depth[k] / fy, depth[k]), axis=-1)  # (H, W, 3)
        pose = placed.world_from_camera[k]
        np.testing.assert_allclose(grid[k, ..., :3], camera @ pose[:3, :3].T + pose[:3, 3], atol=2e-5)
    colors = _host(placed.colors)
    np.testing.assert_array_equal(_unpack_rgb(grid[..., 3]), colors)
    np.testing.assert_array_equal(cloud.colors.reshape(2, H, W, 3), colors)
    np.testing.assert_array_equal(grid[..., 4], _host(placed.confidence))
    np.testing.assert_array_equal(cloud.frames, np.repeat([0, 1], H * W))


@pytest.mark.parametrize("step", [2, 3, 4])
def test_decimation_keeps_every_nth_row_and_column(products, placed, step):
    """Placing on a grid of every n-th pixel (the cloud's decimation) gives exactly those points of the full cloud."""
    full = build_cloud(placed, CloudConfig()).points.reshape(2, H, W, 5)
    cloud = build_cloud(_placed_on_grid(products, step), CloudConfig(point_decimation=step))
    rows, cols = math.ceil(H / step), math.ceil(W / step)
    assert (cloud.height, cloud.width) == (2 * rows, cols)
    np.testing.assert_array_equal(cloud.points.reshape(2, rows, cols, 5), full[:, ::step, ::step])
    np.testing.assert_array_equal(cloud.frames, np.repeat([0, 1], rows * cols))


@pytest.mark.parametrize(
    "q, threshold, step", [(50.0, 0.0, 1), (0.0, ON_THRESHOLD[3], 1), (25.0, 3.5, 1), (80.0, 2.0, 1), (40.0, 0.0, 3)]
)
def test_confidence_filter_keeps_exactly_the_confident_usable_points(products, q, threshold, step):
    placed = _placed_on_grid(products, step)
    full = build_cloud(placed, CloudConfig(point_decimation=step))
    usable = _expected_valid()[[DENSE.index(f) for f in placed.frames]][:, ::step, ::step].reshape(-1)
    confidence = full.points[:, 4]
    cut = max(threshold, np.percentile(confidence[usable], q) if q else 0.0)
    keep = usable & (confidence >= cut)

    cloud = build_cloud(
        placed, CloudConfig(confidence_percentile=q, confidence_threshold=threshold, point_decimation=step)
    )

    assert cloud.height == 1 and cloud.width == keep.sum() and 0 < keep.sum() < usable.sum()
    assert np.isfinite(cloud.points).all()
    np.testing.assert_array_equal(cloud.points, full.points[keep])
    np.testing.assert_array_equal(cloud.colors, full.colors[keep])
    np.testing.assert_array_equal(cloud.frames, full.frames[keep])


def test_filtered_cloud_of_a_frame_without_usable_pixels_is_empty(window):
    products = _decode(window, depth=torch.zeros_like(window["depth"]))  # zero depth: no pixel is usable
    holed = place_in_world(products, products.window_from_camera, 1.0, (0,))
    cloud = build_cloud(holed, CloudConfig(confidence_percentile=50.0))
    assert (cloud.height, cloud.width) == (1, 0) and cloud.points.shape == (0, 5) and cloud.colors.shape == (0, 3)


def test_cloud_needs_a_frame(products):
    with pytest.raises(ValueError, match="at least one frame"):
        build_cloud(place_in_world(products, products.window_from_camera, 1.0, ()), CloudConfig())


def test_pack_rgb_puts_the_channels_in_pointcloud2_bit_order():
    packed = pack_rgb(torch.tensor([[255, 128, 1], [0, 0, 0], [1, 2, 255]], dtype=torch.uint8))
    assert packed.dtype == torch.float32 and packed.shape == (3,)
    assert packed.numpy().view(np.uint32).tolist() == [0x00FF8001, 0, 0x000102FF]
    colors = np.random.default_rng(5).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_unpack_rgb(pack_rgb(torch.from_numpy(colors)).numpy()), colors)


@pytest.mark.parametrize("q", [0.0, 7.5, 25.0, 50.0, 73.3, 99.9, 100.0])
@pytest.mark.parametrize(
    "values",
    [np.random.default_rng(6).uniform(1.0, 9.0, 37), np.array([2.0]), np.array([3.0, 1.0, 3.0, 3.0, 2.0, 1.0])],
)
def test_percentile_matches_numpy(values, q):
    ours = percentile(torch.from_numpy(values.astype(np.float32)), q)
    assert isinstance(ours, float)
    assert ours == pytest.approx(np.percentile(values.astype(np.float32).astype(np.float64), q), rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"point_decimation": 0}, "point_decimation"),
        ({"point_decimation": 1.5}, "point_decimation"),
        ({"point_decimation": True}, "point_decimation"),
        ({"confidence_percentile": 100.0}, "confidence_percentile"),
        ({"confidence_percentile": -1.0}, "confidence_percentile"),
        ({"confidence_threshold": -0.5}, "confidence_threshold"),
        ({"confidence_threshold": math.nan}, "confidence_threshold"),
    ],
)
def test_cloud_config_rejects_bad_values(kwargs, named):
    with pytest.raises(ValueError, match=named):
        CloudConfig(**kwargs)


def test_cloud_config_filters_only_when_asked():
    assert not CloudConfig().filters
    assert CloudConfig(confidence_percentile=10.0).filters and CloudConfig(confidence_threshold=1.5).filters


@pytest.mark.parametrize("selection", ["_numpy_order_statistics", "_torch_order_statistics"])
def test_both_order_statistics_routes_give_the_sorted_values(selection):
    """`percentile` selects on the host with numpy for CPU tensors and with torch elsewhere: both give the k-th and
    the next smallest value, repeated values included."""
    import vggt_ros.numeric as numeric

    rng = np.random.default_rng(8)
    for values in (rng.uniform(1.0, 9.0, 101), rng.integers(0, 4, 57).astype(float), np.array([5.0, 5.0])):
        ordered = np.sort(values.astype(np.float32))
        for low in range(len(ordered) - 1):
            lower, upper = getattr(numeric, selection)(torch.from_numpy(values.astype(np.float32)), low, True)
            assert (lower.dtype, upper.dtype) == (torch.float32, torch.float32)
            assert (float(lower), float(upper)) == (ordered[low], ordered[low + 1])


def test_the_sampled_selection_gives_the_sorted_values_and_falls_back_where_its_sample_misses():
    """From `SAMPLED_SELECTION_MIN` values on, the CPU route selects among the values its sample brackets: the same
    order statistics as a sort, at the extremes and through ties, and the full selection where the sample is
    unrepresentative."""
    import vggt_ros.numeric as numeric

    rng = np.random.default_rng(10)
    count = numeric.SAMPLED_SELECTION_MIN + 5_000
    arrays = {
        "normal": rng.normal(size=count),
        "ties": rng.integers(0, 4, count).astype(float),
        "sorted": np.sort(rng.exponential(size=count)),
        "reversed": np.sort(rng.exponential(size=count))[::-1],
        "constant": np.full(count, 3.0),
    }
    for name, values in arrays.items():
        values = values.astype(np.float32)
        ordered = np.sort(values)
        for low in (0, 1, count // 3, count // 2, count - 2):
            assert numeric._bracketed_order_statistics(values, low, True) is not None, (name, low)
            lower, upper = numeric._numpy_order_statistics(torch.from_numpy(values), low, True)
            assert (float(lower), float(upper)) == (ordered[low], ordered[low + 1]), (name, low)
        for q in (0.0, 0.5, 50.0, 97.0, 100.0):
            assert percentile(torch.from_numpy(values), q) == pytest.approx(float(np.percentile(values, q)), rel=1e-6)
    # Every sampled value is 0 and the rest are 1 .. n: the sample brackets only the zeros, so the median's rank
    # lies outside and the full selection answers.
    stride = count // numeric.SELECTION_SAMPLE
    values = np.arange(1, count + 1, dtype=np.float32)
    values[::stride] = 0.0
    assert numeric._bracketed_order_statistics(values, count // 2, False) is None
    assert percentile(torch.from_numpy(values), 50.0) == float(np.percentile(values, 50.0))


def test_rgb_bytes_round_trip_through_the_packed_words():
    colors = torch.from_numpy(np.random.default_rng(9).integers(0, 256, (6, 7, 3), dtype=np.uint8))
    words = torch.full((6, 7, 4), 77, dtype=torch.uint8)  # not zero: write_rgb must clear the fourth byte
    write_rgb(colors, words)
    assert words.view(torch.float32)[..., 0].numpy().tobytes() == pack_rgb(colors).numpy().tobytes()
    assert torch.equal(read_rgb(words), colors)
