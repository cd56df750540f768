# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The robot's frames while the node runs (REP 105): where each new world sits in odom, and the base's odometry.

The geometry is `vggt_ros.metric.robot_frames`; this is its state across windows: the world is placed once, as
soon as the transforms answer, and every merged window then gives the base's pose in odom with a covariance from
how well the window aligned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.metric.robot_frames import base_in_odom, odometry_sigmas, place_world_in_odom, pose_covariance
from vggt_ros.metric.tf_buffer import TransformLookup, TransformLookupError
from vggt_ros.session import WindowOutput
from vggt_ros.world import WindowStatus


@dataclass(frozen=True)
class BaseOdometry:
    """The base's pose in odom at camera 0's newest image: ``odom_from_base`` ``(4, 4)`` in metres and its
    ``(6, 6)`` covariance in nav_msgs order."""

    stamp_ns: int
    odom_from_base: np.ndarray
    covariance: np.ndarray


class RobotPlacement:
    """One world's place among the robot's frames: placed once (retried until the transforms answer), then every
    camera pose in the world gives the base's pose in odom. `reset` when a new world starts.

    ``transforms``: a `TransformLookup`; ``camera_frame``: the frame id of camera 0's images (the world's origin).
    """

    def __init__(self, transforms: TransformLookup, odom_frame: str, base_frame: str) -> None:
        self.transforms = transforms
        self.odom_frame = odom_frame
        self.base_frame = base_frame
        self.reset()

    def reset(self) -> None:
        self.odom_from_world = None
        self._origin = None  # (camera frame, stamp ns) of the world's first image
        self._base_from_camera = None

    def start(self, camera_frame: str, stamp_ns: int) -> None:
        """A new world starts at ``camera_frame``'s image of ``stamp_ns``."""
        self.reset()
        self._origin = (camera_frame, stamp_ns)

    def place(self) -> bool:
        """Try to place the world (once); True when ``odom_from_world`` is known.

        Raises:
            TransformLookupError: the transforms cannot place it (yet): the message says why.
        """
        if self.odom_from_world is None and self._origin is not None:
            camera_frame, stamp_ns = self._origin
            odom_from_world = place_world_in_odom(
                self.transforms, self.odom_frame, self.base_frame, camera_frame, stamp_ns
            )
            self._base_from_camera = self.transforms.lookup_transform(self.base_frame, camera_frame, 0)
            self.odom_from_world = odom_from_world
        return self.odom_from_world is not None

    def base_pose(self, world_from_camera: np.ndarray) -> np.ndarray:
        """``(4, 4)`` odom_from_base for camera 0 at ``world_from_camera`` (metres); call after `place` succeeded."""
        return base_in_odom(self.odom_from_world, world_from_camera, self._base_from_camera)

    def follow(self, out: WindowOutput, log: LogPolicy) -> Optional[np.ndarray]:
        """Place each new world in odom as soon as the transforms answer; return ``odom_from_world`` ``(4, 4)``
        the one time it becomes known (the caller publishes it on /tf_static), else None.

        Also while the scale is unknown: the placement is the camera's pose in odom at the world's first image, in
        metres whatever VGGT's scale, and TF keeps that stamp's odometry only for its cache time (10 s), which a
        robot standing still at start-up outlasts.
        """
        if out.status is WindowStatus.INITIALIZED:
            self.start(out.window.frame_sets[0].camera_frames[0], out.result.frame_ids[0].stamp_ns)
        if self.odom_from_world is not None:
            return None
        try:
            self.place()
        except TransformLookupError as err:
            log.every(
                "error", ("robot", type(err).__name__), f"cannot place the world in '{self.odom_frame}' yet: {err}"
            )
            return None
        return self.odom_from_world

    def odometry(self, out: WindowOutput) -> Optional[BaseOdometry]:
        """The base's odometry at camera 0's newest frame of a merged window, once the world is metric and placed."""
        newest = next((frame for frame in out.newest if frame.camera == 0), None)
        if newest is None or not out.metric or self.odom_from_world is None:
            return None
        # The residual is in the world's unit at alignment time, which for the window that made the world metric
        # is not yet the metre; its ratio to the scene depth has no unit, and the newest depth is in metres.
        residual_ratio = out.result.residual_ratio if np.isfinite(out.result.residual_ratio) else 0.0
        scene_depth_m = float(np.nanmedian(newest.depth))
        covariance = pose_covariance(*odometry_sigmas(residual_ratio * scene_depth_m, scene_depth_m))
        return BaseOdometry(newest.stamp_ns, self.base_pose(newest.world_from_camera), covariance)
