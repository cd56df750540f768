# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Where VGGT's world sits among a robot's frames (REP 105: odom -> base_link -> ... -> camera optical frame).

VGGT's world is the first camera's optical frame at its first image; once the metric scale is applied it is in
metres. Placing it in ``odom`` once, at that first image, is enough: from then on the reconstruction's own camera
poses, carried through the fixed camera mounting, give the base's pose in ``odom`` (`base_in_odom`), which the
node publishes as nav_msgs/Odometry for a filter such as robot_localization to fuse.

The transforms come through a `TransformLookup` (tf2_ros or our `TransformBuffer`). A robot with odometry has the
world placed wherever odom says the camera was (`place_world_in_odom`); until its odometry reaches the camera at
that stamp (not heard yet, or behind) the caller retries, because a guess would stay wrong for the whole world. A
robot without odometry takes the node's (``publish_odom_tf``): REP 105 lets odom start anywhere continuous, so the
world needs only the camera mounting (`camera_mounting`) and where the base is in the node's own odom.

The covariance of the published pose comes from how well each window aligned to the world (`odometry_sigmas`),
with floors so that a filter never receives a zero (singular, infinitely trusted) covariance.
"""

from __future__ import annotations

import math

import numpy as np

from vggt_ros.geometry import compose_poses, invert_pose
from vggt_ros.metric.tf_buffer import (
    NoConnectionError,
    TransformLookup,
    TransformLookupError,
    UnknownFrameError,
    as_rigid_transform,
)

# Floors of the reported standard deviations. One pixel of a 518-pixel-wide model image with a ~60 degree field of
# view subtends about 0.002 rad and covers about 1 cm at 5 m: an alignment cannot honestly claim better.
MIN_POSITION_SIGMA_M = 0.01
MIN_ROTATION_SIGMA_RAD = 0.002
# Variance on a covariance diagonal for a quantity not known: it then weighs nothing in a filter that fuses it
# (robot_localization), where a small one would claim it known. ROS drivers use the same convention.
UNKNOWN_VARIANCE = 1e6
# An image frame whose z axis points within this angle of the base's up is taken for a camera body frame: VGGT's
# camera looks along z (an optical frame), and a camera body frame mounted level (camera_link: x forward, z up)
# points z up, while an optical frame does so only on a camera looking at the ceiling.
UPWARD_OPTICAL_AXIS_DEG = 45.0


class CameraMountingError(TransformLookupError):
    """The base does not reach the camera's frame, so the world cannot be placed among the robot's frames."""


class OdometryNotHeardError(TransformLookupError):
    """The robot's odometry (odom -> base on /tf) does not reach the camera: not heard yet, or not published."""


class OdometryFrameError(TransformLookupError):
    """The base moves on /tf under another frame than ``odom_frame``: the robot's odometry has another name."""


def camera_mounting(buffer: TransformLookup, base_frame: str, camera_frame: str) -> np.ndarray:
    """``(4, 4)`` base_from_camera, the static camera mounting (metres).

    Raises:
        CameraMountingError: ``base_frame`` does not reach ``camera_frame``; says what to publish.
    """
    try:
        return buffer.lookup_transform(base_frame, camera_frame, 0)
    except TransformLookupError as no_mounting:
        raise CameraMountingError(
            f"cannot place the reconstruction among the robot's frames: base frame {base_frame!r} does not reach "
            f"camera frame {camera_frame!r} ({no_mounting}). Publish the camera mounting {base_frame!r} -> "
            f"{camera_frame!r} on /tf_static (robot_state_publisher with the robot's URDF, or `ros2 run tf2_ros "
            f"static_transform_publisher --frame-id {base_frame} --child-frame-id {camera_frame} ...`), or set the "
            "node's frame parameters to the frame ids the robot publishes"
        ) from None


def moving_mounting(buffer: TransformLookup, base_frame: str, camera_frame: str) -> str:
    """Why the camera mounting ``base_frame`` -> ``camera_frame`` is no static one (a dynamic link between them, on
    /tf), or "" when every link of it is static."""
    child = camera_frame
    for link in buffer.ancestors(camera_frame):
        if link.moving:
            return (
                f"the camera mounting {base_frame!r} -> {camera_frame!r} is on /tf ({link.parent!r} -> {child!r} is "
                "a dynamic link), not /tf_static: the node takes it once, when it places the world, as the static "
                "mounting robot_state_publisher sends for a URDF's fixed joints; a camera on a moving joint (a "
                "pan-tilt unit) puts the base's odometry off by the joint's motion"
            )
        if link.parent == base_frame:
            return ""
        child = link.parent
    return ""


def non_optical_frame(base_from_camera: np.ndarray, base_frame: str, camera_frame: str) -> str:
    """Why ``camera_frame``, mounted at ``base_from_camera`` ``(4, 4)``, looks like no optical frame (its z axis
    within `UPWARD_OPTICAL_AXIS_DEG` of ``base_frame``'s up), or "" when it may be one."""
    up_in_camera = np.asarray(base_from_camera, dtype=np.float64)[:3, :3].T @ np.array([0.0, 0.0, 1.0])
    angle = math.degrees(math.acos(float(np.clip(up_in_camera[2], -1.0, 1.0))))
    if angle > UPWARD_OPTICAL_AXIS_DEG:
        return ""
    return (
        f"the images' frame {camera_frame!r} has its z axis {angle:.0f} degrees from {base_frame!r}'s up, while "
        "VGGT's camera looks along z (an optical frame, REP 103: z forward, x right, y down): unless the camera looks "
        "at the ceiling, this is a camera body frame (x forward, z up, such as camera_link), and the published "
        "poses, ~/odometry and the map are rotated. Fix: stamp the images with the camera's optical frame (the "
        "driver's *_optical_frame)"
    )


