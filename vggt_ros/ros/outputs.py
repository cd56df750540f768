# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""What the node publishes for a window, as (output, message) pairs: one builder for the live node and for bags.

The node hands each pair to its publisher; `vggt-ros-reconstruct --out-bag` writes the same pairs into an mcap
bag under the topics the node would use (`topic`), so a recording of the offline run replays exactly like the
node. Outputs switched off by the ``publish_*`` parameters are not built.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch
from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage

from vggt_ros.geometry import compose_poses
from vggt_ros.live.parameters import NodeParameters
from vggt_ros.live.robot import BaseOdometry, RobotPlacement
from vggt_ros.live.saving import WorldPlacement
from vggt_ros.numeric import pack_rgb
from vggt_ros.ros import messages, qos
from vggt_ros.session import PublishedFrame, WindowOutput

# Depth of the outputs' keep-last queues.
OUTPUT_QOS = 5
MAP_FIELDS = ("x", "y", "z", "rgb")


class Output(NamedTuple):
    """One published stream: ``kind`` (depth, confidence, camera_info, points, path, map, tf, tf_static) and, for
    per-camera outputs, the camera index (-1 otherwise)."""

    kind: str
    camera: int = -1


def topic(params: NodeParameters, output: Output, node_prefix: str = "~/") -> str:
    """The topic of ``output``: relative to the node (``~/...``) for the node itself; pass ``/<node name>/`` for
    the fully resolved name (bags). One camera publishes ``~/depth/image``, several ``~/<name>/depth/image``."""
    if output.kind in ("tf", "tf_static"):
        return f"/{output.kind}"
    if output.camera < 0:
        return node_prefix + output.kind
    prefix = node_prefix if len(params.names) == 1 else f"{node_prefix}{params.names[output.camera]}/"
    return (
        prefix + {"depth": "depth/image", "camera_info": "depth/camera_info", "confidence": "confidence"}[output.kind]
    )


def publisher_specs(params: NodeParameters, robot_frames: bool) -> list[tuple[Output, type, object]]:
    """(output, message type, QoS profile) of every output the parameters ask for: what the node publishes."""
    per_camera = (
        ("depth", Image, params.publish_depth),
        ("confidence", Image, params.publish_confidence),
        ("camera_info", CameraInfo, params.publish_camera_info),
    )
    specs = [
        (Output(kind, camera), msg_type, OUTPUT_QOS)
        for kind, msg_type, enabled in per_camera
        if enabled
        for camera in range(len(params.names))
    ]
    if params.publish_points:
        specs.append((Output("points"), PointCloud2, OUTPUT_QOS))
    if params.publish_path:
        specs.append((Output("path"), Path, OUTPUT_QOS))
    if params.publish_tf or params.publish_odom_tf:
        specs += [(Output("tf"), TFMessage, qos.TF), (Output("tf_static"), TFMessage, qos.LATCHED)]
    if robot_frames:
        specs.append((Output("odometry"), Odometry, OUTPUT_QOS))
    if params.publish_map:
        specs.append((Output("map"), PointCloud2, qos.LATCHED))  # RViz started later still gets it
    return specs


class StaticTransforms:
    """Every transform the node has sent on /tf_static, the newest per child frame, so that each message carries
    them all. The topic keeps one message for late listeners (qos.LATCHED, tf2_ros' QoS): a transform sent on its
    own would hide the ones before it from RViz or a tf2 buffer started later. rclcpp's StaticTransformBroadcaster
    keeps them the same way (rclpy's does not).

    Used by one thread at a time: configure's, then the worker's, then cleanup's once the worker has stopped.
    """

    def __init__(self) -> None:
        self._by_child: dict[str, TransformStamped] = {}

    def merged(self, message: TFMessage) -> TFMessage:
        """``message``'s transforms kept (each replacing the one of its child frame), and all kept as one message."""
        for transform in message.transforms:
            self._by_child[transform.child_frame_id] = transform
        return messages.tf_message(list(self._by_child.values()))

    def clear(self) -> None:
        """Forget them: a new world starts."""
        self._by_child.clear()


