# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""REP 105 robot frames with known answers: the world placed in odom (with and without odometry), the base's pose
from a camera pose, covariances from the alignment's quality, and the nav_msgs/Odometry built from them."""

import math

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rclpy.serialization import deserialize_message, serialize_message

from support.rotations import quaternion_matrix, yaw_pose
from vggt_ros.metric.robot_frames import (
    CameraMountingError,
    OdometryNotHeardError,
    base_in_odom,
    camera_mounting,
    odometry_sigmas,
    place_world_in_odom,
    pose_covariance,
)
from vggt_ros.metric.tf_buffer import ExtrapolationError, TransformBuffer, TransformLookupError
from vggt_ros.ros import messages

S = 1_000_000_000  # nanoseconds per second
ODOM, BASE, CAMERA = "odom", "base_link", "camera_optical"


def rigid(rotation, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


# A camera looking forward, 0.2 m ahead of and 0.5 m above the base: optical z along base x, optical x along
# -base y, optical y along -base z (the columns are where the optical axes point in the base frame).
BASE_FROM_CAMERA = rigid(np.column_stack([(0, -1, 0), (0, 0, -1), (1, 0, 0)]), (0.2, 0, 0.5))


def apply(transform: np.ndarray, point) -> np.ndarray:
    return transform[:3, :3] @ np.asarray(point, dtype=float) + transform[:3, 3]


@pytest.fixture
def robot_with_odometry() -> TransformBuffer:
    """The base at (2, 1, 0) facing +y (yaw 90 deg) in odom at 1 s; odometry continues to 2 s."""
    buffer = TransformBuffer()
    buffer.set_transform(ODOM, BASE, 1 * S, yaw_pose(90, (2, 1, 0)))
    buffer.set_transform(ODOM, BASE, 2 * S, yaw_pose(90, (2, 3, 0)))
    buffer.set_transform_static(BASE, CAMERA, BASE_FROM_CAMERA)
    return buffer


def test_the_world_is_placed_where_odometry_says_the_camera_was(robot_with_odometry):
    odom_from_world = place_world_in_odom(robot_with_odometry, ODOM, BASE, CAMERA, 1 * S)
    # the camera, 0.2 m ahead and 0.5 m up of a base at (2, 1, 0) facing +y, is at (2, 1.2, 0.5)
    np.testing.assert_allclose(apply(odom_from_world, (0, 0, 0)), (2, 1.2, 0.5), atol=1e-12)
    np.testing.assert_allclose(odom_from_world[:3, :3] @ (0, 0, 1), (0, 1, 0), atol=1e-12)  # forward: +y
    np.testing.assert_allclose(odom_from_world[:3, :3] @ (1, 0, 0), (1, 0, 0), atol=1e-12)  # right of +y: +x
    np.testing.assert_allclose(odom_from_world[:3, :3] @ (0, 1, 0), (0, 0, -1), atol=1e-12)  # image down: down


def test_a_camera_one_metre_forward_in_the_world_puts_the_base_one_metre_forward_in_odom(robot_with_odometry):
    odom_from_world = place_world_in_odom(robot_with_odometry, ODOM, BASE, CAMERA, 1 * S)
    world_from_camera = rigid(np.eye(3), (0, 0, 1))  # optical z is forward
    odom_from_base = base_in_odom(odom_from_world, world_from_camera, BASE_FROM_CAMERA)
    np.testing.assert_allclose(odom_from_base, yaw_pose(90, (2, 2, 0)), atol=1e-12)


def test_a_camera_turning_left_in_place_swings_the_base_behind_it(robot_with_odometry):
    odom_from_world = place_world_in_odom(robot_with_odometry, ODOM, BASE, CAMERA, 1 * S)
    # 90 deg left about the optical up axis (-y): forward (z) turns to the left (-x), right (x) to forward (z)
    world_from_camera = rigid(np.column_stack([(0, 0, 1), (0, 1, 0), (-1, 0, 0)]), (0, 0, 0))
    odom_from_base = base_in_odom(odom_from_world, world_from_camera, BASE_FROM_CAMERA)
    # the base now faces -x and sits 0.2 m behind the camera (2, 1.2) along that heading
    np.testing.assert_allclose(odom_from_base, yaw_pose(180, (2.2, 1.2, 0)), atol=1e-12)


@pytest.mark.parametrize("odom_tree", [None, ("odom", "wheel")], ids=["no odom frame", "odom in another tree"])
def test_odometry_missing_from_tf_is_its_own_error_naming_the_fix(odom_tree):
    """Not heard yet and not published look alike: the caller decides (wait, or odom starts at the base)."""
    buffer = TransformBuffer()
    buffer.set_transform_static(BASE, CAMERA, BASE_FROM_CAMERA)
    if odom_tree:
        buffer.set_transform_static(*odom_tree, np.eye(4))
    with pytest.raises(OdometryNotHeardError, match="'odom' -> 'base_link' is not on /tf.*publish_odom_tf"):
        place_world_in_odom(buffer, ODOM, BASE, CAMERA, 5 * S)
    np.testing.assert_allclose(camera_mounting(buffer, BASE, CAMERA), BASE_FROM_CAMERA, atol=1e-12)


def test_odometry_that_has_not_reached_the_stamp_yet_is_not_mistaken_for_no_odometry(robot_with_odometry):
    with pytest.raises(ExtrapolationError, match="into the future"):
        place_world_in_odom(robot_with_odometry, ODOM, BASE, CAMERA, 3 * S)


def test_without_a_camera_mounting_the_error_names_the_frames_and_the_fix():
    buffer = TransformBuffer()
    buffer.set_transform_static("map", ODOM, np.eye(4))
    with pytest.raises(CameraMountingError) as raised:
        place_world_in_odom(buffer, ODOM, BASE, CAMERA, 1 * S)
    message = str(raised.value)
    assert isinstance(raised.value, TransformLookupError)
    for text in ("'base_link'", "'camera_optical'", "/tf_static", "static_transform_publisher"):
        assert text in message


def test_a_world_pose_still_at_vggt_scale_is_refused():
    scaled = rigid(2.0 * np.eye(3), (0, 0, 1))
    with pytest.raises(ValueError, match="world_from_camera must be rigid"):
        base_in_odom(np.eye(4), scaled, BASE_FROM_CAMERA)


def test_sigmas_come_from_the_residual_and_the_scene_depth_above_their_floors():
    assert odometry_sigmas(0.05, 5.0) == pytest.approx((0.05, 0.01))
    assert odometry_sigmas(0.001, 10.0, min_position_sigma_m=0.02, min_rotation_sigma_rad=0.003) == (0.02, 0.003)
    position, rotation = odometry_sigmas(0.0, 1.0)
    assert position > 0 and rotation > 0


@pytest.mark.parametrize(
    "arguments, name",
    [
        ((-0.1, 5.0), "residual_m"),
        ((math.nan, 5.0), "residual_m"),
        ((0.1, 0.0), "scene_depth_m"),
        ((0.1, math.inf), "scene_depth_m"),
        ((0.1, 5.0, 0.0), "min_position_sigma_m"),
        ((0.1, 5.0, 0.01, -1.0), "min_rotation_sigma_rad"),
    ],
)
def test_bad_sigma_inputs_are_refused(arguments, name):
    with pytest.raises(ValueError, match=name):
        odometry_sigmas(*arguments)


def test_pose_covariance_is_diagonal_in_nav_msgs_order():
    covariance = pose_covariance(0.1, 0.02)
    np.testing.assert_allclose(covariance, np.diag([0.01, 0.01, 0.01, 0.0004, 0.0004, 0.0004]), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="rotation_sigma_rad"):
        pose_covariance(0.1, 0.0)


def test_odometry_message_carries_pose_frames_stamp_and_row_major_covariance():
    odom_from_base = yaw_pose(90, (2, 2, 0))
    covariance = np.arange(36, dtype=float).reshape(6, 6)  # distinct entries expose the layout
    msg = messages.odometry(1_700_000_000_250_000_000, ODOM, BASE, odom_from_base, covariance)
    msg = deserialize_message(serialize_message(msg), Odometry)  # what a subscriber receives
    assert (msg.header.frame_id, msg.child_frame_id) == (ODOM, BASE)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 250_000_000)
    position = msg.pose.pose.position
    assert (position.x, position.y, position.z) == pytest.approx((2, 2, 0))
    q = msg.pose.pose.orientation
    assert (q.x, q.y, q.z, q.w) == pytest.approx((0, 0, math.sqrt(0.5), math.sqrt(0.5)))
    np.testing.assert_allclose(quaternion_matrix(q), odom_from_base[:3, :3], atol=1e-12)
    assert msg.pose.covariance[6 * 2 + 4] == covariance[2, 4] and msg.pose.covariance[6 * 4 + 2] == covariance[4, 2]
    np.testing.assert_array_equal(np.asarray(msg.pose.covariance).reshape(6, 6), covariance)