def place_world_in_odom(
    buffer: TransformLookup, odom_frame: str, base_frame: str, camera_frame: str, stamp_ns: int
) -> np.ndarray:
    """``(4, 4)`` odom_from_world (metres) on a robot with odometry: the world is ``camera_frame`` (optical) at its
    first image, ``stamp_ns``, so this is odom_from_camera then.

    Raises:
        CameraMountingError: ``base_frame`` does not reach ``camera_frame``; says what to publish.
        OdometryNotHeardError: ``odom_frame`` does not reach ``base_frame`` (retry: the odometry may start later).
        OdometryFrameError: ``base_frame`` moves under another frame than ``odom_frame`` (a misspelt name).
        ExtrapolationError: odom reaches the camera but not at ``stamp_ns`` (retry when odometry has caught up).
    """
    camera_mounting(buffer, base_frame, camera_frame)
    try:
        return buffer.lookup_transform(odom_frame, camera_frame, stamp_ns)
    except (UnknownFrameError, NoConnectionError) as no_odometry:
        above = buffer.ancestors(base_frame)
        moving = next((k for k, link in enumerate(above) if link.moving), None)
        if moving is None:  # no odometry above the base: not heard yet, or none (a URDF's static links at most)
            raise OdometryNotHeardError(
                f"the robot's odometry {odom_frame!r} -> {base_frame!r} is not on /tf ({no_odometry}): the world is "
                "placed once it is; for a robot without odometry set publish_odom_tf true (the node's odometry, with "
                "a depth or rig metric_scale_source)"
            ) from None
        chain = " -> ".join(repr(link.parent) for link in reversed(above))
        raise OdometryFrameError(
            f"the base moves on /tf under another frame than odom_frame {odom_frame!r} ({chain} -> {base_frame!r}, "
            f"where {above[moving].parent!r} -> "
            f"{(above[moving - 1].parent if moving else base_frame)!r} is a dynamic link, as odometry is): set "
            "odom_frame to the robot's odometry frame"
        ) from None


def base_in_odom(
    odom_from_world: np.ndarray, world_from_camera: np.ndarray, base_from_camera: np.ndarray
) -> np.ndarray:
    """``(4, 4)`` odom_from_base of a camera pose in the world, all ``(4, 4)`` rigid transforms in metres.

    odom_from_base = odom_from_world @ world_from_camera @ camera_from_base. ValueError if any input is not rigid
    (for example a world pose whose unit-less scale was not yet made metric).
    """
    odom_from_world = as_rigid_transform("odom_from_world", odom_from_world)
    world_from_camera = as_rigid_transform("world_from_camera", world_from_camera)
    base_from_camera = as_rigid_transform("base_from_camera", base_from_camera)
    return compose_poses(compose_poses(odom_from_world, world_from_camera), invert_pose(base_from_camera))


def odometry_sigmas(
    residual_m: float,
    scene_depth_m: float,
    min_position_sigma_m: float = MIN_POSITION_SIGMA_M,
    min_rotation_sigma_rad: float = MIN_ROTATION_SIGMA_RAD,
) -> tuple[float, float]:
    """(position sigma in metres, rotation sigma in radians) of a pose from its window's alignment to the world.

    The alignment's RMS residual is how far its points disagree, so it is the position's uncertainty; a rotation
    error of theta moves points at depth d by about theta * d, so residual / scene depth is the rotation's. Each
    is at least its floor (see `MIN_POSITION_SIGMA_M`): the filter inverts the covariance, and zero would make it
    trust this pose over every other sensor.
    """
    if not (math.isfinite(residual_m) and residual_m >= 0):
        raise ValueError(f"residual_m must be a finite RMS distance >= 0 metres, got {residual_m!r}")
    # A zero floor would let a perfect alignment produce a zero covariance.
    positive = (
        ("scene_depth_m", scene_depth_m),
        ("min_position_sigma_m", min_position_sigma_m),
        ("min_rotation_sigma_rad", min_rotation_sigma_rad),
    )
    for name, value in positive:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return max(residual_m, min_position_sigma_m), max(residual_m / scene_depth_m, min_rotation_sigma_rad)


def pose_covariance(position_sigma_m: float, rotation_sigma_rad: float) -> np.ndarray:
    """``(6, 6)`` diagonal covariance in nav_msgs order (x, y, z, rotation about x, y, z): metres², radians².

    Diagonal and isotropic: one alignment residual says nothing about which axis is worse.
    """
    for name, value in (("position_sigma_m", position_sigma_m), ("rotation_sigma_rad", rotation_sigma_rad)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be finite and > 0 (a filter inverts the covariance), got {value!r}")
    return np.diag([position_sigma_m**2] * 3 + [rotation_sigma_rad**2] * 3)