def window_messages(params: NodeParameters, out: WindowOutput, path: Sequence[tuple[int, np.ndarray]]) -> list:
    """``[(Output, message)]`` for one merged window: per-camera depth, confidence and CameraInfo of the newest
    frame set, the cameras' TF, the new points and the path (``path``: (stamp_ns, world pose) of the kept
    keyframes)."""
    newest_stamp_ns = out.window.frame_sets[-1].stamps_ns[0]
    # The cameras' and the path's rotations in one conversion.
    tf_frames = out.newest if params.publish_tf else []
    path_poses = path if params.publish_path else []
    rotations = messages.quaternions([f.world_from_camera for f in tf_frames] + [pose for _, pose in path_poses])
    pairs = _frame_set_pairs(params, out.newest, rotations[: len(tf_frames)])
    if params.publish_points and out.cloud is not None:
        cloud = out.cloud
        pairs.append(
            (
                Output("points"),
                messages.point_cloud2(cloud.points, cloud.height, cloud.width, newest_stamp_ns, params.world_frame_id),
            )
        )
    if params.publish_path:
        path_message = messages.path(path, newest_stamp_ns, params.world_frame_id, rotations[len(tf_frames) :])
        pairs.append((Output("path"), path_message))
    return pairs


def frame_set_messages(params: NodeParameters, frames: Sequence[PublishedFrame]) -> list:
    """``[(Output, message)]`` of one frame set's images (`ReconstructionSession.earlier_added_frame_sets`): the
    per-camera depth, confidence and CameraInfo, and the cameras' TF, as `window_messages` has for the newest."""
    rotations = messages.quaternions([f.world_from_camera for f in frames] if params.publish_tf else [])
    return _frame_set_pairs(params, frames, rotations)


def _frame_set_pairs(params: NodeParameters, frames: Sequence[PublishedFrame], tf_rotations: list) -> list:
    """Per-camera depth, confidence and CameraInfo of ``frames``, then their TF (``tf_rotations``: each frame's
    quaternion, empty when TF is off)."""
    pairs = []
    for frame in frames:
        optical = params.optical_frame(frame.camera)
        if params.publish_depth:
            pairs.append((Output("depth", frame.camera), messages.float_image(frame.depth, frame.stamp_ns, optical)))
        if params.publish_confidence:
            pairs.append(
                (Output("confidence", frame.camera), messages.float_image(frame.confidence, frame.stamp_ns, optical))
            )
        if params.publish_camera_info:
            pairs.append(
                (
                    Output("camera_info", frame.camera),
                    messages.camera_info(frame.intrinsics, frame.depth.shape, frame.stamp_ns, optical),
                )
            )
    if tf_rotations:
        transforms = [
            messages.transform_stamped(
                params.world_frame_id, params.optical_frame(frame.camera), frame.stamp_ns, frame.world_from_camera, q
            )
            for frame, q in zip(frames, tf_rotations)
        ]
        pairs.append((Output("tf"), messages.tf_message(transforms)))
    return pairs


def map_message(params: NodeParameters, points: np.ndarray, colors: np.ndarray, stamp_ns: int):
    """The map ``(N, 3)`` points with ``(N, 3)`` uint8 colours as a PointCloud2 in the world frame."""
    rows = np.column_stack((points, pack_rgb(torch.from_numpy(colors)).numpy()))
    return messages.point_cloud2(rows, 1, len(rows), stamp_ns, params.world_frame_id, MAP_FIELDS)


def world_placement(params: NodeParameters, robot: Optional[RobotPlacement]) -> Optional[WorldPlacement]:
    """Where the world's frame sits before any loop's correction, for ``~/save``: under ``parent_frame`` z up
    relative to the first camera (REP 103), or with robot frames where `robot_tree_messages` hangs it (None until
    the world is placed)."""
    if robot is None:
        parent_from_world = np.eye(4)
        parent_from_world[:3, :3] = messages.PARENT_FROM_OPTICAL_WORLD
        return WorldPlacement(params.parent_frame, params.world_frame_id, parent_from_world)
    placed = robot.placed  # one read: the worker may place a new world meanwhile
    if placed is None:
        return None
    # The files hold the loop-corrected world wherever loops are closed, and it is map's (with publish_tf off too,
    # though nothing publishes map then); without loop closure the chained world, odom's.
    parent = params.parent_frame if params.loop_closure else params.odom_frame
    return WorldPlacement(parent, params.world_frame_id, placed.odom_from_world, placed.origin_stamp_ns)