def test_odometry_without_velocity_has_a_zero_twist_that_filters_ignore():
    msg = messages.odometry(1, ODOM, BASE, np.eye(4), pose_covariance(0.1, 0.01))
    linear, angular = msg.twist.twist.linear, msg.twist.twist.angular
    assert (linear.x, linear.y, linear.z, angular.x, angular.y, angular.z) == (0,) * 6
    twist_covariance = np.asarray(msg.twist.covariance).reshape(6, 6)
    assert (np.diag(twist_covariance) >= 1e6).all()
    np.testing.assert_array_equal(twist_covariance - np.diag(np.diag(twist_covariance)), np.zeros((6, 6)))


def test_odometry_with_velocity_carries_it_and_its_covariance():
    velocity = np.array([1.0, 2.0, 3.0, 0.1, 0.2, 0.3])
    velocity_covariance = np.diag([0.5] * 6)
    msg = messages.odometry(1, ODOM, BASE, np.eye(4), np.eye(6), twist=(velocity, velocity_covariance))
    twist = msg.twist.twist
    assert (twist.linear.x, twist.linear.y, twist.linear.z) == (1.0, 2.0, 3.0)
    assert (twist.angular.x, twist.angular.y, twist.angular.z) == (0.1, 0.2, 0.3)
    np.testing.assert_array_equal(np.asarray(msg.twist.covariance).reshape(6, 6), velocity_covariance)


@pytest.mark.parametrize(
    "pose, covariance", [(np.eye(4)[:3], np.eye(6)), (np.eye(4), np.eye(3)), (np.full((4, 4), np.nan), np.eye(6))]
)
def test_odometry_refuses_bad_shapes_and_non_finite_values(pose, covariance):
    with pytest.raises(ValueError, match="odometry"):
        messages.odometry(1, ODOM, BASE, pose, covariance)
