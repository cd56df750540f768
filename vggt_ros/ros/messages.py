# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""ROS message builders from the core's numpy products (PointCloud2, 32FC1 Image, CameraInfo, TFMessage, Path).

The large messages (the clouds, the depth and confidence images, the path) are written straight into CDR
(`SerializedMessage`, through `_CdrWriter`), as rmw would serialize them: an array is copied once, into the
message's bytes, where a message object costs a copy into its field and another when rclpy serializes it, and a
path of 1,000 poses skips 1,000 PoseStamped objects. Publishers take the bytes (`publishable`), the bag writer
records them, and rclpy's deserializer reads them back as the message built from objects (test/ros/test_messages.py).
The small ones (CameraInfo, TFMessage, Odometry) stay rclpy message objects.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, TransformStamped, Vector3
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from vggt_ros.geometry import rotation_matrix_to_quaternion
from vggt_ros.live.stamps import NANOSECONDS
from vggt_ros.metric.robot_frames import UNKNOWN_VARIANCE
from vggt_ros.world.cloud import POINT_FIELDS

# CDR's encapsulation header for little-endian classic CDR, as rmw writes it before every serialized message.
_CDR_LITTLE_ENDIAN = b"\x00\x01\x00\x00"
_BIG_ENDIAN = sys.byteorder == "big"

# parent_from_world for a REP-103 parent (x forward, y left, z up) above VGGT's optical world (x right, y down,
# z forward): parent x = world z, parent y = -world x, parent z = -world y. Its quaternion is (-0.5, 0.5, -0.5, 0.5).
PARENT_FROM_OPTICAL_WORLD = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def stamp_from_ns(stamp_ns: int) -> Time:
    return Time(sec=stamp_ns // NANOSECONDS, nanosec=stamp_ns % NANOSECONDS)


def header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=stamp_from_ns(stamp_ns), frame_id=frame_id)


@dataclass(frozen=True)
class SerializedMessage:
    """A message already encoded as ROS 2 serializes it (CDR, little endian, with its 4-byte encapsulation
    header), and its type: rclpy publishes bytes as they are (`data`), and `vggt_ros.ros.bag_writer` records them."""

    msg_type: type
    data: bytes


def publishable(message):
    """What a publisher takes: a `SerializedMessage`'s bytes (rclpy publishes bytes as they are), else the message."""
    return message.data if isinstance(message, SerializedMessage) else message


def _align(offset: int, size: int) -> int:
    return (offset + size - 1) // size * size


class _CdrWriter:
    """A message in classic little-endian CDR, field by field: each primitive aligned to its size from the start
    of the payload (after the encapsulation header), a string as a uint32 length counting the NUL, the bytes and
    the NUL, a byte sequence as a uint32 count and the bytes. This is what rmw writes and rosbag2 records as "cdr",
    so the bytes do not depend on the RMW in use. Large arrays are kept as views until `payload` copies them once."""

    def __init__(self) -> None:
        self._parts: list = [_CDR_LITTLE_ENDIAN]
        self._offset = 0  # payload bytes so far

    def _put(self, part, alignment: int) -> None:
        padding = -self._offset % alignment
        if padding:
            self._parts.append(bytes(padding))
        self._parts.append(part)
        self._offset += padding + len(part)

    def uint8(self, value: int) -> None:
        self._put(bytes((int(value),)), 1)

    def uint32(self, *values: int) -> None:
        self._put(struct.pack(f"<{len(values)}I", *values), 4)

    def string(self, text: str) -> None:
        encoded = text.encode("utf-8") + b"\0"
        self.uint32(len(encoded))
        self._put(encoded, 1)

    def float64(self, values: np.ndarray) -> None:
        self._put(np.ascontiguousarray(values, dtype="<f8").tobytes(), 8)

    def records(self, array: np.ndarray, alignment: int) -> None:
        """The bytes of a C-contiguous (structured) array laid out as the following fields are, ``alignment``
        being the first field's. A byte view of the flattened array: an empty ``(0, n)`` one has no cast view."""
        self._put(memoryview(array.reshape(-1).view(np.uint8)), alignment)

    def header(self, stamp_ns: int, frame_id: str) -> None:
        """std_msgs/Header: the stamp (int32 sec, uint32 nanosec) and the frame id."""
        sec, nanosec = divmod(int(stamp_ns), NANOSECONDS)
        self._put(struct.pack("<iI", sec, nanosec), 4)
        self.string(frame_id)

    def octets(self, array: np.ndarray) -> None:
        """A uint8[] field holding a C-contiguous array's bytes."""
        self.uint32(array.nbytes)
        self.records(array, 1)

    def payload(self) -> bytes:
        return b"".join(self._parts)