def world_frame_message(params: NodeParameters, stamp_ns: int, correction: Optional[np.ndarray] = None):
    """The static parent_frame -> world_frame transform: z up relative to the first camera (REP 103), after the
    loop closure's rigid ``correction`` ``(4, 4)`` of the world (`ReconstructionSession.world_correction`)."""
    parent_from_world = world_placement(params, None).parent_from_world
    if correction is not None:
        parent_from_world = parent_from_world @ correction
    return messages.tf_message(
        [messages.transform_stamped(params.parent_frame, params.world_frame_id, stamp_ns, parent_from_world)]
    )


def robot_tree_messages(
    params: NodeParameters, stamp_ns: int, robot: RobotPlacement, correction: Optional[np.ndarray]
) -> list:
    """REP 105: the latched transform that hangs the world among the robot's frames, once it is placed (none
    before), with the loops' ``correction`` ``(4, 4)`` where the node closes loops (identity before the first; None
    with loop_closure off).

    Without loop closure the world hangs under odom (``odom_frame -> world_frame``, the placement). With it the
    node owns map -> odom, which goes on /tf (`map_odom_message`, `RobotPlacement.map_from_odom`) as SLAM nodes
    publish it, and the world hangs under map (``parent_frame -> world_frame``: the placement, made when map was
    odom, after the correction).
    """
    if not params.publish_tf or robot.odom_from_world is None:
        return []
    if correction is None:
        transform = messages.transform_stamped(
            params.odom_frame, params.world_frame_id, stamp_ns, robot.odom_from_world
        )
    else:
        map_from_world = compose_poses(robot.odom_from_world, correction)
        transform = messages.transform_stamped(params.parent_frame, params.world_frame_id, stamp_ns, map_from_world)
    return [(Output("tf_static"), messages.tf_message([transform]))]


def map_odom_message(params: NodeParameters, stamp_ns: int, map_from_odom: np.ndarray) -> TFMessage:
    """``parent_frame -> odom_frame`` ``(4, 4)`` on /tf (robot frames and loop closure)."""
    return messages.tf_message(
        [messages.transform_stamped(params.parent_frame, params.odom_frame, stamp_ns, map_from_odom)]
    )


def odometry_messages(params: NodeParameters, odometry: BaseOdometry) -> list:
    """``~/odometry`` of the base and, with ``publish_odom_tf``, ``odom_frame -> robot_base_frame``."""
    odom, base, stamp_ns = params.odom_frame, params.robot_base_frame, odometry.stamp_ns
    pairs = [
        (Output("odometry"), messages.odometry(stamp_ns, odom, base, odometry.odom_from_base, odometry.covariance))
    ]
    if params.publish_odom_tf:
        transform = messages.transform_stamped(odom, base, stamp_ns, odometry.odom_from_base)
        pairs.append((Output("tf"), messages.tf_message([transform])))
    return pairs


def loop_messages(
    params: NodeParameters,
    stamp_ns: int,
    correction: np.ndarray,
    path: Sequence[tuple[int, np.ndarray]],
    robot: Optional[RobotPlacement] = None,
) -> list:
    """After a closed loop: the world moved by its ``correction`` ``(4, 4)`` (REP 105's map -> odom) on /tf_static,
    as ``parent_frame -> world_frame`` or, with robot frames, as `robot_tree_messages` hangs it; and the corrected
    path."""
    pairs = []
    if params.publish_tf:
        if robot is None:
            pairs.append((Output("tf_static"), world_frame_message(params, stamp_ns, correction)))
        else:
            pairs += robot_tree_messages(params, stamp_ns, robot, correction)
    if params.publish_path and path:
        pairs.append((Output("path"), messages.path(path, stamp_ns, params.world_frame_id)))
    return pairs
