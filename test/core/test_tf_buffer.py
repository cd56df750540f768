# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""TransformBuffer against hand-computed answers: chains of static and dynamic links, interpolation, stamp 0,
extrapolation, unknown and disconnected frames, re-parenting, the cache bound and bad input."""

import math

import numpy as np
import pytest

from support.rotations import yaw_pose
from vggt_ros.metric.tf_buffer import (
    ExtrapolationError,
    NoConnectionError,
    TransformBuffer,
    TransformLookupError,
    UnknownFrameError,
)

S = 1_000_000_000  # nanoseconds per second


def apply(transform: np.ndarray, point) -> np.ndarray:
    return transform[:3, :3] @ np.asarray(point, dtype=float) + transform[:3, 3]


def yaw_deg_of(transform: np.ndarray) -> float:
    return math.degrees(math.atan2(transform[1, 0], transform[0, 0]))


@pytest.fixture
def robot() -> TransformBuffer:
    """map -> odom (static), odom -> base (dynamic at 1 s and 3 s), base -> camera and base -> laser (static)."""
    buffer = TransformBuffer()
    buffer.set_transform_static("map", "odom", yaw_pose(90, (10, 0, 0)))
    buffer.set_transform("odom", "base", 1 * S, yaw_pose(0, (1, 0, 0)))
    buffer.set_transform("odom", "base", 3 * S, yaw_pose(0, (3, 0, 0)))
    buffer.set_transform_static("base", "camera", yaw_pose(0, (0, 0, 0.5)))
    buffer.set_transform_static("base", "laser", yaw_pose(0, (0.2, 0, 0)))
    return buffer


def test_a_chain_of_static_and_dynamic_links_maps_points_as_composed_by_hand(robot):
    map_from_camera = robot.lookup_transform("map", "camera", 1 * S)
    # camera origin: (0, 0, 0.5) in base, (1, 0, 0.5) in odom, rotated 90 deg about z and moved by (10, 0, 0) in map
    np.testing.assert_allclose(apply(map_from_camera, (0, 0, 0)), (10, 1, 0.5), atol=1e-12)
    np.testing.assert_allclose(map_from_camera[:3, :3] @ (1, 0, 0), (0, 1, 0), atol=1e-12)
    camera_from_map = robot.lookup_transform("camera", "map", 1 * S)
    np.testing.assert_allclose(apply(camera_from_map, (10, 1, 0.5)), (0, 0, 0), atol=1e-12)
    np.testing.assert_allclose(camera_from_map @ map_from_camera, np.eye(4), atol=1e-12)


def test_siblings_resolve_through_their_common_parent_and_static_links_hold_at_any_stamp(robot):
    for stamp in (0, 1, 123 * S):  # no dynamic link between laser and camera: any stamp, even outside odom's data
        laser_from_camera = robot.lookup_transform("laser", "camera", stamp)
        np.testing.assert_allclose(apply(laser_from_camera, (0, 0, 0)), (-0.2, 0, 0.5), atol=1e-12)
    np.testing.assert_array_equal(robot.lookup_transform("odom", "odom", 2 * S), np.eye(4))


def test_a_dynamic_link_interpolates_translation_linearly_and_rotation_at_constant_rate():
    buffer = TransformBuffer()
    buffer.set_transform("odom", "base", 0, yaw_pose(0, (0, 0, 0)))
    buffer.set_transform("odom", "base", 2 * S, yaw_pose(90, (2, 0, 0)))
    np.testing.assert_allclose(buffer.lookup_transform("odom", "base", 1 * S), yaw_pose(45, (1, 0, 0)), atol=1e-12)
    # slerp turns at a constant rate: a quarter of the time is a quarter of the angle (a normalised linear blend
    # of the quaternions would give 21.6 deg here)
    quarter = buffer.lookup_transform("odom", "base", S // 2)
    assert yaw_deg_of(quarter) == pytest.approx(22.5, abs=1e-9)
    np.testing.assert_allclose(quarter[:3, 3], (0.5, 0, 0), atol=1e-12)


def test_interpolation_takes_the_shorter_way_round():
    buffer = TransformBuffer()
    buffer.set_transform("odom", "base", 0, yaw_pose(170))
    buffer.set_transform("odom", "base", 2 * S, yaw_pose(-170))
    assert abs(yaw_deg_of(buffer.lookup_transform("odom", "base", 1 * S))) == pytest.approx(180, abs=1e-9)
    assert yaw_deg_of(buffer.lookup_transform("odom", "base", S // 2)) == pytest.approx(175, abs=1e-9)


def test_stamp_zero_is_the_newest_time_every_dynamic_link_of_the_chain_has(robot):
    robot.set_transform("base", "arm", 1 * S, yaw_pose(0, (0, 1, 0)))
    robot.set_transform("base", "arm", 2 * S, yaw_pose(0, (0, 3, 0)))
    # base has data up to 3 s and arm up to 2 s: stamp 0 is 2 s, where base is at x = 2 and arm at y = 3
    odom_from_arm = robot.lookup_transform("odom", "arm", 0)
    np.testing.assert_allclose(apply(odom_from_arm, (0, 0, 0)), (2, 3, 0), atol=1e-12)
    # base alone: its newest stamp, 3 s
    np.testing.assert_allclose(apply(robot.lookup_transform("odom", "base", 0), (0, 0, 0)), (3, 0, 0), atol=1e-12)


@pytest.mark.parametrize(
    "stamp, direction, gap",
    [(3 * S + S // 2, "into the future", "0.500000000 s"), (S // 4, "into the past", "0.750000000 s")],
)
def test_stamps_outside_a_dynamic_links_data_raise_extrapolation_naming_link_and_gap(robot, stamp, direction, gap):
    with pytest.raises(ExtrapolationError) as raised:
        robot.lookup_transform("map", "camera", stamp)
    message = str(raised.value)
    assert "'odom' -> 'base'" in message and direction in message and f"by {gap}" in message
    assert "'map' <- 'camera'" in message
    assert isinstance(raised.value, TransformLookupError) and isinstance(raised.value, LookupError)
    assert not robot.can_transform("map", "camera", stamp)
    assert robot.can_transform("map", "camera", 2 * S)


def test_a_link_with_one_stamp_answers_only_at_that_stamp():
    buffer = TransformBuffer()
    buffer.set_transform("odom", "base", 5 * S, yaw_pose(0, (1, 2, 3)))
    np.testing.assert_allclose(apply(buffer.lookup_transform("odom", "base", 5 * S), (0, 0, 0)), (1, 2, 3))
    np.testing.assert_allclose(apply(buffer.lookup_transform("odom", "base", 0), (0, 0, 0)), (1, 2, 3))
    with pytest.raises(ExtrapolationError):
        buffer.lookup_transform("odom", "base", 5 * S + 1)


def test_an_unknown_frame_is_named_with_the_known_ones(robot):
    with pytest.raises(UnknownFrameError, match="source_frame 'camra' does not exist.*'camera'"):
        robot.lookup_transform("map", "camra", 0)
    with pytest.raises(UnknownFrameError, match="target_frame 'world'"):
        robot.lookup_transform("world", "camera", 0)
    assert not robot.can_transform("map", "camra", 0)


def test_frames_in_different_trees_are_not_connected(robot):
    robot.set_transform_static("vggt_world", "camera0_optical", yaw_pose(0))
    with pytest.raises(NoConnectionError, match="rooted at 'vggt_world'.*rooted at 'map'"):
        robot.lookup_transform("camera0_optical", "camera", 0)
    assert not robot.can_transform("camera0_optical", "camera", 0)


def test_a_new_parent_replaces_the_old_link():
    buffer = TransformBuffer()
    buffer.set_transform_static("a", "child", yaw_pose(0, (1, 0, 0)))
    buffer.set_transform_static("b", "child", yaw_pose(0, (0, 1, 0)))
    np.testing.assert_allclose(apply(buffer.lookup_transform("b", "child", 0), (0, 0, 0)), (0, 1, 0))
    with pytest.raises(NoConnectionError):
        buffer.lookup_transform("a", "child", 0)


def test_switching_a_link_between_dynamic_and_static_replaces_it():
    buffer = TransformBuffer()
    buffer.set_transform("odom", "base", 1 * S, yaw_pose(0, (1, 0, 0)))
    buffer.set_transform_static("odom", "base", yaw_pose(0, (5, 0, 0)))
    np.testing.assert_allclose(apply(buffer.lookup_transform("odom", "base", 99 * S), (0, 0, 0)), (5, 0, 0))
    buffer.set_transform("odom", "base", 2 * S, yaw_pose(0, (2, 0, 0)))
    with pytest.raises(ExtrapolationError):
        buffer.lookup_transform("odom", "base", 99 * S)


def test_history_is_pruned_to_cache_time_behind_the_newest_stamp():
    buffer = TransformBuffer(cache_time_s=10.0)
    for second in range(31):
        assert buffer.set_transform("odom", "base", second * S, yaw_pose(0, (second, 0, 0)))
    np.testing.assert_allclose(apply(buffer.lookup_transform("odom", "base", 20 * S), (0, 0, 0)), (20, 0, 0))
    np.testing.assert_allclose(apply(buffer.lookup_transform("odom", "base", 25 * S + S // 2), (0, 0, 0)), (25.5, 0, 0))
    # 19 s was stored and is now older than 30 s - 10 s: gone, so 19.5 s cannot be interpolated any more
    with pytest.raises(ExtrapolationError, match="into the past by 0.500000000 s"):
        buffer.lookup_transform("odom", "base", 19 * S + S // 2)
    # data older than the window is refused, as tf2 does, and does not come back
    assert not buffer.set_transform("odom", "base", 15 * S, yaw_pose(0, (15, 0, 0)))
    assert not buffer.can_transform("odom", "base", 15 * S)


def test_clear_forgets_the_dynamic_history_keeps_the_static_links_and_takes_older_data_again(robot):
    """Time went back (a bag in a loop): without clearing, the second pass's odometry was refused as too old."""
    robot.set_transform("odom", "base", 30 * S, yaw_pose(0, (30, 0, 0)))
    assert not robot.set_transform("odom", "base", 2 * S, yaw_pose(0, (7, 0, 0)))  # 28 s behind the newest
    robot.clear()
    assert not robot.can_transform("odom", "base", 30 * S) and not robot.can_transform("odom", "base", 3 * S)
    assert robot.set_transform("odom", "base", 2 * S, yaw_pose(0, (7, 0, 0)))
    # the static links held: map -> odom (yaw 90 about (10, 0, 0)) and base -> camera (0.5 up)
    np.testing.assert_allclose(apply(robot.lookup_transform("map", "camera", 2 * S), (0, 0, 0)), (10, 7, 0.5))