def point_cloud2(
    points: np.ndarray, height: int, width: int, stamp_ns: int, frame_id: str, field_names: Sequence[str] = POINT_FIELDS
) -> SerializedMessage:
    """PointCloud2 of float32 fields, one column of ``points`` ``(height * width, fields)`` each: by default
    x, y, z, rgb (packed 0x00RRGGBB) and confidence, 20 bytes per point; the map drops confidence. Serialized
    (`SerializedMessage`): the points are copied once, into the message's bytes."""
    points = np.ascontiguousarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != len(field_names):
        raise ValueError(
            f"cloud points must be (N, {len(field_names)}) for fields {list(field_names)}, got {points.shape}"
        )
    point_step = 4 * len(field_names)
    cdr = _CdrWriter()
    cdr.header(stamp_ns, frame_id)
    cdr.uint32(height, width, len(field_names))
    for i, name in enumerate(field_names):
        cdr.string(name)
        cdr.uint32(4 * i)
        cdr.uint8(PointField.FLOAT32)
        cdr.uint32(1)
    cdr.uint8(_BIG_ENDIAN)
    cdr.uint32(point_step, point_step * width)
    cdr.octets(points)
    # Column by column: numpy tests a contiguous column several times faster than the strided (N, 3) block.
    cdr.uint8(all(bool(np.isfinite(points[:, axis]).all()) for axis in range(3)))  # is_dense
    return SerializedMessage(PointCloud2, cdr.payload())


def float_image(values: np.ndarray, stamp_ns: int, frame_id: str) -> SerializedMessage:
    """32FC1 Image from ``(H, W)`` float32 values (depth or confidence), serialized (`SerializedMessage`): the
    values are copied once, into the message's bytes."""
    array = np.ascontiguousarray(values, dtype=np.float32)
    height, width = array.shape
    cdr = _CdrWriter()
    cdr.header(stamp_ns, frame_id)
    cdr.uint32(height, width)
    cdr.string("32FC1")
    cdr.uint8(_BIG_ENDIAN)
    cdr.uint32(4 * width)
    cdr.octets(array)
    return SerializedMessage(Image, cdr.payload())


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
) -> SerializedMessage:
    """nav_msgs/Path from (stamp_ns, ``(3, 4)`` or ``(4, 4)`` frame_id-from-camera pose) pairs, oldest first
    (``rotations``: their (x, y, z, w) when `quaternions` computed them already), serialized.

    A path holds every kept keyframe (up to 1,000) and goes out after every window. As rclpy message objects, 900
    poses took 17 ms to build and 2.6 ms more to serialize on the 2-core dev machine; written straight into CDR
    with numpy they take 1.7 ms, quaternions included. Every PoseStamped after the first starts 8-aligned (it ends
    with seven float64s), so all but the first share one layout: one numpy record each.
    """
    count = len(poses)
    cdr = _CdrWriter()
    cdr.header(stamp_ns, frame_id)
    cdr.uint32(count)
    if count:
        if rotations is None:
            rotations = quaternions([pose for _, pose in poses])
        values = np.concatenate(
            (np.stack([np.asarray(pose, dtype=np.float64)[:3, 3] for _, pose in poses]), np.asarray(rotations)), axis=1
        )  # (N, 7): x, y, z, qx, qy, qz, qw
        cdr.header(poses[0][0], frame_id)
        cdr.float64(values[0])
        name = frame_id.encode("utf-8") + b"\0"
        size = len(name)
        later = np.zeros(
            count - 1,
            dtype=np.dtype(
                {
                    "names": ["sec", "nanosec", "size", "name", "values"],
                    "formats": ["<i4", "<u4", "<u4", f"S{size}", ("<f8", (7,))],
                    "offsets": [0, 4, 8, 12, _align(12 + size, 8)],
                    "itemsize": _align(12 + size, 8) + 56,
                }
            ),
        )
        secs, nanosecs = np.divmod(np.array([stamp for stamp, _ in poses[1:]], dtype=np.int64), NANOSECONDS)
        later["sec"], later["nanosec"], later["size"], later["name"], later["values"] = (
            secs,
            nanosecs,
            size,
            name,
            values[1:],
        )
        cdr.records(later, 8)
    return SerializedMessage(Path, cdr.payload())


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
            covariance), or None when velocity is not estimated: a zero twist with `UNKNOWN_VARIANCE` on the
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
        msg.twist.covariance = (UNKNOWN_VARIANCE * np.eye(6)).reshape(36)  # a zero covariance: a known standstill
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
