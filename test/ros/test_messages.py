# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The path is written straight into CDR (`vggt_ros.ros.messages.path`): rclpy's own deserializer reads it back as
exactly the Path built from rclpy's message objects, for every alignment a frame id can give and for 0, 1, 2 and
many poses."""

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
from rclpy.serialization import deserialize_message, serialize_message

from vggt_ros.ros import messages

STAMP_NS = 1_700_000_005 * messages.NANOSECONDS + 1


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


@pytest.mark.parametrize("frame_id", ["w", "map", "odom", "vggt_world", "a_frame_of_13", "ünïcode"])
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
    stamps = [messages.ns_from_stamp(p.header.stamp) for p in decoded.poses]
    assert stamps == [stamp for stamp, _ in poses]
