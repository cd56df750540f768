# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Camera and rigid-body geometry for VGGT outputs, written once on torch and usable from numpy.

Conventions (shared by the whole project):
  * VGGT's world is the first frame's OpenCV optical frame (x right, y down, z forward).
  * Poses are rigid ``(..., 4, 4)`` matrices named ``parent_from_child`` after their two frames
    (``world_from_camera``: ``p_world = world_from_camera @ p_camera``); `invert_pose`, `compose_poses` and
    `scale_pose` are the one family that handles them.
  * VGGT's extrinsics are camera-from-world ``[R | t]`` of shape ``(..., 3, 4)`` (``p_cam = R @ p_world + t``):
    they appear only where the pose encoding is decoded (`pose_encoding_to_extrinsics_intrinsics`), and the
    ``(..., 3, 4)`` helpers `invert_rigid` / `compose_rigid` serve that form.
  * Quaternions are in ROS order ``(x, y, z, w)``.
  * Pose encoding "absT_quaR_FoV" is ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` with FoVs in radians.
  * Similarity transforms are 4x4 matrices ``[[s*R, t], [0, 0, 0, 1]]``.

Every public function accepts torch tensors or numpy arrays. Given any numpy array it returns numpy
(arrays converted with ``torch.from_numpy``, results converted back); given tensors it returns tensors
on the input's device.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import torch

_F = TypeVar("_F", bound=Callable[..., Any])

# Below this squared norm a quaternion has no defined rotation (the formula divides by it).
_MIN_QUATERNION_NORM_SQ = 1e-12


def _to_tensor(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        # from_numpy rejects negative strides and warns on read-only arrays; a contiguous writable copy avoids both.
        if not value.flags.writeable or not value.flags.c_contiguous:
            value = np.array(value, order="C", copy=True)
        return torch.from_numpy(value)
    return value


def _to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, tuple):
        return tuple(_to_numpy(v) for v in value)
    return value


def _accepts_numpy(func: _F) -> _F:
    """Run a torch implementation on numpy inputs: arrays in -> tensors -> arrays out."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given_numpy = any(isinstance(a, np.ndarray) for a in (*args, *kwargs.values()))
        if not given_numpy:
            return func(*args, **kwargs)
        result = func(*(_to_tensor(a) for a in args), **{k: _to_tensor(v) for k, v in kwargs.items()})
        return _to_numpy(result)

    return wrapper  # type: ignore[return-value]


def _check_tensor(name: str, value: Any, trailing: tuple[int, ...], layout: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray of shape {layout}, got {type(value).__name__}")
    if value.ndim < len(trailing) or tuple(value.shape[value.ndim - len(trailing) :]) != trailing:
        raise ValueError(f"{name} must have shape {layout}, got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def _working_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """At least float32: half-precision engine outputs would lose most digits of a focal length or a point."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _check_image_hw(image_hw: Sequence[int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_hw)
    except (TypeError, ValueError):
        raise ValueError(f"image_hw must be (height, width), got {image_hw!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"image_hw must be positive (height, width), got {image_hw!r}")
    return height, width


@_accepts_numpy
def quaternion_to_rotation_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from quaternions.

    Args:
        quaternion: ``(..., 4)`` in (x, y, z, w) order; need not be unit length (it is normalised implicitly,
            as in VGGT's pose decoding).
    Returns:
        ``(..., 3, 3)`` rotation matrices, dtype of the input.
    Raises:
        ValueError: wrong shape, or a (near-)zero quaternion, which has no rotation.
    """
    q = _check_tensor("quaternion", quaternion, (4,), "(..., 4) [x, y, z, w]")
    x, y, z, w = q.unbind(-1)
    norm_sq = (q * q).sum(-1)
    if bool((norm_sq < _MIN_QUATERNION_NORM_SQ).any()):
        raise ValueError("quaternion has (near-)zero norm; it defines no rotation")
    s = 2.0 / norm_sq
    rows = (
        1 - s * (y * y + z * z),
        s * (x * y - z * w),
        s * (x * z + y * w),
        s * (x * y + z * w),
        1 - s * (x * x + z * z),
        s * (y * z - x * w),
        s * (x * z - y * w),
        s * (y * z + x * w),
        1 - s * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


@_accepts_numpy
def rotation_matrix_to_quaternion(rotation: torch.Tensor) -> torch.Tensor:
    """Unit quaternions from rotation matrices.

    Args:
        rotation: ``(..., 3, 3)`` proper rotation matrices.
    Returns:
        ``(..., 4)`` unit quaternions in (x, y, z, w) order, standardised to ``w >= 0``.

    Each component is recovered from the candidate with the largest magnitude, which stays accurate near
    180-degree rotations where the trace-based formula divides by ~0. The choice is a gather, not boolean
    masking, so the shapes never depend on the data.
    """
    r = _check_tensor("rotation", rotation, (3, 3), "(..., 3, 3)")
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = r.reshape(*r.shape[:-2], 9).unbind(-1)
    # 4*w^2, 4*x^2, 4*y^2, 4*z^2 from the diagonal.
    four_sq = torch.stack((1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22), dim=-1)
    two_abs = torch.sqrt(torch.clamp(four_sq, min=0.0))  # 2|w|, 2|x|, 2|y|, 2|z|
    # Row k is 4*q_k*(w, x, y, z): the whole quaternion scaled by 4*q_k, taken from off-diagonal sums/differences.
    candidates = torch.stack(
        (
            torch.stack((four_sq[..., 0], r21 - r12, r02 - r20, r10 - r01), dim=-1),
            torch.stack((r21 - r12, four_sq[..., 1], r10 + r01, r02 + r20), dim=-1),
            torch.stack((r02 - r20, r10 + r01, four_sq[..., 2], r21 + r12), dim=-1),
            torch.stack((r10 - r01, r02 + r20, r21 + r12, four_sq[..., 3]), dim=-1),
        ),
        dim=-2,
    )
    # Only the best-conditioned row is used; the floor just keeps the discarded rows finite.
    candidates = candidates / (2.0 * torch.clamp(two_abs, min=0.1))[..., None]
    best = two_abs.argmax(dim=-1)
    wxyz = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    wxyz = wxyz / torch.linalg.vector_norm(wxyz, dim=-1, keepdim=True)
    wxyz = torch.where(wxyz[..., :1] < 0, -wxyz, wxyz)
    return torch.cat((wxyz[..., 1:], wxyz[..., :1]), dim=-1)


def _check_fov(fov: torch.Tensor, name: str) -> None:
    """Reject FoVs whose focal length would be infinite (<= 0), negative (>= pi) or NaN."""
    bad = ~(torch.isfinite(fov) & (fov > 0) & (fov < math.pi))
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        value = float(fov[index])
        raise ValueError(
            f"pose_enc{list(index)}: {name} = {value!r} rad is outside (0, pi); its focal length would be "
            "infinite or negative. The camera head produced an unusable field of view for this frame."
        )


@_accepts_numpy
def pose_encoding_to_extrinsics_intrinsics(
    pose_enc: torch.Tensor, image_hw: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras from VGGT's "absT_quaR_FoV" pose encoding.

    Args:
        pose_enc: ``(..., 9)`` = [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]; the quaternion need not be unit length.
        image_hw: (H, W) of the images the encoding refers to.
    Returns:
        extrinsics ``(..., 3, 4)`` camera-from-world [R | t] (OpenCV) and intrinsics ``(..., 3, 3)`` with
        fx = (W/2)/tan(fov_w/2), fy = (H/2)/tan(fov_h/2), cx = W/2, cy = H/2 (no -0.5: as VGGT).
        Both are in the input dtype promoted to at least float32.
    Raises:
        ValueError: wrong shape, bad image_hw, or a FoV outside (0, pi) (naming the frame index and value).
    """
    enc = _check_tensor("pose_enc", pose_enc, (9,), "(..., 9) [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]")
    height, width = _check_image_hw(image_hw)
    enc = enc.to(_working_dtype(enc))
    fov_h, fov_w = enc[..., 7], enc[..., 8]
    _check_fov(fov_h, "fov_h")
    _check_fov(fov_w, "fov_w")

    rotation = quaternion_to_rotation_matrix(enc[..., 3:7])
    extrinsics = torch.cat((rotation, enc[..., :3, None]), dim=-1)

    intrinsics = torch.zeros(*enc.shape[:-1], 3, 3, dtype=enc.dtype, device=enc.device)
    intrinsics[..., 0, 0] = (width / 2.0) / torch.tan(fov_w / 2.0)
    intrinsics[..., 1, 1] = (height / 2.0) / torch.tan(fov_h / 2.0)
    intrinsics[..., 0, 2] = width / 2.0
    intrinsics[..., 1, 2] = height / 2.0
    intrinsics[..., 2, 2] = 1.0
    return extrinsics, intrinsics


@_accepts_numpy
def extrinsics_intrinsics_to_pose_encoding(
    extrinsics: torch.Tensor, intrinsics: torch.Tensor, image_hw: Sequence[int]
) -> torch.Tensor:
    """Inverse of :func:`pose_encoding_to_extrinsics_intrinsics`.

    Args:
        extrinsics: ``(..., 3, 4)`` camera-from-world [R | t].
        intrinsics: ``(..., 3, 3)``; only fx and fy are used (the principal point is assumed at the image centre).
        image_hw: (H, W).
    Returns:
        ``(..., 9)`` [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w] with a unit quaternion, qw >= 0.
    """
    ext = _check_tensor("extrinsics", extrinsics, (3, 4), "(..., 3, 4)")
    intr = _check_tensor("intrinsics", intrinsics, (3, 3), "(..., 3, 3)")
    if ext.shape[:-2] != intr.shape[:-2]:
        raise ValueError(
            f"extrinsics {tuple(ext.shape)} and intrinsics {tuple(intr.shape)} must have the same leading (...) dims"
        )
    height, width = _check_image_hw(image_hw)
    quaternion = rotation_matrix_to_quaternion(ext[..., :3])
    fov_h = 2.0 * torch.atan((height / 2.0) / intr[..., 1, 1])
    fov_w = 2.0 * torch.atan((width / 2.0) / intr[..., 0, 0])
    return torch.cat((ext[..., 3], quaternion, fov_h[..., None], fov_w[..., None]), dim=-1)


def _broadcast_leading(names: str, *shapes: torch.Size) -> None:
    try:
        torch.broadcast_shapes(*shapes)
    except RuntimeError:
        listed = [tuple(s) for s in shapes]
        raise ValueError(f"{names} have leading (...) dims that do not broadcast: {listed}") from None


@_accepts_numpy
def depth_to_camera_points(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Back-project depth maps into each camera's OpenCV frame.

    Pixel (row v, column u) uses integer coordinates u = 0..W-1, v = 0..H-1 with no +0.5 centre offset,
    as VGGT does: x = (u - cx) * d / fx, y = (v - cy) * d / fy, z = d.

    Args:
        depth: ``(..., H, W)`` metric-free depth along the optical axis.
        intrinsics: ``(..., 3, 3)``, leading dims broadcastable against depth's.
    Returns:
        ``(..., H, W, 3)`` camera-frame points, in depth's dtype promoted to at least float32.
    """
    if not isinstance(depth, torch.Tensor) or depth.ndim < 2:
        raise ValueError(f"depth must be a tensor of shape (..., H, W), got {getattr(depth, 'shape', type(depth))}")
    intr = _check_tensor("intrinsics", intrinsics, (3, 3), "(..., 3, 3)")
    _broadcast_leading("depth and intrinsics", depth.shape[:-2], intr.shape[:-2])
    dtype = _working_dtype(depth, intr)
    d = depth.to(dtype)
    intr = intr.to(dtype)
    height, width = d.shape[-2:]
    u = torch.arange(width, dtype=dtype, device=d.device)
    v = torch.arange(height, dtype=dtype, device=d.device)[:, None]
    fx, fy = intr[..., 0, 0, None, None], intr[..., 1, 1, None, None]
    cx, cy = intr[..., 0, 2, None, None], intr[..., 1, 2, None, None]
    x = (u - cx) * d / fx
    y = (v - cy) * d / fy
    x, y, z = torch.broadcast_tensors(x, y, d)
    return torch.stack((x, y, z), dim=-1)


@_accepts_numpy
def unproject_depth(depth: torch.Tensor, extrinsics: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """World points from depth maps and cameras (the depth-plus-camera route of VGGT).

    Args:
        depth: ``(S, H, W)`` or ``(S, H, W, 1)`` (any extra leading dims matching the cameras' are allowed).
        extrinsics: ``(S, 3, 4)`` camera-from-world [R | t].
        intrinsics: ``(S, 3, 3)``.
    Returns:
        ``(S, H, W, 3)`` points in the world frame, p_world = R^T (p_cam - t), in depth's dtype promoted to at
        least float32. Computed in float64 internally, as the reference does, then cast back.
    """
    ext = _check_tensor("extrinsics", extrinsics, (3, 4), "(S, 3, 4)")
    intr = _check_tensor("intrinsics", intrinsics, (3, 3), "(S, 3, 3)")
    if not isinstance(depth, torch.Tensor):
        raise TypeError(f"depth must be a torch.Tensor or numpy.ndarray, got {type(depth).__name__}")
    # Leading dims: ext.ndim - 2 of them, so (..., H, W) depth has ext.ndim dims and (..., H, W, 1) one more.
    if depth.ndim == ext.ndim + 1 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != ext.ndim:
        raise ValueError(
            f"depth must be (S, H, W) or (S, H, W, 1) for extrinsics {tuple(ext.shape)}, got {tuple(depth.shape)}"
        )
    out_dtype = _working_dtype(depth, ext)
    points_cam = depth_to_camera_points(depth.to(torch.float64), intr.to(torch.float64))
    world_from_camera = invert_rigid(ext.to(torch.float64))
    points = transform_points(world_from_camera, points_cam.flatten(-3, -2))
    return points.reshape(points_cam.shape).to(out_dtype)


@_accepts_numpy
def invert_rigid(transform: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms ``(..., 3, 4)`` [R | t] -> [R^T | -R^T t] ``(..., 3, 4)``."""
    t = _check_tensor("transform", transform, (3, 4), "(..., 3, 4)")
    rotation_t = t[..., :3].transpose(-1, -2)
    return torch.cat((rotation_t, -(rotation_t @ t[..., 3:])), dim=-1)


@_accepts_numpy
def compose_rigid(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """A∘B ``(..., 3, 4)`` for rigid transforms ``(..., 3, 4)``: applies ``second`` (B) then ``first`` (A)."""
    a = _check_tensor("first", first, (3, 4), "(..., 3, 4)")
    b = _check_tensor("second", second, (3, 4), "(..., 3, 4)")
    _broadcast_leading("first and second", a.shape[:-2], b.shape[:-2])
    rotation = a[..., :3] @ b[..., :3]
    translation = a[..., :3] @ b[..., 3:] + a[..., 3:]
    return torch.cat((rotation, translation), dim=-1)


def homogeneous(rigid: np.ndarray) -> np.ndarray:
    """``(..., 3, 4)`` [R | t] -> ``(..., 4, 4)`` with the bottom row [0, 0, 0, 1] (float64 numpy)."""
    rigid = np.asarray(rigid, dtype=np.float64)
    out = np.zeros((*rigid.shape[:-2], 4, 4))
    out[..., :3, :] = rigid
    out[..., 3, 3] = 1.0
    return out


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """``child_from_parent`` ``(..., 4, 4)`` of rigid poses ``parent_from_child`` ``(..., 4, 4)`` (exact: R^T, no
    general matrix inverse)."""
    pose = np.asarray(pose, dtype=np.float64)
    return homogeneous(invert_rigid(pose[..., :3, :]))


def compose_poses(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``a_from_c`` ``(..., 4, 4)`` of rigid (or similarity) poses ``a_from_b`` and ``b_from_c``."""
    return np.asarray(first, dtype=np.float64) @ np.asarray(second, dtype=np.float64)


def scale_pose(pose: np.ndarray, factor: float) -> np.ndarray:
    """A rigid pose ``(..., 4, 4)`` in a frame whose unit changed by ``factor`` (lengths multiplied by it): the same
    rotation, the position scaled."""
    scaled = np.array(pose, dtype=np.float64, copy=True)
    scaled[..., :3, 3] *= factor
    return scaled


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(N, 3)`` points ``A p + t`` under a rigid or similarity transform ``(3, 4)`` / ``(4, 4)``, in numpy.

    Not `transform_points`: that runs through torch, which took 20 ms for 2,000 points on the 2-core dev box against
    0.03 ms here, and small point sets are moved many times per window (tracks, loop samples, the loop map).
    """
    return points @ transform[:3, :3].T + transform[:3, 3]


def project_points(intrinsics: np.ndarray, camera_points: np.ndarray) -> np.ndarray:
    """``(N, 2)`` pixel coordinates (u, v) of camera-frame points ``(N, 3)`` under a pinhole matrix ``(3, 3)``, in
    numpy (non-finite where z is 0, behind the camera mirrored: the caller checks z)."""
    z = camera_points[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.stack(
            (
                intrinsics[0, 0] * camera_points[:, 0] / z + intrinsics[0, 2],
                intrinsics[1, 1] * camera_points[:, 1] / z + intrinsics[1, 2],
            ),
            axis=1,
        )


@_accepts_numpy
def transform_points(transform: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply affine transforms to point sets.

    Args:
        transform: ``(..., 3, 4)`` [A | t] or ``(..., 4, 4)`` with last row [0, 0, 0, 1] (rigid or similarity).
        points: ``(..., N, 3)``, leading dims broadcastable against the transform's.
    Returns:
        ``(..., N, 3)`` = A p + t for every point.
    """
    if not isinstance(transform, torch.Tensor) or transform.shape[-2:] not in ((3, 4), (4, 4)):
        got = getattr(transform, "shape", type(transform).__name__)
        raise ValueError(f"transform must have shape (..., 3, 4) or (..., 4, 4), got {got}")
    p = _check_tensor("points", points, (3,), "(..., N, 3)")
    if p.ndim < 2:
        raise ValueError(f"points must have shape (..., N, 3), got {tuple(p.shape)}")
    if transform.shape[-2] == 4:
        bottom = transform[..., 3, :]
        expected = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=bottom.dtype, device=bottom.device)
        if not torch.allclose(bottom, expected.expand_as(bottom), atol=1e-6):
            raise ValueError("a (..., 4, 4) transform must be affine: last row [0, 0, 0, 1]")
    _broadcast_leading("transform and points", transform.shape[:-2], p.shape[:-2])
    # einsum rather than p @ A^T: for float64 (N, 3) x (3, 3) on the CPU it avoids a slow skinny-GEMM path (~2x).
    return torch.einsum("...ij,...nj->...ni", transform[..., :3, :3], p) + transform[..., None, :3, 3]


@_accepts_numpy
def similarity_matrix(scale: float | torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Similarity transforms ``[[s*R, t], [0, 0, 0, 1]]``.

    Args:
        scale: positive float or tensor ``(...)``.
        rotation: ``(..., 3, 3)``.
        translation: ``(..., 3)``.
    Returns:
        ``(..., 4, 4)`` mapping p -> s R p + t.
    """
    r = _check_tensor("rotation", rotation, (3, 3), "(..., 3, 3)")
    t = _check_tensor("translation", translation, (3,), "(..., 3)")
    s = torch.as_tensor(scale, dtype=r.dtype, device=r.device)
    if not bool((s > 0).all()):
        raise ValueError(f"similarity scale must be positive, got {scale!r}")
    _broadcast_leading("scale, rotation and translation", s.shape, r.shape[:-2], t.shape[:-1])
    batch = torch.broadcast_shapes(s.shape, r.shape[:-2], t.shape[:-1])
    linear = (s[..., None, None] * r).expand(*batch, 3, 3)
    offset = t.to(r.dtype).expand(*batch, 3)[..., None]
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=r.dtype, device=r.device).expand(*batch, 1, 4)
    return torch.cat((torch.cat((linear, offset), dim=-1), bottom), dim=-2)


def _check_similarity(name: str, matrix: Any) -> torch.Tensor:
    return _check_tensor(name, matrix, (4, 4), "(..., 4, 4) [[s*R, t], [0, 0, 0, 1]]")


@_accepts_numpy
def decompose_similarity(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split similarity transforms ``(..., 4, 4)`` into scale ``(...)``, R ``(..., 3, 3)`` and t ``(..., 3)``.

    The scale is det(sR)^(1/3), so a slightly non-orthogonal block still yields a sensible scale.
    Raises ValueError when the 3x3 block has non-positive determinant (a reflection or a degenerate matrix).
    """
    m = _check_similarity("matrix", matrix)
    linear = m[..., :3, :3]
    det = torch.linalg.det(linear)
    if not bool((det > 0).all()):
        raise ValueError("similarity matrix has a non-positive determinant: it is a reflection or degenerate")
    scale = det.pow(1.0 / 3.0)
    return scale, linear / scale[..., None, None], m[..., :3, 3]


def rigid_and_scale(world_from_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-placed cameras ``(..., 4, 4)`` as a camera pose and a depth scale: the rigid poses
    ``(..., 4, 4)`` float64 (rotation and centre) and the scales ``(...)`` their depth takes."""
    scale, rotation, translation = decompose_similarity(np.asarray(world_from_camera, dtype=np.float64))
    pose = np.zeros(rotation.shape[:-2] + (4, 4))
    pose[..., :3, :3], pose[..., :3, 3], pose[..., 3, 3] = rotation, translation, 1.0
    return pose, scale


def moved_pose(new_world_from_world: np.ndarray, world_from_camera: np.ndarray) -> tuple[np.ndarray, float]:
    """Cameras ``world_from_camera`` ``(..., 4, 4)`` (rigid) in a world moved by the similarity
    ``new_world_from_world`` ``(4, 4)``: their rigid poses in the new world ``(..., 4, 4)`` (the cameras' dtype) and
    the scale their depth takes. A similarity moves a camera rigidly (rotation R R_c, centre s R c + t); its scale
    goes to the depth."""
    scale, rotation, translation = decompose_similarity(np.asarray(new_world_from_world, dtype=np.float64))
    poses = np.zeros_like(world_from_camera)
    poses[..., :3, :3] = rotation @ world_from_camera[..., :3, :3]
    poses[..., :3, 3] = scale * world_from_camera[..., :3, 3] @ rotation.T + translation
    poses[..., 3, 3] = 1.0
    return poses, float(scale)


@_accepts_numpy
def invert_similarity(matrix: torch.Tensor) -> torch.Tensor:
    """Inverse ``(..., 4, 4)`` of similarity transforms: p -> R^T (p - t) / s."""
    scale, rotation, translation = decompose_similarity(matrix)
    rotation_t = rotation.transpose(-1, -2)
    return similarity_matrix(1.0 / scale, rotation_t, -(rotation_t @ translation[..., None])[..., 0] / scale[..., None])


@_accepts_numpy
def compose_similarity(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """A∘B ``(..., 4, 4)`` for similarity transforms: applies ``second`` (B) then ``first`` (A)."""
    a = _check_similarity("first", first)
    b = _check_similarity("second", second)
    _broadcast_leading("first and second", a.shape[:-2], b.shape[:-2])
    return a @ b


def unproject(
    depth: torch.Tensor, world_from_camera: np.ndarray, intrinsics: np.ndarray, step: int = 1
) -> torch.Tensor:
    """``(K, h, w, 3)`` float32 world points of depth maps ``(K, H, W)`` seen from poses ``(K, 4, 4)``, at every
    ``step``-th row and column (h = ceil(H / step)).

    Same convention as `vggt_ros.geometry.depth_to_camera_points` (integer pixel coordinates, no +0.5), in float32
    on the depth's device: world coordinates of a scene stay far inside float32's precision.
    """
    depth = depth[:, ::step, ::step].contiguous()  # read three times below
    count, rows, cols = depth.shape
    device = depth.device
    pose = torch.as_tensor(world_from_camera, dtype=torch.float32, device=device)
    k = torch.as_tensor(intrinsics, dtype=torch.float32, device=device)
    u = torch.arange(0, cols * step, step, dtype=torch.float32, device=device)
    v = torch.arange(0, rows * step, step, dtype=torch.float32, device=device)
    x = (u[None, :] - k[:, 0, 2, None]) / k[:, 0, 0, None]  # (K, w) normalised coordinates
    y = (v[None, :] - k[:, 1, 2, None]) / k[:, 1, 1, None]  # (K, h)
    # One world axis a at a time, over (K, h, w) planes: the ray direction at unit depth, R[a] . (x, y, 1), then
    # t[a] + depth * direction. Torch's kernels over a trailing dimension of 3 take twice as long.
    points = torch.empty((count, rows, cols, 3), dtype=torch.float32, device=device)
    direction = torch.empty((count, rows, cols), dtype=torch.float32, device=device)
    for axis in range(3):
        row = pose[:, axis]
        torch.add((row[:, 0, None] * x)[:, None, :], (row[:, 1, None] * y)[:, :, None], out=direction)
        direction.add_(row[:, 2, None, None])
        torch.addcmul(row[:, 3, None, None], direction, depth, out=points[..., axis])
    return points
