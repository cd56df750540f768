# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Where each new world is placed in odom, by who publishes odom -> base (`vggt_ros.live.robot`), with known
answers from a `TransformBuffer` of the robot's transforms: odometry heard late, odometry that does not reach back to
the world's first image, no odometry at all, and the node's own odometry."""

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Optional

import numpy as np
import pytest

from support.log_doubles import ManualClock, RecordingLogger
from support.rotations import yaw_pose
from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.live.robot import OdometryOwner, RobotPlacement
from vggt_ros.metric.robot_frames import UNKNOWN_VARIANCE, OdometryFrameError, OdometryNotHeardError
from vggt_ros.metric.tf_buffer import ExtrapolationError, TransformBuffer
from vggt_ros.session import PublishedFrame
from vggt_ros.window import FrameId
from vggt_ros.world import WindowStatus

S = 1_000_000_000
ODOM, BASE, CAMERA = "odom", "base_link", "front_camera_optical"


# Optical z along base x, 0.2 m ahead of and 0.5 m above the base.
BASE_FROM_CAMERA = np.array([[0, 0, 1, 0.2], [-1, 0, 0, 0], [0, -1, 0, 0.5], [0, 0, 0, 1]], dtype=float)
# The robot had driven before the node started: odom is not where the base is at the world's first image (1 s).
ODOM_FROM_BASE = {
    1 * S: yaw_pose(30, (1.5, -0.7, 0)),
    2 * S: yaw_pose(40, (1.9, -0.5, 0)),
    3 * S: yaw_pose(50, (2.2, -0.2, 0)),
}
TRUE_ODOM_FROM_WORLD = ODOM_FROM_BASE[1 * S] @ BASE_FROM_CAMERA  # the world: the camera at the first image


def robot(odometry_from_ns: Optional[int]) -> TransformBuffer:
    """The camera mounting on /tf_static, and the robot's odometry from ``odometry_from_ns`` on (None: none)."""
    buffer = TransformBuffer()
    buffer.set_transform_static(BASE, CAMERA, BASE_FROM_CAMERA)
    if odometry_from_ns is not None:
        for stamp_ns, odom_from_base in ODOM_FROM_BASE.items():
            if stamp_ns >= odometry_from_ns:
                buffer.set_transform(ODOM, BASE, stamp_ns, odom_from_base)
    return buffer


def newest_at(stamp_ns: int) -> tuple[str, int, np.ndarray]:
    """Camera 0's newest frame of a metric window at ``stamp_ns``: its true pose in the world (the first image)."""
    return CAMERA, stamp_ns, np.linalg.inv(TRUE_ODOM_FROM_WORLD) @ ODOM_FROM_BASE[stamp_ns] @ BASE_FROM_CAMERA


def test_the_robots_odometry_places_the_world_where_it_says_the_camera_was():
    placement = RobotPlacement(robot(odometry_from_ns=0), ODOM, BASE, OdometryOwner.ROBOT)
    placement.start(CAMERA, 1 * S)
    assert placement.place()
    np.testing.assert_allclose(placement.odom_from_world, TRUE_ODOM_FROM_WORLD, atol=1e-9)
    assert placement.placed_at_ns == placement.origin_stamp_ns == 1 * S


def test_odometry_heard_after_the_first_image_places_the_world_from_a_later_metric_frame():
    """The robot's odometry starts at 2 s (a later-started driver): until it is heard the world waits, and then,
    since it never reaches back to the first image, a metric window's newest camera pose places it exactly."""
    buffer = robot(odometry_from_ns=None)
    placement = RobotPlacement(buffer, ODOM, BASE, OdometryOwner.ROBOT)
    placement.start(CAMERA, 1 * S)
    with pytest.raises(OdometryNotHeardError, match="'odom' -> 'base_link' is not on /tf"):
        placement.place(newest_at(1 * S))
    assert placement.odom_from_world is None
    for stamp_ns in (2 * S, 3 * S):
        buffer.set_transform(ODOM, BASE, stamp_ns, ODOM_FROM_BASE[stamp_ns])
    with pytest.raises(ExtrapolationError):
        placement.place()  # not metric yet: nothing to place it from
    assert placement.place(newest_at(3 * S))
    np.testing.assert_allclose(placement.odom_from_world, TRUE_ODOM_FROM_WORLD, atol=1e-9)
    assert placement.placed_at_ns == 3 * S  # the node's log said "at its first image"


