# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""vggt_ros.geometry against the official implementation's fixtures and against geometry with known answers."""

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY as FIXTURES
from vggt_ros import geometry as g


def _rot_x(a):
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[1.0, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)


def _rot_y(a):
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, 0, s], [0, 1.0, 0], [-s, 0, c]], dtype=torch.float64)


def _rot_z(a):
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1.0]], dtype=torch.float64)


def _random_rotations(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    return g.quaternion_to_rotation_matrix(q), q


def _random_rigid(n, seed=0):
    rotation, _ = _random_rotations(n, seed)
    t = torch.randn(n, 3, 1, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return torch.cat((rotation, t), dim=-1)


# --- official fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["A", "B"])
def case(request):
    return load_file(FIXTURES / f"fixture_case{request.param}.safetensors")


def test_pose_encoding_matches_official_cameras(case):
    height, width = case["depth"].shape[2:4]
    extrinsics, intrinsics = g.pose_encoding_to_extrinsics_intrinsics(case["pose_enc"], (height, width))
    assert extrinsics.shape == case["extrinsic"].shape and intrinsics.shape == case["intrinsic"].shape
    assert (extrinsics - case["extrinsic"]).abs().max() <= 5e-5
    ref = case["intrinsic"]
    assert torch.all((intrinsics - ref).abs() <= 1e-5 * ref.abs())


def test_unprojection_matches_official_point_map(case):
    points = g.unproject_depth(case["depth"][0], case["extrinsic"][0], case["intrinsic"][0])
    ref = case["point_map_from_depth"]
    subsampled = points[:, ::5, ::7, :]
    assert subsampled.shape == ref.shape
    assert (subsampled - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_unprojection_accepts_depth_without_channel_dim(case):
    with_channel = g.unproject_depth(case["depth"][0], case["extrinsic"][0], case["intrinsic"][0])
    without = g.unproject_depth(case["depth"][0, ..., 0], case["extrinsic"][0], case["intrinsic"][0])
    torch.testing.assert_close(with_channel, without, rtol=0, atol=0)


def test_fixture_cameras_round_trip_through_pose_encoding(case):
    height, width = case["depth"].shape[2:4]
    enc = g.extrinsics_intrinsics_to_pose_encoding(case["extrinsic"], case["intrinsic"], (height, width))
    ref = case["pose_enc"]
    torch.testing.assert_close(enc[..., :3], ref[..., :3], rtol=0, atol=1e-6)
    torch.testing.assert_close(enc[..., 7:], ref[..., 7:], rtol=1e-6, atol=1e-6)
    # The stored quaternion is unnormalised; the recovered one is its unit, w >= 0 version.
    unit = ref[..., 3:7] / ref[..., 3:7].norm(dim=-1, keepdim=True)
    unit = torch.where(unit[..., 3:] < 0, -unit, unit)
    torch.testing.assert_close(enc[..., 3:7], unit, rtol=0, atol=1e-5)


# --- quaternions and rotations --------------------------------------------------------------------------------------

HALF = math.sqrt(0.5)


@pytest.mark.parametrize(
    "quaternion, rotation",
    [
        ((0.0, 0.0, 0.0, 1.0), torch.eye(3, dtype=torch.float64)),
        ((HALF, 0.0, 0.0, HALF), _rot_x(math.pi / 2)),
        ((0.0, HALF, 0.0, HALF), _rot_y(math.pi / 2)),
        ((0.0, 0.0, HALF, HALF), _rot_z(math.pi / 2)),
        ((1.0, 0.0, 0.0, 0.0), _rot_x(math.pi)),
    ],
)
def test_quaternion_to_matrix_known_rotations(quaternion, rotation):
    q = torch.tensor(quaternion, dtype=torch.float64)
    torch.testing.assert_close(g.quaternion_to_rotation_matrix(q), rotation, rtol=0, atol=1e-12)
    recovered = g.rotation_matrix_to_quaternion(rotation)
    torch.testing.assert_close(recovered, q, rtol=0, atol=1e-12)


def test_rotation_about_z_maps_x_axis_to_y_axis():
    rotation = g.quaternion_to_rotation_matrix(torch.tensor([0.0, 0.0, HALF, HALF], dtype=torch.float64))
    torch.testing.assert_close(
        rotation @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
        torch.tensor([0.0, 1.0, 0], dtype=torch.float64),
        rtol=0,
        atol=1e-12,
    )


def test_non_unit_quaternion_is_normalised_implicitly():
    q = torch.tensor([0.3, -0.2, 0.5, 0.7], dtype=torch.float64)
    for factor in (0.01, 3.0, -2.0):
        torch.testing.assert_close(
            g.quaternion_to_rotation_matrix(q * factor), g.quaternion_to_rotation_matrix(q), rtol=0, atol=1e-12
        )
    rotation = g.quaternion_to_rotation_matrix(q * 5.0)
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.linalg.det(rotation).item() == pytest.approx(1.0, abs=1e-12)


def test_quaternion_round_trip_random_rotations_standardises_w():
    rotation, q = _random_rotations(500)
    recovered = g.rotation_matrix_to_quaternion(rotation)
    assert torch.all(recovered[..., 3] >= 0)
    expected = torch.where(q[..., 3:] < 0, -q, q)
    torch.testing.assert_close(recovered, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("axis", [(1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0), (1.0, -2.0, 0.5), (-0.3, 0.1, 0.9)])
@pytest.mark.parametrize("angle", [math.pi, math.pi - 1e-6, math.pi - 1e-3])
def test_quaternion_round_trip_near_half_turn(axis, angle):
    axis = torch.tensor(axis, dtype=torch.float64)
    axis = axis / axis.norm()
    q = torch.cat((axis * math.sin(angle / 2), torch.tensor([math.cos(angle / 2)], dtype=torch.float64)))
    rotation = g.quaternion_to_rotation_matrix(q)
    recovered = g.rotation_matrix_to_quaternion(rotation)
    torch.testing.assert_close(recovered, q, rtol=0, atol=1e-9)
    torch.testing.assert_close(g.quaternion_to_rotation_matrix(recovered), rotation, rtol=0, atol=1e-12)


def test_quaternion_round_trip_float32_batch_shape():
    rotation, _ = _random_rotations(24, seed=3)
    rotation = rotation.float().reshape(2, 3, 4, 3, 3)
    q = g.rotation_matrix_to_quaternion(rotation)
    assert q.shape == (2, 3, 4, 4) and q.dtype == torch.float32
    torch.testing.assert_close(g.quaternion_to_rotation_matrix(q), rotation, rtol=0, atol=2e-6)


# --- pose encoding ---------------------------------------------------------------------------------------------------


def test_known_fov_gives_known_focal_and_centre():
    # 90 degree horizontal FoV: fx = (W/2)/tan(45 deg) = W/2.
    # 60 degree vertical FoV: fy = (H/2)/tan(30 deg) = (H/2)*sqrt(3).
    enc = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 1.0, math.pi / 3, math.pi / 2], dtype=torch.float64)
    extrinsics, intrinsics = g.pose_encoding_to_extrinsics_intrinsics(enc, (350, 518))
    expected_k = torch.tensor(
        [[259.0, 0.0, 259.0], [0.0, 175.0 * math.sqrt(3.0), 175.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    torch.testing.assert_close(intrinsics, expected_k, rtol=1e-12, atol=1e-9)
    expected_e = torch.tensor([[1.0, 0, 0, 1.0], [0, 1.0, 0, 2.0], [0, 0, 1.0, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(extrinsics, expected_e, rtol=0, atol=1e-12)


def test_pose_encoding_round_trip_random_cameras():
    rigid = _random_rigid(12, seed=7).reshape(3, 4, 3, 4)
    fov = torch.empty(3, 4, 2, dtype=torch.float64).uniform_(0.2, 2.8, generator=torch.Generator().manual_seed(2))
    height, width = 280, 518
    intrinsics = torch.zeros(3, 4, 3, 3, dtype=torch.float64)
    intrinsics[..., 0, 0] = (width / 2) / torch.tan(fov[..., 1] / 2)
    intrinsics[..., 1, 1] = (height / 2) / torch.tan(fov[..., 0] / 2)
    intrinsics[..., 0, 2], intrinsics[..., 1, 2], intrinsics[..., 2, 2] = width / 2, height / 2, 1.0
    enc = g.extrinsics_intrinsics_to_pose_encoding(rigid, intrinsics, (height, width))
    assert enc.shape == (3, 4, 9)
    torch.testing.assert_close(enc[..., 7:], fov, rtol=0, atol=1e-12)
    back_e, back_k = g.pose_encoding_to_extrinsics_intrinsics(enc, (height, width))
    torch.testing.assert_close(back_e, rigid, rtol=0, atol=1e-12)
    torch.testing.assert_close(back_k, intrinsics, rtol=1e-12, atol=1e-9)


def test_half_precision_encoding_is_promoted_to_float32():
    enc = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.2], dtype=torch.float16)
    extrinsics, intrinsics = g.pose_encoding_to_extrinsics_intrinsics(enc, (518, 518))
    assert extrinsics.dtype == torch.float32 and intrinsics.dtype == torch.float32


@pytest.mark.parametrize("bad_fov", [0.0, -0.1, math.pi, 4.0, float("nan"), float("inf")])
def test_bad_fov_raises_naming_frame_and_value(bad_fov):
    enc = torch.tensor([[0.0, 0, 0, 0, 0, 0, 1, 1.0, 1.0]] * 3)
    enc[2, 8] = bad_fov
    with pytest.raises(ValueError, match=r"pose_enc\[2\]: fov_w = .*outside \(0, pi\)") as info:
        g.pose_encoding_to_extrinsics_intrinsics(enc, (518, 518))
    assert repr(float(enc[2, 8])) in str(info.value)


def test_bad_vertical_fov_names_batched_index():
    enc = torch.tensor([0.0, 0, 0, 0, 0, 0, 1, 1.0, 1.0]).repeat(2, 3, 1)
    enc[1, 0, 7] = 0.0  # a ReLU-clipped FoV
    with pytest.raises(ValueError, match=r"pose_enc\[1, 0\]: fov_h = 0\.0"):
        g.pose_encoding_to_extrinsics_intrinsics(enc, (518, 518))


@pytest.mark.parametrize(
    "call",
    [
        lambda: g.pose_encoding_to_extrinsics_intrinsics(torch.zeros(3, 8), (518, 518)),
        lambda: g.pose_encoding_to_extrinsics_intrinsics(torch.tensor([0.0, 0, 0, 0, 0, 0, 1, 1, 1]), (518,)),
        lambda: g.pose_encoding_to_extrinsics_intrinsics(torch.tensor([0.0, 0, 0, 0, 0, 0, 1, 1, 1]), (0, 518)),
        lambda: g.quaternion_to_rotation_matrix(torch.zeros(3)),
        lambda: g.quaternion_to_rotation_matrix(torch.zeros(4)),
        lambda: g.rotation_matrix_to_quaternion(torch.eye(4)),
        lambda: g.invert_rigid(torch.eye(3)),
        lambda: g.compose_rigid(torch.zeros(3, 4), torch.zeros(4, 4)),
        lambda: g.transform_points(torch.zeros(3, 3), torch.zeros(5, 3)),
        lambda: g.transform_points(torch.zeros(3, 4), torch.zeros(5, 2)),
        lambda: g.transform_points(torch.ones(4, 4), torch.zeros(5, 3)),
        lambda: g.unproject_depth(torch.ones(2, 4, 5, 2), torch.zeros(2, 3, 4), torch.eye(3).repeat(2, 1, 1)),
        lambda: g.depth_to_camera_points(torch.ones(2, 4, 5), torch.eye(3).repeat(3, 1, 1)),
        lambda: g.extrinsics_intrinsics_to_pose_encoding(torch.zeros(2, 3, 4), torch.eye(3), (4, 4)),
        lambda: g.similarity_matrix(-1.0, torch.eye(3), torch.zeros(3)),
        lambda: g.decompose_similarity(torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))),
        lambda: g.decompose_similarity(torch.eye(3)),
    ],
)
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_non_array_input_raises_type_error():
    with pytest.raises(TypeError, match="quaternion must be a torch.Tensor or numpy.ndarray"):
        g.quaternion_to_rotation_matrix([0.0, 0.0, 0.0, 1.0])


# --- unprojection ----------------------------------------------------------------------------------------------------


def test_depth_to_camera_points_uses_integer_pixel_coordinates():
    k = torch.tensor([[2.0, 0, 2.0], [0, 4.0, 1.0], [0, 0, 1.0]], dtype=torch.float64)
    depth = torch.full((3, 5), 2.0, dtype=torch.float64)
    points = g.depth_to_camera_points(depth, k)
    assert points.shape == (3, 5, 3)
    # Pixel (row 0, column 0): x = (0 - 2) * 2 / 2 = -2, y = (0 - 1) * 2 / 4 = -0.5.
    torch.testing.assert_close(points[0, 0], torch.tensor([-2.0, -0.5, 2.0], dtype=torch.float64))
    # The principal point (column 2, row 1) lies on the optical axis: no +0.5 pixel-centre shift.
    torch.testing.assert_close(points[1, 2], torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(points[2, 4], torch.tensor([2.0, 0.5, 2.0], dtype=torch.float64))


def test_unproject_with_known_camera_pose():
    # Camera at world (0, 0, -1) looking along world +z: camera-from-world t = (0, 0, 1).
    extrinsics = torch.tensor([[[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 1.0]]], dtype=torch.float64)
    k = torch.tensor([[[1.0, 0, 1.0], [0, 1.0, 1.0], [0, 0, 1.0]]], dtype=torch.float64)
    depth = torch.full((1, 3, 3, 1), 3.0, dtype=torch.float64)
    points = g.unproject_depth(depth, extrinsics, k)
    assert points.shape == (1, 3, 3, 3)
    torch.testing.assert_close(points[0, 1, 1], torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(points[0, 0, 2], torch.tensor([3.0, -3.0, 2.0], dtype=torch.float64))


def test_unprojected_points_project_back_to_their_pixels():
    rigid = _random_rigid(2, seed=11)
    k = torch.tensor([[300.0, 0, 64.0], [0, 280.0, 48.0], [0, 0, 1.0]], dtype=torch.float64).repeat(2, 1, 1)
    depth = torch.rand(2, 96, 128, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.5
    world = g.unproject_depth(depth, rigid, k)
    cam = g.transform_points(rigid, world.flatten(1, 2))
    pixels = cam @ k.transpose(-1, -2)
    pixels = pixels[..., :2] / pixels[..., 2:]
    rows, columns = torch.arange(96.0, dtype=torch.float64), torch.arange(128.0, dtype=torch.float64)
    v, u = torch.meshgrid(rows, columns, indexing="ij")
    expected = torch.stack((u, v), dim=-1).flatten(0, 1).expand(2, -1, -1)
    torch.testing.assert_close(pixels, expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(cam[..., 2], depth.flatten(1, 2), rtol=0, atol=1e-12)


# --- rigid transforms ------------------------------------------------------------------------------------------------


def test_invert_and_compose_rigid_identities():
    a, b = _random_rigid(5, seed=1), _random_rigid(5, seed=2)
    identity = torch.eye(3, 4, dtype=torch.float64).expand(5, 3, 4)
    torch.testing.assert_close(g.compose_rigid(a, g.invert_rigid(a)), identity, rtol=0, atol=1e-12)
    torch.testing.assert_close(g.compose_rigid(g.invert_rigid(a), a), identity, rtol=0, atol=1e-12)
    torch.testing.assert_close(g.invert_rigid(g.invert_rigid(a)), a, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        g.invert_rigid(g.compose_rigid(a, b)), g.compose_rigid(g.invert_rigid(b), g.invert_rigid(a)), rtol=0, atol=1e-12
    )


def test_compose_rigid_applies_second_then_first():
    a, b = _random_rigid(1, seed=5)[0], _random_rigid(1, seed=6)[0]
    points = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        g.transform_points(g.compose_rigid(a, b), points),
        g.transform_points(a, g.transform_points(b, points)),
        rtol=0,
        atol=1e-12,
    )


def test_known_rigid_transform_of_points():
    # 90 degrees about z, then translate by (1, 2, 3): x-axis point (1, 0, 0) -> (0, 1, 0) + t.
    transform = torch.cat((_rot_z(math.pi / 2), torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)), dim=-1)
    points = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]], dtype=torch.float64)
    expected = torch.tensor([[1.0, 3.0, 3.0], [1.0, 2.0, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(g.transform_points(transform, points), expected, rtol=0, atol=1e-12)
    homogeneous = torch.cat((transform, torch.tensor([[0.0, 0, 0, 1]], dtype=torch.float64)), dim=0)
    torch.testing.assert_close(g.transform_points(homogeneous, points), expected, rtol=0, atol=1e-12)


# --- similarity transforms -------------------------------------------------------------------------------------------


def test_similarity_known_scale_and_decomposition():
    rotation = _rot_x(math.pi / 2)
    translation = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    m = g.similarity_matrix(2.5, rotation, translation)
    assert m.shape == (4, 4)
    # p = (0, 1, 0): R p = (0, 0, 1), scaled 2.5, plus t.
    torch.testing.assert_close(
        g.transform_points(m, torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)),
        torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64),
        rtol=0,
        atol=1e-12,
    )
    scale, r, t = g.decompose_similarity(m)
    assert scale.item() == pytest.approx(2.5, abs=1e-12)
    torch.testing.assert_close(r, rotation, rtol=0, atol=1e-12)
    torch.testing.assert_close(t, translation, rtol=0, atol=0)


def test_similarity_invert_and_compose():
    rotations, _ = _random_rotations(4, seed=9)
    scales = torch.tensor([0.5, 1.0, 2.0, 7.0], dtype=torch.float64)
    translations = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = g.similarity_matrix(scales, rotations, translations)
    b = g.similarity_matrix(scales.flip(0), rotations.flip(0), -translations)
    identity = torch.eye(4, dtype=torch.float64).expand(4, 4, 4)
    torch.testing.assert_close(g.compose_similarity(a, g.invert_similarity(a)), identity, rtol=0, atol=1e-12)
    torch.testing.assert_close(g.invert_similarity(a), torch.linalg.inv(a), rtol=0, atol=1e-12)
    ab = g.compose_similarity(a, b)
    scale_ab, _, _ = g.decompose_similarity(ab)
    torch.testing.assert_close(scale_ab, scales * scales.flip(0), rtol=1e-12, atol=0)
    points = torch.randn(4, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        g.transform_points(ab, points), g.transform_points(a, g.transform_points(b, points)), rtol=0, atol=1e-12
    )


def test_rigid_and_scale_splits_similarity_placed_cameras():
    """A camera placed by a similarity sees a point at the depth its rigid pose gives, times the scale."""
    rotations, _ = _random_rotations(3, seed=5)
    scales = np.array([0.5, 1.0, 3.0])
    centres = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5], [4.0, 0.0, -2.0]])
    placed = g.similarity_matrix(torch.from_numpy(scales), rotations, torch.from_numpy(centres)).numpy()
    rigid, scale = g.rigid_and_scale(placed)
    assert rigid.shape == (3, 4, 4) and scale.shape == (3,)
    np.testing.assert_allclose(scale, scales, rtol=1e-12)
    np.testing.assert_allclose(rigid[:, :3, 3], centres, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rigid[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (3, 1)), rtol=0, atol=0)
    np.testing.assert_allclose(
        rigid[:, :3, :3] @ rigid[:, :3, :3].transpose(0, 2, 1), np.eye(3)[None].repeat(3, 0), atol=1e-12
    )
    # A point 2 units ahead of each camera (camera frame) lands where the similarity puts it.
    ahead = np.array([0.3, -0.1, 2.0])
    np.testing.assert_allclose(
        rigid[:, :3, :3] @ (ahead * scale[:, None])[..., None] + rigid[:, :3, 3:],
        placed[:, :3, :3] @ ahead[:, None] + placed[:, :3, 3:],
        atol=1e-12,
    )
    pose, one = g.moved_pose(placed[2], np.eye(4))
    np.testing.assert_allclose(pose, rigid[2], atol=1e-12)
    assert one == pytest.approx(3.0, rel=1e-12)


def test_similarity_with_unit_scale_equals_rigid():
    rigid = _random_rigid(3, seed=4)
    m = g.similarity_matrix(1.0, rigid[..., :3], rigid[..., 3])
    torch.testing.assert_close(g.invert_similarity(m)[..., :3, :], g.invert_rigid(rigid), rtol=0, atol=1e-12)


# --- numpy in, numpy out ---------------------------------------------------------------------------------------------


def test_numpy_inputs_give_numpy_outputs(case):
    height, width = case["depth"].shape[2:4]
    enc = case["pose_enc"].numpy()
    extrinsics, intrinsics = g.pose_encoding_to_extrinsics_intrinsics(enc, (height, width))
    assert isinstance(extrinsics, np.ndarray) and isinstance(intrinsics, np.ndarray)
    np.testing.assert_array_equal(extrinsics, case["extrinsic"].numpy())
    points = g.unproject_depth(case["depth"][0].numpy(), extrinsics[0], intrinsics[0])
    assert isinstance(points, np.ndarray) and points.dtype == np.float32
    ref = case["point_map_from_depth"].numpy()
    assert np.abs(points[:, ::5, ::7] - ref).max() <= 1e-5 * np.abs(ref).max()


def test_numpy_outputs_for_every_function():
    rigid = _random_rigid(2, seed=3).numpy()
    q = g.rotation_matrix_to_quaternion(rigid[..., :3])
    assert isinstance(q, np.ndarray) and q.shape == (2, 4) and q.dtype == np.float64
    assert isinstance(g.quaternion_to_rotation_matrix(q), np.ndarray)
    assert isinstance(g.invert_rigid(rigid), np.ndarray)
    assert isinstance(g.compose_rigid(rigid, rigid), np.ndarray)
    assert isinstance(g.transform_points(rigid, np.zeros((2, 5, 3))), np.ndarray)
    # Read-only and negatively strided arrays are accepted too.
    frozen = rigid[::-1].copy()
    frozen.setflags(write=False)
    np.testing.assert_allclose(g.invert_rigid(rigid[::-1]), g.invert_rigid(frozen), rtol=0, atol=0)
    m = g.similarity_matrix(2.0, rigid[0, :, :3], rigid[0, :, 3])
    assert isinstance(m, np.ndarray) and m.shape == (4, 4)
    scale, r, t = g.decompose_similarity(m)
    assert isinstance(scale, np.ndarray) and isinstance(r, np.ndarray) and isinstance(t, np.ndarray)
    assert float(scale) == pytest.approx(2.0)
    np.testing.assert_allclose(g.compose_similarity(m, g.invert_similarity(m)), np.eye(4), rtol=0, atol=1e-12)
    k = np.array([[10.0, 0, 2], [0, 10.0, 2], [0, 0, 1]])
    cam = g.depth_to_camera_points(np.ones((4, 4)), k)
    assert isinstance(cam, np.ndarray) and cam.shape == (4, 4, 3)
    enc = g.extrinsics_intrinsics_to_pose_encoding(rigid, np.stack([k, k]), (4, 4))
    assert isinstance(enc, np.ndarray) and enc.shape == (2, 9)


def test_project_points_has_known_answers():
    """u = fx x / z + cx, v = fy y / z + cy; a point in the camera's plane (z = 0) projects to no finite pixel."""
    k = np.array([[100.0, 0.0, 10.0], [0.0, 200.0, 20.0], [0.0, 0.0, 1.0]])
    uv = g.project_points(k, np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]))
    np.testing.assert_array_equal(uv[:2], [[35.0, 120.0], [10.0, 20.0]])
    assert not np.isfinite(uv[2]).any()