def test_late_data_inside_the_window_is_inserted_in_order_and_a_repeated_stamp_replaces():
    buffer = TransformBuffer()
    buffer.set_transform("odom", "base", 4 * S, yaw_pose(0, (4, 0, 0)))
    buffer.set_transform("odom", "base", 2 * S, yaw_pose(0, (2, 0, 0)))
    np.testing.assert_allclose(apply(buffer.lookup_transform("odom", "base", 3 * S), (0, 0, 0)), (3, 0, 0))
    buffer.set_transform("odom", "base", 4 * S, yaw_pose(0, (6, 0, 0)))
    np.testing.assert_allclose(apply(buffer.lookup_transform("odom", "base", 3 * S), (0, 0, 0)), (4, 0, 0))


@pytest.mark.parametrize(
    "parent, child, matrix, message",
    [
        ("odom", "base", np.diag([2.0, 2.0, 2.0, 1.0]), "must be rigid"),
        ("odom", "base", np.diag([1.0, 1.0, -1.0, 1.0]), "not a rotation"),
        ("odom", "base", np.eye(4)[:3], r"\(4, 4\)"),
        ("odom", "base", np.full((4, 4), np.nan), "non-finite"),
        ("base", "base", np.eye(4), "to itself"),
        ("", "base", np.eye(4), "non-empty"),
        ("/odom", "base", np.eye(4), "leading slash"),
    ],
)
def test_bad_transforms_are_refused_with_what_is_wrong(parent, child, matrix, message):
    buffer = TransformBuffer()
    with pytest.raises(ValueError, match=message):
        buffer.set_transform(parent, child, S, matrix)
    with pytest.raises(ValueError, match=message):
        buffer.set_transform_static(parent, child, matrix)


def test_a_link_that_would_close_a_loop_is_refused():
    buffer = TransformBuffer()
    buffer.set_transform_static("a", "b", np.eye(4))
    buffer.set_transform_static("b", "c", np.eye(4))
    with pytest.raises(ValueError, match="loop"):
        buffer.set_transform("c", "a", S, np.eye(4))
    np.testing.assert_array_equal(buffer.lookup_transform("a", "c", 0), np.eye(4))


def test_bad_stamps_and_cache_times_are_refused():
    buffer = TransformBuffer()
    with pytest.raises(ValueError, match=">= 0"):
        buffer.set_transform("odom", "base", -1, np.eye(4))
    with pytest.raises(TypeError, match="nanoseconds"):
        buffer.set_transform("odom", "base", 1.5, np.eye(4))
    with pytest.raises(ValueError, match="cache_time_s"):
        TransformBuffer(cache_time_s=0.0)