def test_either_owner_without_odometry_starts_odom_at_the_base_and_says_what_it_assumed():
    placement = RobotPlacement(robot(odometry_from_ns=None), ODOM, BASE, OdometryOwner.EITHER)
    placement.start(CAMERA, 1 * S)
    assert placement.place()
    np.testing.assert_allclose(placement.odom_from_world, BASE_FROM_CAMERA, atol=1e-12)
    assert "odom starts at the base" in placement.assumed and "start its odometry before the node" in placement.assumed


@pytest.mark.parametrize("owner", [OdometryOwner.ROBOT, OdometryOwner.EITHER])
def test_a_misspelt_odom_frame_is_an_error_naming_the_odometry_link(owner):
    """odom_frame 'odometry' on a robot whose odometry is odom -> base_link: the node took the robot for one without
    odometry (odom starting at the base) and blamed the start order ("start its odometry before the node"), its
    map -> odometry dangled, and the robot's tree was cut off from map."""
    buffer = robot(odometry_from_ns=0)
    buffer.set_transform_static("map", ODOM, np.eye(4))  # a localisation above the odometry
    placement = RobotPlacement(buffer, "odometry", BASE, owner)
    placement.start(CAMERA, 1 * S)
    with pytest.raises(OdometryFrameError) as error:
        placement.place()
    assert str(error.value) == (
        "the base moves on /tf under another frame than odom_frame 'odometry' ('map' -> 'odom' -> 'base_link', where "
        "'odom' -> 'base_link' is a dynamic link, as odometry is): set odom_frame to the robot's odometry frame"
    )
    assert placement.odom_from_world is None and placement.assumed == ""


@pytest.mark.parametrize("owner", [OdometryOwner.ROBOT, OdometryOwner.EITHER])
def test_a_base_under_a_static_footprint_without_odometry_yet_waits_or_assumes_as_before(owner):
    """A URDF's static base_footprint -> base_link, the robot's odometry not heard yet: no frame-name error (the
    base's parent is the robot's build, not odometry): the robot's owner waits, either owner assumes."""
    buffer = robot(odometry_from_ns=None)
    buffer.set_transform_static("base_footprint", BASE, np.eye(4))
    placement = RobotPlacement(buffer, ODOM, BASE, owner)
    placement.start(CAMERA, 1 * S)
    if owner is OdometryOwner.ROBOT:
        with pytest.raises(OdometryNotHeardError, match="'odom' -> 'base_link' is not on /tf"):
            placement.place()
    else:
        assert placement.place() and "odom starts at the base" in placement.assumed


def test_a_camera_mounting_on_tf_is_named_as_no_static_one():
    """The mounting published on /tf (a dynamic link) was taken as static without a word; on /tf_static, nothing is
    said."""
    placement = RobotPlacement(robot(odometry_from_ns=0), ODOM, BASE, OdometryOwner.ROBOT)
    placement.start(CAMERA, 1 * S)
    assert placement.place() and placement.moving_mounting == ""
    buffer = TransformBuffer()
    buffer.set_transform_static(BASE, "camera_link", np.eye(4))
    for stamp_ns, odom_from_base in ODOM_FROM_BASE.items():
        buffer.set_transform(ODOM, BASE, stamp_ns, odom_from_base)
        buffer.set_transform("camera_link", CAMERA, stamp_ns, BASE_FROM_CAMERA)  # a joint on /tf
    placement = RobotPlacement(buffer, ODOM, BASE, OdometryOwner.ROBOT)
    placement.start(CAMERA, 1 * S)
    assert placement.place()
    assert placement.moving_mounting.startswith(
        "the camera mounting 'base_link' -> 'front_camera_optical' is on /tf ('camera_link' -> "
        "'front_camera_optical' is a dynamic link), not /tf_static"
    )


