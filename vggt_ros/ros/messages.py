# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""ROS message builders from the core's numpy products (PointCloud2, 32FC1 Image, CameraInfo, TFMessage, Path).

Large uint8[] fields are assigned as `bytes`: the generated setters convert a bytes object in one copy, but
walk a numpy array or memoryview element by element (0.8 ms vs 190+ ms for one 518x350 cloud).
"""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, Transform, TransformStamped, Vector3
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from vggt_ros.geometry import rotation_matrix_to_quaternion
from vggt_ros.world.cloud import POINT_FIELDS

NANOSECONDS = 1_000_000_000
_BIG_ENDIAN = sys.byteorder == "big"

# parent_from_world for a REP-103 parent (x forward, y left, z up) above VGGT's optical world (x right, y down,
# z forward): parent x = world z, parent y = -world x, parent z = -world y. Its quaternion is (-0.5, 0.5, -0.5, 0.5).
PARENT_FROM_OPTICAL_WORLD = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def stamp_from_ns(stamp_ns: int) -> Time:
    return Time(sec=stamp_ns // NANOSECONDS, nanosec=stamp_ns % NANOSECONDS)


def ns_from_stamp(stamp: Time) -> int:
    return stamp.sec * NANOSECONDS + stamp.nanosec


def header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=stamp_from_ns(stamp_ns), frame_id=frame_id)


def point_cloud2(
    points: np.ndarray, height: int, width: int, stamp_ns: int, frame_id: str, field_names: Sequence[str] = POINT_FIELDS
) -> PointCloud2:
    """PointCloud2 of float32 fields, one column of ``points`` ``(height * width, fields)`` each: by default
    x, y, z, rgb (packed 0x00RRGGBB) and confidence, 20 bytes per point; the map drops confidence."""
    points = np.ascontiguousarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != len(field_names):
        raise ValueError(
            f"cloud points must be (N, {len(field_names)}) for fields {list(field_names)}, got {points.shape}"
        )
    fields = [
        PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, name in enumerate(field_names)
    ]
    point_step = 4 * len(field_names)
    msg = PointCloud2(
        header=header(stamp_ns, frame_id),
        height=height,
        width=width,
        fields=fields,
        is_bigendian=_BIG_ENDIAN,
        point_step=point_step,
        row_step=point_step * width,
        # Column by column: numpy tests a contiguous column several times faster than the strided (N, 3) block.
        is_dense=all(bool(np.isfinite(points[:, axis]).all()) for axis in range(3)),
    )
    msg.data = points.tobytes()
    return msg


def float_image(values: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    """32FC1 Image from ``(H, W)`` float32 values (depth or confidence)."""
    array = np.ascontiguousarray(values, dtype=np.float32)
    height, width = array.shape
    msg = Image(
        header=header(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding="32FC1",
        is_bigendian=_BIG_ENDIAN,
        step=4 * width,
    )
    msg.data = array.tobytes()
    return msg


def camera_info(intrinsics: np.ndarray, image_hw: tuple[int, int], stamp_ns: int, frame_id: str) -> CameraInfo:
    """CameraInfo of a distortion-free pinhole image: K from ``(3, 3)`` intrinsics, P = [K | 0], R = I."""
    k = np.asarray(intrinsics, dtype=np.float64)
    projection = np.zeros((3, 4))
    projection[:, :3] = k
    return CameraInfo(
        header=header(stamp_ns, frame_id),
        height=image_hw[0],
        width=image_hw[1],
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=k.reshape(-1).tolist(),
        r=np.eye(3).reshape(-1).tolist(),
        p=projection.reshape(-1).tolist(),
    )


def _quaternion(rotation: np.ndarray) -> Quaternion:
    x, y, z, w = (float(v) for v in rotation_matrix_to_quaternion(np.asarray(rotation, dtype=np.float64)))
    return Quaternion(x=x, y=y, z=z, w=w)


def quaternions(poses: Sequence[np.ndarray]) -> list[list[float]]:
    """The (x, y, z, w) rotation of each ``(3, 4)`` or ``(4, 4)`` pose, in one conversion (one call costs as much
    for one pose as for dozens): for `transform_stamped` and `path` messages built together."""
    if not len(poses):
        return []
    matrices = np.stack([np.asarray(pose, dtype=np.float64)[:3, :3] for pose in poses])
    return rotation_matrix_to_quaternion(matrices).tolist()


def transform_stamped(
    parent: str, child: str, stamp_ns: int, parent_from_child: np.ndarray, quaternion: Sequence[float] | None = None
) -> TransformStamped:
    """TransformStamped from a ``(3, 4)`` or ``(4, 4)`` rigid [R | t] taking child coordinates to parent coordinates
    (``quaternion``: R's (x, y, z, w) when `quaternions` computed it already)."""
    pose = np.asarray(parent_from_child, dtype=np.float64)[:3]
    x, y, z = (float(v) for v in pose[:, 3])
    if quaternion is None:
        rotation = _quaternion(pose[:, :3])
    else:
        qx, qy, qz, qw = quaternion
        rotation = Quaternion(x=qx, y=qy, z=qz, w=qw)
    return TransformStamped(
        header=header(stamp_ns, parent),
        child_frame_id=child,
        transform=Transform(translation=Vector3(x=x, y=y, z=z), rotation=rotation),
    )


def tf_message(transforms: Sequence[TransformStamped]) -> TFMessage:
    return TFMessage(transforms=list(transforms))


def path(
    poses: Sequence[tuple[int, np.ndarray]],
    stamp_ns: int,
    frame_id: str,
    rotations: Sequence[Sequence[float]] | None = None,
) -> Path:
    """nav_msgs/Path from (stamp_ns, ``(3, 4)`` or ``(4, 4)`` frame_id-from-camera pose) pairs, oldest first
    (``rotations``: their (x, y, z, w) when `quaternions` computed them already)."""
    msg = Path(header=header(stamp_ns, frame_id))
    if not poses:
        return msg
    if rotations is None:
        rotations = quaternions([pose for _, pose in poses])
    for (pose_stamp_ns, pose), (qx, qy, qz, qw) in zip(poses, rotations):
        # Filled in place: a constructor's keyword arguments would build every default sub-message first, too.
        stamped = PoseStamped()
        stamped.header.stamp.sec, stamped.header.stamp.nanosec = divmod(pose_stamp_ns, NANOSECONDS)
        stamped.header.frame_id = frame_id
        position, orientation = stamped.pose.position, stamped.pose.orientation
        position.x, position.y, position.z = np.asarray(pose, dtype=np.float64)[:3, 3].tolist()
        orientation.x, orientation.y, orientation.z, orientation.w = qx, qy, qz, qw
        msg.poses.append(stamped)
    return msg


# Variance (m²/s², rad²/s²) on the twist diagonal of an Odometry whose velocity is not estimated: the zero twist
# then weighs nothing in a filter configured to fuse it (robot_localization), where a zero covariance would claim
# a perfectly known standstill.
UNKNOWN_TWIST_VARIANCE = 1e6


def odometry(
    stamp_ns: int,
    odom_frame: str,
    base_frame: str,
    odom_from_base: np.ndarray,
    pose_covariance: np.ndarray,
    twist: tuple[np.ndarray, np.ndarray] | None = None,
) -> Odometry:
    """nav_msgs/Odometry of ``base_frame`` in ``odom_frame``.

    Args:
        odom_from_base: ``(4, 4)`` rigid pose of the base in odom, metres.
        pose_covariance: ``(6, 6)`` over (x, y, z, rotation about x, y, z), metres² and radians²; the message holds
            it row-major.
        twist: (velocity ``(6,)`` [vx, vy, vz, wx, wy, wz] in ``base_frame``, m/s and rad/s; its ``(6, 6)``
            covariance), or None when velocity is not estimated: a zero twist with `UNKNOWN_TWIST_VARIANCE` on the
            diagonal.
    """
    pose = np.asarray(odom_from_base, dtype=np.float64)
    covariance = np.asarray(pose_covariance, dtype=np.float64)
    if pose.shape != (4, 4) or covariance.shape != (6, 6):
        raise ValueError(
            f"odometry needs a (4, 4) odom_from_base and a (6, 6) pose covariance, got {pose.shape} and "
            f"{covariance.shape}"
        )
    if not (np.isfinite(pose).all() and np.isfinite(covariance).all()):
        raise ValueError("odometry: odom_from_base and pose_covariance must be finite")
    msg = Odometry(header=header(stamp_ns, odom_frame), child_frame_id=base_frame)
    x, y, z = (float(v) for v in pose[:3, 3])
    msg.pose.pose = Pose(position=Point(x=x, y=y, z=z), orientation=_quaternion(pose[:3, :3]))
    msg.pose.covariance = covariance.reshape(36)
    if twist is None:
        msg.twist.covariance = (UNKNOWN_TWIST_VARIANCE * np.eye(6)).reshape(36)
        return msg
    velocity, velocity_covariance = (np.asarray(part, dtype=np.float64) for part in twist)
    if velocity.shape != (6,) or velocity_covariance.shape != (6, 6):
        raise ValueError(
            f"odometry twist must be a (6,) velocity and its (6, 6) covariance, got {velocity.shape} and "
            f"{velocity_covariance.shape}"
        )
    vx, vy, vz, wx, wy, wz = velocity.tolist()
    msg.twist.twist.linear = Vector3(x=vx, y=vy, z=vz)
    msg.twist.twist.angular = Vector3(x=wx, y=wy, z=wz)
    msg.twist.covariance = velocity_covariance.reshape(36)
    return msg
