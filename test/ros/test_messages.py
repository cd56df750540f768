# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The path, the depth and confidence images and the clouds are written straight into CDR (`vggt_ros.ros.messages`):
rclpy's own deserializer reads each back as exactly the message built from rclpy's message objects, for every
alignment a frame id can give, for 0, 1, 2 and many poses, and for clouds with and without non-finite points."""

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image, PointCloud2, PointField

from vggt_ros.live.stamps import ns_from_stamp
from vggt_ros.ros import messages

STAMP_NS = 1_700_000_005 * messages.NANOSECONDS + 1
# Frame ids of every length modulo 4 and 8 (each shifts the alignment of what follows), one of them not ASCII.
FRAME_IDS = ["w", "map", "odom", "vggt_world", "a_frame_of_13", "ünïcode"]


def _reference(poses, stamp_ns: int, frame_id: str, rotations) -> Path:
    """The same path from rclpy's message objects, field by field (the independent expectation)."""
    msg = Path(header=messages.header(stamp_ns, frame_id))
    for (pose_stamp_ns, pose), (qx, qy, qz, qw) in zip(poses, rotations):
        stamped = PoseStamped(header=messages.header(pose_stamp_ns, frame_id))
        stamped.pose.position.x, stamped.pose.position.y, stamped.pose.position.z = (float(v) for v in pose[:3, 3])
        orientation = stamped.pose.orientation
        orientation.x, orientation.y, orientation.z, orientation.w = qx, qy, qz, qw
        msg.poses.append(stamped)
    return msg


def _random_poses(count: int, rng) -> list:
    poses = []
    for k in range(count):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        pose = np.eye(4)
        pose[:3, :3] = rotation * np.sign(np.linalg.det(rotation))
        pose[:3, 3] = rng.normal(size=3) * 10.0
        poses.append((1_700_000_000_123_456_789 + 100_000_000 * k, pose))
    return poses


@pytest.mark.parametrize("frame_id", FRAME_IDS)
@pytest.mark.parametrize("count", [0, 1, 2, 9])
def test_the_serialized_path_reads_back_as_the_path_of_rclpy_objects(frame_id, count):
    poses = _random_poses(count, np.random.default_rng(count))
    rotations = messages.quaternions([pose for _, pose in poses])
    serialized = messages.path(poses, STAMP_NS, frame_id)

    assert serialized.msg_type is Path
    expected = _reference(poses, STAMP_NS, frame_id, rotations)
    assert deserialize_message(serialized.data, Path) == expected
    # rclpy leaves its padding bytes uninitialised, so compare the layout, not the bytes: the same length.
    assert len(serialized.data) == len(serialize_message(expected))


def test_a_long_path_keeps_every_stamp_exact():
    """A thousand keyframes over a day of stamps: the nanoseconds survive."""
    poses = [(1_700_000_000_000_000_000 + 86_400_000_000_007 * k // 1000, np.eye(4)) for k in range(1000)]
    decoded = deserialize_message(messages.path(poses, STAMP_NS, "vggt_world").data, Path)
    stamps = [ns_from_stamp(p.header.stamp) for p in decoded.poses]
    assert stamps == [stamp for stamp, _ in poses]


@pytest.mark.parametrize("frame_id", FRAME_IDS)
@pytest.mark.parametrize("height, width", [(1, 1), (3, 5), (350, 518)])
def test_the_serialized_float_image_is_the_image_of_rclpy_objects(frame_id, height, width):
    values = np.random.default_rng(height).uniform(0.1, 9.0, size=(height, width)).astype(np.float32)
    values[0, 0] = np.nan  # a pixel without depth
    serialized = messages.float_image(values, STAMP_NS, frame_id)

    expected = Image(
        header=messages.header(STAMP_NS, frame_id),
        height=height,
        width=width,
        encoding="32FC1",
        is_bigendian=False,
        step=4 * width,
    )
    expected.data = values.tobytes()
    assert serialized.msg_type is Image
    assert deserialize_message(serialized.data, Image) == expected
    assert len(serialized.data) == len(serialize_message(expected))


@pytest.mark.parametrize("frame_id", FRAME_IDS)
@pytest.mark.parametrize(
    "fields, finite", [(("x", "y", "z", "rgb", "confidence"), True), (("x", "y", "z", "rgb"), False)]
)
def test_the_serialized_cloud_is_the_cloud_of_rclpy_objects(frame_id, fields, finite):
    rows = np.random.default_rng(len(fields)).normal(size=(12, len(fields))).astype(np.float32)
    if not finite:
        rows[5, 1] = np.nan  # a masked pixel of an organised cloud
    serialized = messages.point_cloud2(rows, 3, 4, STAMP_NS, frame_id, fields)

    expected = PointCloud2(
        header=messages.header(STAMP_NS, frame_id),
        height=3,
        width=4,
        fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(fields)],
        is_bigendian=False,
        point_step=4 * len(fields),
        row_step=4 * len(fields) * 4,
        is_dense=finite,
    )
    expected.data = rows.tobytes()
    assert serialized.msg_type is PointCloud2
    assert deserialize_message(serialized.data, PointCloud2) == expected
    assert len(serialized.data) == len(serialize_message(expected))


@pytest.mark.parametrize("fields", [("x", "y", "z", "rgb", "confidence"), ("x", "y", "z", "rgb")])
def test_an_empty_cloud_is_the_empty_cloud_of_rclpy_objects(fields):
    """A window whose confidence filter keeps no point, or a map with no point yet, is a cloud of width 0."""
    serialized = messages.point_cloud2(np.zeros((0, len(fields)), np.float32), 1, 0, STAMP_NS, "vggt_world", fields)
    expected = PointCloud2(
        header=messages.header(STAMP_NS, "vggt_world"),
        height=1,
        width=0,
        fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(fields)],
        is_bigendian=False,
        point_step=4 * len(fields),
        row_step=0,
        is_dense=True,
    )
    assert deserialize_message(serialized.data, PointCloud2) == expected
    assert len(serialized.data) == len(serialize_message(expected))