def test_either_owner_with_odometry_takes_it_and_assumes_nothing():
    placement = RobotPlacement(robot(odometry_from_ns=0), ODOM, BASE, OdometryOwner.EITHER)
    placement.start(CAMERA, 1 * S)
    assert placement.place() and placement.assumed == ""
    np.testing.assert_allclose(placement.odom_from_world, TRUE_ODOM_FROM_WORLD, atol=1e-9)


def test_the_nodes_own_odometry_never_reads_odom_from_tf():
    """publish_odom_tf: the node's listener hears its own odom -> base, which ends at its last window; a new
    world must not wait for it to reach the new first image (it never would)."""
    buffer = robot(odometry_from_ns=0)  # stands in for the node's own odom -> base, heard back until 3 s
    placement = RobotPlacement(buffer, ODOM, BASE, OdometryOwner.NODE)
    placement.start(CAMERA, 5 * S)
    assert placement.place()
    np.testing.assert_allclose(placement.odom_from_world, BASE_FROM_CAMERA, atol=1e-12)  # the first world


@dataclass
class WindowOutputForTests:
    """Test double of `vggt_ros.session.WindowOutput`: what `RobotPlacement` reads of a merged, metric window whose
    newest frame set is camera 0 at ``world_from_camera`` (metres), stamped ``stamp_ns``; ``older``: (stamp ns,
    world_from_camera) of the window's older camera-0 images."""

    stamp_ns: int
    world_from_camera: np.ndarray
    status: WindowStatus = WindowStatus.MERGED
    metric: bool = True
    segment: int = 0
    older: tuple = ()

    @property
    def window(self):
        stamps = [stamp for stamp, _ in self.older] + [self.stamp_ns]
        return SimpleNamespace(frame_sets=[SimpleNamespace(camera_frames=(CAMERA,), stamps_ns=(t,)) for t in stamps])

    @property
    def result(self):
        frames = [*self.older, (self.stamp_ns, self.world_from_camera)]
        return SimpleNamespace(
            frame_ids=tuple(FrameId(stamp, 0) for stamp, _ in frames),
            world_from_camera=np.stack([pose for _, pose in frames]),
            segment=self.segment,
            residual_ratio=0.01,
        )

    @property
    def newest(self):
        depth = np.full((4, 4), 2.0)
        return [PublishedFrame(0, self.stamp_ns, self.world_from_camera, np.eye(3), depth, depth)]


def one_frame(segment: int) -> Callable[[int], bool]:
    """`World.joined_to_current` of a world with no loop between segments, whose current segment is ``segment``."""
    return lambda other: other == segment


@pytest.mark.parametrize("owner", [OdometryOwner.NODE, OdometryOwner.EITHER])
def test_a_new_world_starts_where_the_nodes_odometry_left_the_base(owner):
    """odom is continuous (REP 105): after a reset the node's odometry carries on from the base's last pose, where it
    used to start over at odom's origin (EITHER, no odometry on /tf) or stop for good (NODE, its own odom -> base
    read back)."""
    placement = RobotPlacement(robot(odometry_from_ns=None), ODOM, BASE, owner)
    log = LogPolicy(RecordingLogger(), clock=ManualClock())
    first = placement.follow(WindowOutputForTests(1 * S, np.eye(4), WindowStatus.INITIALIZED), log)
    np.testing.assert_allclose(first, BASE_FROM_CAMERA, atol=1e-12)
    moved = yaw_pose(20, (0.5, 0.1, 0.3))  # camera 0 in the world, metres
    last_base = placement.odometry(WindowOutputForTests(2 * S, moved)).odom_from_base
    np.testing.assert_allclose(last_base, BASE_FROM_CAMERA @ moved @ np.linalg.inv(BASE_FROM_CAMERA), atol=1e-12)
    second = placement.follow(WindowOutputForTests(5 * S, np.eye(4), WindowStatus.INITIALIZED), log)
    np.testing.assert_allclose(second, last_base @ BASE_FROM_CAMERA, atol=1e-12)


