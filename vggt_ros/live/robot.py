# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The robot's frames while the node runs (REP 105): where each new world sits in odom, the base's odometry, and
map -> odom.

The geometry is `vggt_ros.metric.robot_frames`; this is its state across windows: the world is placed once, as
soon as the transforms answer, and every merged window then gives the base's pose in odom with a covariance from
how well the window aligned. Where the node closes loops it owns map -> odom, which puts the base where the
corrected world has it (`RobotPlacement.map_from_odom`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import numpy as np

from vggt_ros.geometry import compose_poses, invert_pose
from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.metric.robot_frames import (
    UNKNOWN_VARIANCE,
    OdometryNotHeardError,
    base_in_odom,
    camera_mounting,
    moving_mounting,
    non_optical_frame,
    odometry_sigmas,
    place_world_in_odom,
    pose_covariance,
)
from vggt_ros.metric.tf_buffer import ExtrapolationError, TransformLookup, TransformLookupError
from vggt_ros.session import WindowOutput
from vggt_ros.world import WindowStatus


@dataclass(frozen=True)
class BaseOdometry:
    """The base's pose in odom at camera 0's newest image: ``odom_from_base`` ``(4, 4)`` in metres and its
    ``(6, 6)`` covariance in nav_msgs order."""

    stamp_ns: int
    odom_from_base: np.ndarray
    covariance: np.ndarray


class CameraSighting(NamedTuple):
    """Camera 0 at one image: its pose in the world (``(4, 4)`` world_from_camera, of the world's ``segment``) and in
    odom (``(4, 4)`` odom_from_camera, odom's own)."""

    segment: int
    world_from_camera: np.ndarray
    odom_from_camera: np.ndarray


class PlacedWorld(NamedTuple):
    """A world's placement in odom: ``odom_from_world`` ``(4, 4)``, made for the world whose first image is stamped
    ``origin_stamp_ns``."""

    origin_stamp_ns: int
    odom_from_world: np.ndarray


class OdometryOwner(enum.Enum):
    """Who publishes the robot's odom -> base, which says how a new world is placed in odom."""

    NODE = "node"  # publish_odom_tf: a robot without odometry takes the node's
    ROBOT = "robot"  # the robot's own (metric_scale_source odometry needs it): the world waits for it
    EITHER = "either"  # the robot's if it is on /tf at the first image, else the node's fused by a filter


class RobotPlacement:
    """One world's place among the robot's frames: placed once (retried until the transforms answer), then every
    camera pose in the world gives the base's pose in odom. `start` when a new world starts.

    ``transforms``: a `TransformLookup`; ``owner``: who publishes odom -> base.

    * The robot's odometry places the world where odom says the camera was at its first image; odometry that does
      not reach back to that image (it started later, or TF's cache dropped it) places it from the newest camera
      pose of a metric window instead. `OdometryOwner.ROBOT` waits for it, and a guess would stay wrong for the
      whole world.
    * The node's odometry (REP 105 lets odom start anywhere continuous): the first world starts with the base at
      odom's origin, each later one (a reset, time going back, a new configuration) where the base was last
      published, so odom stays continuous. The node's own odom -> base on /tf is never read back.
    * `OdometryOwner.EITHER` takes the node's when no odom -> base is on /tf at the first window (a robot whose
      filter fuses ``~/odometry`` publishes it only afterwards), and says so (`assumed`).

    map -> odom (`map_from_odom`) is what SLAM nodes publish: the corrected camera pose times the inverse of odom's
    own pose of that camera at the same image. Where the node's odometry is odom, that is the loops' correction
    expressed in odom; where the robot's is (`follows_robot_odometry`), it also takes up the difference between the
    wheels and the node's chained estimate, so it changes with every window. map starts at odom with the world
    (before any loop).
    """

    def __init__(self, transforms: TransformLookup, odom_frame: str, base_frame: str, owner: OdometryOwner) -> None:
        self.transforms = transforms
        self.odom_frame = odom_frame
        self.base_frame = base_frame
        self.owner = owner
        self._last_odom_from_base = np.eye(4)  # the node's odometry: where its next world starts
        self.start(None, 0)

    def start(self, camera_frame: Optional[str], stamp_ns: int) -> None:
        """A new world starts at ``camera_frame``'s image of ``stamp_ns`` (None: no world yet)."""
        # The placement with its world, in one attribute: the save thread reads it while the worker places worlds.
        self.placed: Optional[PlacedWorld] = None
        self.placed_at_ns: Optional[int] = None  # the stamp of the image the placement used
        self.assumed = ""  # why the placement took the node's odometry although the robot's might exist
        self.suspect_frame = ""  # why the camera's frame looks like no optical frame (`non_optical_frame`)
        self.moving_mounting = ""  # why the camera mounting is no static one (`moving_mounting`)
        self.problem = ""  # why the world could not be placed yet ("" once placed, or before a try): /diagnostics
        # The problem clears by itself: odometry that does not reach back to the world's first image places it from
        # the first metric window's newest camera pose.
        self.awaits_metric = False
        self._origin = None if camera_frame is None else (camera_frame, stamp_ns)
        self._base_from_camera = None
        # `_anchor`: the sighting map -> odom uses; `_latest`: the newest observed (see `map_from_odom`).
        self._anchor: Optional[CameraSighting] = None
        self._latest: Optional[CameraSighting] = None
        self._held: Optional[np.ndarray] = None  # map -> odom last computed: kept while the anchor is elsewhere

    def place(self, newest: Optional[tuple[str, int, np.ndarray]] = None, segment: int = 0) -> bool:
        """Try to place the world (once); True when ``odom_from_world`` is known.

        ``newest``: camera 0's newest frame of a metric window (frame id, stamp ns, ``(4, 4)`` world_from_camera in
        metres), where the robot's odometry places the world when it does not reach back to the first image;
        ``segment``: the segment of that frame.

        Raises:
            TransformLookupError: the transforms cannot place it (yet): the message says why.
        """
        if self.odom_from_world is None and self._origin is not None:
            camera_frame, stamp_ns = self._origin
            base_from_camera = camera_mounting(self.transforms, self.base_frame, camera_frame)
            self.suspect_frame = non_optical_frame(base_from_camera, self.base_frame, camera_frame)
            self.moving_mounting = moving_mounting(self.transforms, self.base_frame, camera_frame)
            from_newest = False
            if self.owner is OdometryOwner.NODE:
                odom_from_world = self._last_odom_from_base @ base_from_camera
            else:
                odom_from_world, from_newest = self._place_by_robot_odometry(
                    camera_frame, stamp_ns, newest, base_from_camera
                )
            self._base_from_camera = base_from_camera
            self.placed = PlacedWorld(stamp_ns, odom_from_world)
            self.placed_at_ns = newest[1] if from_newest else stamp_ns
            # The world is the first camera (of segment 0), where odom puts it; or where odom put the newest frame.
            self._anchor = CameraSighting(segment if from_newest else 0, np.eye(4), odom_from_world)
        return self.odom_from_world is not None

    @property
    def odom_from_world(self) -> Optional[np.ndarray]:
        """``(4, 4)`` the world's placement in odom (None until placed)."""
        return None if self.placed is None else self.placed.odom_from_world

    @property
    def follows_robot_odometry(self) -> bool:
        """True when the robot's own odometry is odom (placed by it): the wheels, not the node's estimate, then
        carry the base between map -> odom updates, and the world hangs under map, not odom."""
        return self.odom_from_world is not None and self.owner is not OdometryOwner.NODE and not self.assumed

    def observe(self, out: WindowOutput, log: LogPolicy) -> None:
        """Where the robot's odometry is odom: its pose of camera 0 at the newest image of a merged metric window
        that it reaches (odometry that lags the images may reach only older ones), which `map_from_odom` then holds
        to the world's pose of that image. None reached: the last one stays, logged every 5 s."""
        result = out.result
        if not out.metric or not self.follows_robot_odometry or result is None or result.world_from_camera is None:
            return
        camera_frames = {frame_set.stamps_ns[0]: frame_set.camera_frames[0] for frame_set in out.window.frame_sets}
        camera_0 = sorted(((f.stamp_ns, k) for k, f in enumerate(result.frame_ids) if f.camera == 0), reverse=True)
        for stamp_ns, k in camera_0:
            try:
                odom_from_camera = self.transforms.lookup_transform(self.odom_frame, camera_frames[stamp_ns], stamp_ns)
            except TransformLookupError as err:
                missed = err
                continue
            self._latest = CameraSighting(result.segment, result.world_from_camera[k], odom_from_camera)
            return
        log.every(
            "warning",
            ("robot", "map -> odom"),
            f"map -> '{self.odom_frame}' keeps an older window's value: the robot's odometry reaches none of this "
            f"window's images of camera '{camera_frames[camera_0[0][0]]}' ({missed})",
        )

    @property
    def origin_stamp_ns(self) -> Optional[int]:
        """The stamp of the world's first image (None: no world yet)."""
        return None if self._origin is None else self._origin[1]

    def map_from_odom_at_origin(self, correction: np.ndarray) -> np.ndarray:
        """``(4, 4)`` map -> odom at the world's first image, where odom put the first camera (`odom_from_world`),
        for the world's loop ``correction`` ``(4, 4)``: the identity before any loop, whatever the windows since
        measured of the wheels. Call after `place` succeeded."""
        return self._map_from_odom_at(CameraSighting(0, np.eye(4), self.odom_from_world), correction)

    def map_from_odom(
        self, correction: np.ndarray, segment: int, joined: Callable[[int], bool]
    ) -> Optional[np.ndarray]:
        """``(4, 4)`` REP 105's map -> odom for the world's loop ``correction`` ``(4, 4)`` at the newest keyframe
        (identity before the first loop), or None before the world is placed: map_from_world @ world_from_camera @
        inverse(odom_from_camera) of the anchor image, where map_from_world is the placement after the correction.

        ``segment``: the world's current segment; ``joined(s)``: whether segment ``s`` shares its frame
        (`World.joined_to_current`). After tracking was lost the new segment's poses start from a guess (where the
        world last saw the camera), and ``correction`` is that segment's: with the robot's odometry, map -> odom
        keeps its last value, so the wheels carry the base as they did through the gap, until a loop joins the
        segments and an image of the current one has been observed.
        """
        if self.odom_from_world is None:
            return None
        latest = self._latest
        if latest is not None and latest.segment == segment and joined(self._anchor.segment):
            self._anchor = latest
        if self.follows_robot_odometry and self._anchor.segment != segment and self._held is not None:
            return self._held
        self._held = self._map_from_odom_at(self._anchor, correction)
        return self._held

    def _map_from_odom_at(self, sighting: CameraSighting, correction: np.ndarray) -> np.ndarray:
        """map_from_world @ world_from_camera @ inverse(odom_from_camera) of ``sighting``, where map_from_world is
        the placement after the loops' ``correction``."""
        map_from_camera = compose_poses(compose_poses(self.odom_from_world, correction), sighting.world_from_camera)
        return compose_poses(map_from_camera, invert_pose(sighting.odom_from_camera))

    def _place_by_robot_odometry(
        self,
        camera_frame: str,
        stamp_ns: int,
        newest: Optional[tuple[str, int, np.ndarray]],
        base_from_camera: np.ndarray,
    ) -> tuple[np.ndarray, bool]:
        """``(4, 4)`` odom_from_world, and whether it came from ``newest`` rather than the world's first image."""
        try:
            return place_world_in_odom(self.transforms, self.odom_frame, self.base_frame, camera_frame, stamp_ns), False
        except OdometryNotHeardError:
            if self.owner is OdometryOwner.ROBOT:
                raise
            self.assumed = (
                f"no odometry {self.odom_frame!r} -> {self.base_frame!r} on /tf at the world's first image: odom "
                "starts at the base, as for a robot whose filter fuses ~/odometry. A robot whose own odometry starts "
                "later is placed wrong for this whole world: start its odometry before the node"
            )
            return self._last_odom_from_base @ base_from_camera, False
        except ExtrapolationError:
            if newest is None:
                raise
            frame, newest_stamp_ns, world_from_camera = newest
            odom_from_camera = place_world_in_odom(
                self.transforms, self.odom_frame, self.base_frame, frame, newest_stamp_ns
            )
            return odom_from_camera @ invert_pose(world_from_camera), True

    def base_pose(self, world_from_camera: np.ndarray) -> np.ndarray:
        """``(4, 4)`` odom_from_base for camera 0 at ``world_from_camera`` (metres); call after `place` succeeded."""
        return base_in_odom(self.odom_from_world, world_from_camera, self._base_from_camera)

    def follow(self, out: WindowOutput, log: LogPolicy) -> Optional[np.ndarray]:
        """Place each new world in odom as soon as the transforms answer; return ``odom_from_world`` ``(4, 4)``
        the one time it becomes known (the caller publishes it on /tf_static), else None.

        Also while the scale is unknown: the placement is the camera's pose in odom at the world's first image, in
        metres whatever VGGT's scale. Once the window is metric, odometry that no longer reaches back to that image
        (TF keeps 10 s, which a robot standing still at start-up outlasts) places it from the newest camera pose.
        """
        if out.status is WindowStatus.INITIALIZED:
            self.start(out.window.frame_sets[0].camera_frames[0], out.result.frame_ids[0].stamp_ns)
        if self.odom_from_world is not None:
            return None
        newest = next((frame for frame in out.newest if frame.camera == 0), None)
        try:
            self.place(
                (out.window.frame_sets[-1].camera_frames[0], newest.stamp_ns, newest.world_from_camera)
                if newest is not None and out.metric
                else None,
                out.result.segment,
            )
        except TransformLookupError as err:
            self.problem = str(err)
            self.awaits_metric = isinstance(err, ExtrapolationError) and not out.metric
            log.every(
                "error", ("robot", type(err).__name__), f"cannot place the world in '{self.odom_frame}' yet: {err}"
            )
            return None
        self.problem, self.awaits_metric = "", False
        if self.assumed:
            log.logger.warning(self.assumed)
        for warning in (self.suspect_frame, self.moving_mounting):
            if warning:
                log.logger.warning(warning)
        return self.odom_from_world

    def odometry(self, out: WindowOutput) -> Optional[BaseOdometry]:
        """The base's odometry at camera 0's newest frame of a merged window, once the world is metric and placed."""
        newest = next((frame for frame in out.newest if frame.camera == 0), None)
        if newest is None or not out.metric or self.odom_from_world is None:
            return None
        if out.status is WindowStatus.NEW_SEGMENT:
            # Re-anchored where the world last saw the camera, after a gap of unknown motion: a guess, not a pose
            # a filter should trust (it had the floor of the covariance, the surest pose the node ever sent).
            covariance = UNKNOWN_VARIANCE * np.eye(6)
        else:
            # The residual is in the world's unit at alignment time, which for the window that made the world
            # metric is not yet the metre; its ratio to the scene depth has no unit, and the newest depth is in
            # metres. The first window has none: it defines the world.
            residual_ratio = out.result.residual_ratio if np.isfinite(out.result.residual_ratio) else 0.0
            scene_depth_m = float(np.nanmedian(newest.depth))
            covariance = pose_covariance(*odometry_sigmas(residual_ratio * scene_depth_m, scene_depth_m))
        odom_from_base = self.base_pose(newest.world_from_camera)
        self._last_odom_from_base = odom_from_base
        return BaseOdometry(newest.stamp_ns, odom_from_base, covariance)
