# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's view of /tf and /tf_static over real rclpy/DDS, and the message-to-matrix conversion it relies on.

A publisher latches the static transforms before the listener exists (as robot_state_publisher does at start-up)
and publishes odometry at two stamps; a look-up through static and dynamic links at the middle stamp must equal
the hand-composed answer. DDS must stay on this machine: the DDS test fails outside a network namespace whose only
interface is loopback (run it with tools/run_tests.sh).
"""

import math
import time

import numpy as np
import pytest
from geometry_msgs.msg import Quaternion, Transform, TransformStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from support.log_doubles import RecordingLogger
from support.netns import loopback_rclpy
from support.rotations import yaw_pose
from vggt_ros.metric.tf_buffer import ParentLink, UnknownFrameError
from vggt_ros.ros.messages import header, tf_message, transform_stamped
from vggt_ros.ros.tf_listener import links_from_tf2_yaml, make_transform_buffer, matrices_from_transforms

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]

S = 1_000_000_000  # nanoseconds per second
WAIT_S = 20.0
R = math.sqrt(0.5)  # cos 45 deg = sin 45 deg


def rigid(rotation, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


def roll_pitch_yaw(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rz(yaw) Ry(pitch) Rx(roll), radians."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


# optical z along base x, optical x along -base y, optical y along -base z; 0.2 m ahead, 0.5 m up
BASE_FROM_CAMERA = rigid(np.column_stack([(0, -1, 0), (0, 0, -1), (1, 0, 0)]), (0.2, 0, 0.5))
MAP_FROM_ODOM = yaw_pose(90, (10, 0, 0))


def test_known_quaternions_become_their_rotations():
    half_turn_yaw = Transform(rotation=Quaternion(x=0.0, y=0.0, z=R, w=R))
    half_turn_yaw.translation.x, half_turn_yaw.translation.y, half_turn_yaw.translation.z = 1.0, 2.0, 3.0
    matrices, usable = matrices_from_transforms([half_turn_yaw])
    np.testing.assert_allclose(matrices[0], yaw_pose(90, (1, 2, 3)), atol=1e-15)
    assert usable.tolist() == [True]


def test_matrices_round_trip_through_transform_stamped():
    angles = [(0.1, -0.4, 2.5), (math.pi - 1e-6, 0.3, -0.2), (0.0, math.pi / 2, 0.0), (-2.0, 1.0, math.pi)]
    poses = [rigid(roll_pitch_yaw(*a), (i, -2.0 * i, 0.5)) for i, a in enumerate(angles)]
    transforms = [transform_stamped("parent", "child", 0, pose).transform for pose in poses]
    matrices, usable = matrices_from_transforms(transforms)
    np.testing.assert_allclose(matrices, np.stack(poses), atol=1e-12)
    assert usable.all()


def test_quaternions_off_unit_length_beyond_tf2s_tolerance_are_marked_unusable():
    nearly_unit, too_long, zero = (Transform(rotation=Quaternion(x=0.0, y=0.0, z=0.0, w=w)) for w in (1.004, 1.1, 0.0))
    not_finite = Transform(rotation=Quaternion(x=math.nan, y=0.0, z=0.0, w=1.0))
    matrices, usable = matrices_from_transforms([nearly_unit, too_long, zero, not_finite])
    assert usable.tolist() == [True, False, False, False]
    np.testing.assert_allclose(matrices[0], np.eye(4), atol=1e-15)  # normalised, as tf2 does within the tolerance


@pytest.fixture
def ros():
    """rclpy for one test, only where DDS cannot leave the machine (a loud failure, never a skip)."""
    with loopback_rclpy(__file__):
        executor = SingleThreadedExecutor()
        yield executor
        executor.shutdown(timeout_sec=5.0)


def spin_until(executor: SingleThreadedExecutor, predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_S} s waiting for {what}")
        executor.spin_once(timeout_sec=0.05)


def test_latched_static_and_live_dynamic_transforms_chain_to_the_analytic_answer(ros):
    executor = ros
    publisher = Node("tf_publisher_for_tests")
    executor.add_node(publisher)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    static_publisher = publisher.create_publisher(TFMessage, "/tf_static", latched)
    static_publisher.publish(
        tf_message(
            [
                transform_stamped("map", "odom", 0, MAP_FROM_ODOM),
                transform_stamped("base_link", "camera_optical", 0, BASE_FROM_CAMERA),
            ]
        )
    )
    tf_publisher = publisher.create_publisher(TFMessage, "/tf", QoSProfile(depth=100))

    listener = Node("tf_listener_under_test")  # created after the static transforms were published
    executor.add_node(listener)
    lookup = make_transform_buffer(listener)
    spin_until(executor, lambda: tf_publisher.get_subscription_count() > 0, "the listener's /tf subscription")

    first_ns, second_ns = 1_700_000_000 * S, 1_700_000_001 * S
    tf_publisher.publish(tf_message([transform_stamped("odom", "base_link", first_ns, yaw_pose(0))]))
    # a bad transform (zero quaternion) is skipped; the good one in the same message still counts
    bad = TransformStamped(header=header(second_ns, "odom"), child_frame_id="wheel")
    bad.transform.rotation.w = 0.0
    good = transform_stamped("odom", "base_link", second_ns, yaw_pose(90, (2, 0, 0)))
    tf_publisher.publish(tf_message([bad, good]))
    spin_until(
        executor,
        lambda: all(lookup.can_transform("map", "camera_optical", stamp) for stamp in (first_ns, second_ns)),
        "the chain map -> odom -> base_link -> camera_optical at both stamps",
    )

    middle_ns = (first_ns + second_ns) // 2
    map_from_camera = lookup.lookup_transform("map", "camera_optical", middle_ns)
    # at the middle stamp the base is at (1, 0, 0) in odom with yaw 45 deg; the camera 0.2 m ahead of it and
    # 0.5 m up is at (1 + 0.2 r, 0.2 r, 0.5) in odom; map turns odom by 90 deg and moves it by (10, 0, 0)
    np.testing.assert_allclose(map_from_camera[:3, 3], (10 - 0.2 * R, 1 + 0.2 * R, 0.5), atol=1e-9)
    np.testing.assert_allclose(map_from_camera[:3, :3] @ (0, 0, 1), (-R, R, 0), atol=1e-9)  # optical forward
    np.testing.assert_allclose(map_from_camera[:3, :3] @ (0, 1, 0), (0, 0, -1), atol=1e-9)  # image down
    camera_from_map = lookup.lookup_transform("camera_optical", "map", middle_ns)
    np.testing.assert_allclose(camera_from_map @ map_from_camera, np.eye(4), atol=1e-9)
    with pytest.raises(UnknownFrameError, match="'wheel'"):
        lookup.lookup_transform("odom", "wheel", 0)

    for node in (listener, publisher):
        executor.remove_node(node)
        node.destroy_node()


def test_a_frame_sent_under_two_parents_is_named_once(ros):
    """A robot's URDF names a frame as the node names its camera (base_link -> camera0_optical on /tf_static) while
    the node sends vggt_world -> camera0_optical: the frame had two parents, lookups flipped, and nothing said so.
    Flipping back and forth is one warning."""
    executor = ros
    publisher = Node("tf_publisher_for_tests")
    executor.add_node(publisher)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    static_publisher = publisher.create_publisher(TFMessage, "/tf_static", latched)
    urdf = tf_message([transform_stamped("base_link", "camera0_optical", 0, BASE_FROM_CAMERA)])
    static_publisher.publish(urdf)
    tf_publisher = publisher.create_publisher(TFMessage, "/tf", QoSProfile(depth=100))
    listener = Node("tf_listener_under_test")
    executor.add_node(listener)
    lookup = make_transform_buffer(listener)
    lookup._logger = logger = RecordingLogger()  # test double of the node's logger
    parent = lambda: [link.parent for link in lookup.ancestors("camera0_optical")]  # noqa: E731
    spin_until(executor, lambda: parent() == ["base_link"], "the URDF's static frame")
    for k in range(3):
        tf_publisher.publish(tf_message([transform_stamped("vggt_world", "camera0_optical", (k + 1) * S, np.eye(4))]))
        spin_until(executor, lambda: parent() == ["vggt_world"], "the node's transform")
        static_publisher.publish(urdf)
        spin_until(executor, lambda: parent() == ["base_link"], "the URDF's frame again")
    assert logger.lines == [
        (
            "warning",
            "frame 'camera0_optical' came under parent 'vggt_world', after 'base_link': unless it is moved on purpose, "
            "two publishers send it, and a frame has one parent (lookups flip between them). Rename one: for the "
            "node's own frames, camera_names, world_frame or frame_prefix",
        )
    ]
    for node in (listener, publisher):
        executor.remove_node(node)
        node.destroy_node()


def test_tf2s_frame_dump_gives_each_frames_parent_and_whether_it_moves():
    """tf2_ros' Python Buffer shows the tree only as all_frames_as_yaml (tf2's BufferCore::allFramesAsYAML): a
    static link's most recent transform is 0. Frame ids YAML would read as numbers or booleans stay strings; a dump
    YAML cannot read gives nothing (the parents serve hints only)."""
    dump = (
        "odom: \n  parent: 'map'\n  broadcaster: 'default_authority'\n  rate: 10000.000\n"
        "  most_recent_transform: 0.000000\n  oldest_transform: 0.000000\n  buffer_length: 0.000000\n"
        "base_link: \n  parent: 'odom'\n  broadcaster: 'default_authority'\n  rate: 20.000\n"
        "  most_recent_transform: 1700000001.500000\n  oldest_transform: 1700000000.000000\n"
        "  buffer_length: 1.500000\n"
        "yes: \n  parent: '1'\n  most_recent_transform: 0.000000\n"
    )
    assert links_from_tf2_yaml(dump) == {
        "odom": ParentLink("map", False),
        "base_link": ParentLink("odom", True),
        "yes": ParentLink("1", False),
    }
    assert links_from_tf2_yaml("[]") == {}
    assert links_from_tf2_yaml("*camera: \n  parent: 'a'\n") == {}  # an alias YAML cannot resolve