def test_why_the_world_is_not_placed_is_kept_for_diagnostics_until_it_is():
    """The camera mounting missing from /tf_static (no URDF loaded): the world hung under no frame and nothing was
    published in the robot's frames, with an ERROR line every 5 s as the only sign; /diagnostics said OK."""
    buffer = TransformBuffer()  # no mounting yet
    placement = RobotPlacement(buffer, ODOM, BASE, OdometryOwner.NODE)
    log = LogPolicy(RecordingLogger(), clock=ManualClock())
    assert placement.problem == ""  # before the first window: nothing to say
    assert placement.follow(WindowOutputForTests(1 * S, np.eye(4), WindowStatus.INITIALIZED), log) is None
    assert placement.odom_from_world is None and f"'{BASE}'" in placement.problem
    buffer.set_transform_static(BASE, CAMERA, BASE_FROM_CAMERA)  # the URDF comes up
    assert placement.follow(WindowOutputForTests(2 * S, np.eye(4)), log) is not None
    assert placement.problem == ""


def test_odometry_that_starts_after_the_first_image_is_a_wait_for_the_first_metric_window_not_a_failure():
    """The robot's odometry starts at 2 s, after the world's first image (1 s): the placement waits for a metric
    window's camera pose, by design, and /diagnostics said ERROR meanwhile."""
    placement = RobotPlacement(robot(odometry_from_ns=2 * S), ODOM, BASE, OdometryOwner.ROBOT)
    log = LogPolicy(RecordingLogger(), clock=ManualClock())
    first = WindowOutputForTests(1 * S, np.eye(4), WindowStatus.INITIALIZED, metric=False)
    assert placement.follow(first, log) is None
    assert placement.problem and placement.awaits_metric
    metric = WindowOutputForTests(*newest_at(2 * S)[1:], metric=True)
    assert placement.follow(metric, log) is not None
    assert (placement.problem, placement.awaits_metric) == ("", False)


def test_a_new_segment_s_odometry_is_reported_as_unknown_not_as_the_surest_pose():
    """After tracking is lost the new segment is re-anchored where the world last saw the camera: its first pose
    is a guess. Its window has no alignment residual, which the covariance read as 0: the floor, 1 cm and 0.002 rad,
    the surest pose the node ever sends. A merged window's covariance follows its residual."""
    placement = RobotPlacement(robot(odometry_from_ns=None), ODOM, BASE, OdometryOwner.NODE)
    log = LogPolicy(RecordingLogger(), clock=ManualClock())
    placement.follow(WindowOutputForTests(1 * S, np.eye(4), WindowStatus.INITIALIZED), log)
    merged = placement.odometry(WindowOutputForTests(2 * S, yaw_pose(5, (0.2, 0.0, 0.1))))
    guessed = placement.odometry(WindowOutputForTests(3 * S, yaw_pose(5, (0.2, 0.0, 0.1)), WindowStatus.NEW_SEGMENT))
    # Residual 1 % of the 2 m scene depth: 2 cm and 0.01 rad.
    np.testing.assert_allclose(np.diag(merged.covariance), [0.02**2] * 3 + [0.01**2] * 3, rtol=1e-9)
    np.testing.assert_array_equal(np.diag(guessed.covariance), [UNKNOWN_VARIANCE] * 6)


def placed_on_wheels(logger: RecordingLogger = None) -> tuple[RobotPlacement, LogPolicy]:
    """A world placed at 1 s by the robot's odometry (1 to 3 s on /tf)."""
    placement = RobotPlacement(robot(odometry_from_ns=0), ODOM, BASE, OdometryOwner.ROBOT)
    log = LogPolicy(logger or RecordingLogger(), clock=ManualClock())
    placement.follow(WindowOutputForTests(1 * S, np.eye(4), WindowStatus.INITIALIZED), log)
    assert placement.follows_robot_odometry
    return placement, log


def corrected_base(correction: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    """odom_from_base where the corrected world has the base, map being odom at the placement."""
    return TRUE_ODOM_FROM_WORLD @ correction @ world_from_camera @ np.linalg.inv(BASE_FROM_CAMERA)


# The node's chained estimate of the camera at 3 s, drifted; and what a loop then made of the world (metres).
CHAINED_3S = newest_at(3 * S)[2] @ yaw_pose(4, (0.15, -0.05, 0.1))
CORRECTION = yaw_pose(-3, (0.2, 0.0, -0.1))


def test_with_the_robots_odometry_map_to_odom_puts_its_base_where_the_corrected_world_has_it():
    """REP 105 with the robot's own odometry as odom: the node's chained estimate and the wheels disagree, and a
    loop corrects the world. map -> odom times the wheels' odom -> base must be the node's corrected base (the
    world's placement, the correction, the camera pose, the mounting), as SLAM nodes publish it; the loops'
    correction alone in odom leaves the base off by the wheels' disagreement."""
    placement, log = placed_on_wheels()
    np.testing.assert_allclose(placement.map_from_odom(np.eye(4), 0, one_frame(0)), np.eye(4), atol=1e-12)

    placement.observe(WindowOutputForTests(3 * S, CHAINED_3S), log)
    map_from_odom = placement.map_from_odom(CORRECTION, 0, one_frame(0))
    base = corrected_base(CORRECTION, CHAINED_3S)
    np.testing.assert_allclose(map_from_odom @ ODOM_FROM_BASE[3 * S], base, atol=1e-9)
    in_odom = TRUE_ODOM_FROM_WORLD @ CORRECTION @ np.linalg.inv(TRUE_ODOM_FROM_WORLD)  # the correction alone
    assert np.linalg.norm((in_odom @ ODOM_FROM_BASE[3 * S])[:3, 3] - base[:3, 3]) > 0.1
    # At the world's first image (1 s) odom put the first camera where the world starts: map -> odom there is the
    # correction alone, whatever the later images measured of the wheels (the identity before any loop).
    assert placement.origin_stamp_ns == 1 * S
    np.testing.assert_allclose(placement.map_from_odom_at_origin(np.eye(4)), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(placement.map_from_odom_at_origin(CORRECTION), in_odom, atol=1e-12)


def test_odometry_that_lags_the_images_gives_map_to_odom_at_an_older_image_of_the_window():
    """The wheels reach 3 s; the window's newest image is at 4 s and an older one at 3 s: map -> odom comes from
    the 3 s image. A window none of whose images the odometry reaches keeps the value, said every 5 s."""
    logger = RecordingLogger()
    placement, log = placed_on_wheels(logger)
    newest = CHAINED_3S @ yaw_pose(1, (0.1, 0, 0))
    placement.observe(WindowOutputForTests(4 * S, newest, older=((3 * S, CHAINED_3S),)), log)
    map_from_odom = placement.map_from_odom(CORRECTION, 0, one_frame(0))
    np.testing.assert_allclose(map_from_odom @ ODOM_FROM_BASE[3 * S], corrected_base(CORRECTION, CHAINED_3S), atol=1e-9)
    assert not logger.lines

    placement.observe(WindowOutputForTests(5 * S, newest, older=((4 * S, newest),)), log)
    np.testing.assert_allclose(placement.map_from_odom(CORRECTION, 0, one_frame(0)), map_from_odom, atol=1e-12)
    assert [level for level, text in logger.lines if "keeps an older window's value" in text] == ["warning"]


def test_after_tracking_is_lost_map_to_odom_holds_until_a_loop_joins_the_segments():
    """A new segment starts where the world last saw the camera (a guess: the motion in the gap is unknown), while
    the wheels carried on. Taking the guess for the camera's pose would move the base in map back by the gap; and
    the correction is now the new segment's, which says nothing of the old one's poses. map -> odom holds, so the
    wheels carry the base, until a loop joins the segments and the odometry reaches an image of the new one (the
    correction then places the new segment's poses, which map -> odom follows again)."""
    at_2s = newest_at(2 * S)[2]
    lost = WindowOutputForTests(3 * S, at_2s, WindowStatus.NEW_SEGMENT, segment=1)  # re-anchored at the 2 s pose
    within_segment_1 = yaw_pose(2, (0.3, -0.1, 0.0))  # a loop inside the new segment, joining nothing
    joining = newest_at(3 * S)[2] @ np.linalg.inv(at_2s)  # a loop joined the segments: the guess to the truth

    placement, log = placed_on_wheels()
    placement.observe(WindowOutputForTests(2 * S, at_2s), log)
    before = placement.map_from_odom(np.eye(4), 0, one_frame(0))
    np.testing.assert_allclose(before @ ODOM_FROM_BASE[2 * S], corrected_base(np.eye(4), at_2s), atol=1e-9)
    placement.observe(lost, log)
    for correction in (np.eye(4), within_segment_1):
        np.testing.assert_allclose(placement.map_from_odom(correction, 1, one_frame(1)), before, atol=1e-12)
    joined = placement.map_from_odom(joining, 1, lambda segment: True)
    np.testing.assert_allclose(joined @ ODOM_FROM_BASE[3 * S], corrected_base(joining, at_2s), atol=1e-9)
    np.testing.assert_allclose(joined, np.eye(4), atol=1e-9)  # exact wheels, exact correction: map is odom

    # Joined, but the odometry (to 3 s) reaches none of the new segment's images (4 and 5 s): it holds.
    placement, log = placed_on_wheels()
    placement.observe(WindowOutputForTests(2 * S, at_2s), log)
    before = placement.map_from_odom(np.eye(4), 0, one_frame(0))
    unreached = WindowOutputForTests(5 * S, at_2s, WindowStatus.NEW_SEGMENT, segment=1, older=((4 * S, at_2s),))
    placement.observe(unreached, log)
    np.testing.assert_allclose(placement.map_from_odom(joining, 1, lambda segment: True), before, atol=1e-12)


def test_with_the_nodes_odometry_map_to_odom_is_the_loops_correction_in_odom():
    """The node's odometry is odom: the base there is the node's chained estimate, so map -> odom is the loops'
    correction expressed in odom, whatever the window; the robot's transforms are not read for it."""
    placement = RobotPlacement(robot(odometry_from_ns=0), ODOM, BASE, OdometryOwner.NODE)
    log = LogPolicy(RecordingLogger(), clock=ManualClock())
    odom_from_world = placement.follow(WindowOutputForTests(1 * S, np.eye(4), WindowStatus.INITIALIZED), log)
    assert not placement.follows_robot_odometry
    placement.observe(WindowOutputForTests(3 * S, yaw_pose(10, (0.4, 0.0, 0.2))), log)
    np.testing.assert_allclose(
        placement.map_from_odom(CORRECTION, 0, one_frame(0)),
        odom_from_world @ CORRECTION @ np.linalg.inv(odom_from_world),
        atol=1e-12,
    )


def _pitched_down(degrees: float) -> np.ndarray:
    """base_from_camera of `BASE_FROM_CAMERA`'s optical frame pitched ``degrees`` down (about the base's y)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    pitch = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1]])
    return pitch @ BASE_FROM_CAMERA


@pytest.mark.parametrize(
    "frame, base_from_camera, suspect",
    [
        ("camera_link", np.array([[1, 0, 0, 0.2], [0, 1, 0, 0], [0, 0, 1, 0.5], [0, 0, 0, 1]], float), True),
        (CAMERA, BASE_FROM_CAMERA, False),
        (CAMERA, _pitched_down(30), False),
        (CAMERA, _pitched_down(90), False),  # a drone's camera looking straight down
    ],
    ids=["camera body frame", "optical, level", "optical, 30 degrees down", "optical, looking down"],
)
def test_images_in_a_camera_body_frame_are_named(frame, base_from_camera, suspect):
    """Images stamped camera_link (x forward, z up, as Gazebo's camera sensors do) instead of the optical frame:
    the world was placed with VGGT's z (forward) along the base's up, so ~/odometry reported 1 m of driving as 1 m
    of climbing, without a word. The placement says so; optical frames, level or looking down, pass."""
    buffer = TransformBuffer()
    buffer.set_transform_static(BASE, frame, base_from_camera)
    placement = RobotPlacement(buffer, ODOM, BASE, OdometryOwner.NODE)
    placement.start(frame, 1 * S)
    assert placement.place()
    if suspect:
        assert f"the images' frame '{frame}' has its z axis 0 degrees from 'base_link''s up" in placement.suspect_frame
        assert "optical frame" in placement.suspect_frame
    else:
        assert placement.suspect_frame == ""
