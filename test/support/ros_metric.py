# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Support for the node-level metric tests (test/ros/test_node_metric.py): the `vggt` node over the synthetic room, and
a robot made of test doubles that talks to it over real rclpy.

* `CountingPipelineForTests`: `support.synthetic.FakePipelineForWorldTests` (the test double of the network over
  the synthetic room, whose unit is the metre) that also counts the windows it answered. A test sends the next
  frame only once the node has taken the previous window, so the node's newest-wins slot never drops one and
  every run sees the same windows.
* `RunningNode`: the real `ReconstructionNode`, built with that test double in place of the network
  (``create_pipeline`` patched for the constructor only) and spinning in its own executor thread.
* `RobotForTests`: one rclpy node in its own executor thread that plays the robot: camera images (rgb8), depth
  images (REP 118: 16UC1 millimetres with 0 for no reading, or 32FC1 metres with NaN), odometry on /tf and the
  mounting or the rig on /tf_static (one latched message holding every static transform, as tf2_ros'
  StaticTransformBroadcaster sends them). It records what the node publishes and the node's /rosout lines.
* Message builders and readers written from the message definitions; transforms are read with
  `vggt_ros.ros.tf_listener.matrices_from_transforms`, the conversion test_tf_listener.py checks against known
  rotations.
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np
import pytest
from rcl_interfaces.msg import Log
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2
from tf2_msgs.msg import TFMessage

import vggt_ros.live.startup as startup_module
from support.spinning import Spinner
from support.synthetic import FakePipelineForWorldTests, FakeVGGTForWorldTests
from support.waiting import wait_for
from vggt_ros.geometry import quaternion_to_rotation_matrix
from vggt_ros.ros import messages
from vggt_ros.ros.node import NODE_NAME, ReconstructionNode
from vggt_ros.ros.tf_listener import matrices_from_transforms

WAIT_S = 30.0
WARN = 30  # rcl_interfaces/Log level
NANOSECONDS = 1_000_000_000
RELIABLE = QoSProfile(depth=200, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
# /tf_static as tf2_ros uses it: reliable and transient local, so a late subscriber still gets the static frames.
LATCHED = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
LATCHED_READER = QoSProfile(
    depth=100,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


class CountingPipelineForTests(FakePipelineForWorldTests):
    """`FakePipelineForWorldTests` that counts the windows it answered (one `predict` per window)."""

    def __init__(self, oracle: FakeVGGTForWorldTests) -> None:
        super().__init__(oracle)
        self.windows = 0
        self._condition = threading.Condition()

    def predict(self, patch_tokens, image_hw, outputs, dense_frames):
        answer = super().predict(patch_tokens, image_hw, outputs, dense_frames)
        with self._condition:
            self.windows += 1
            self._condition.notify_all()
        return answer

    def wait_windows(self, count: int, timeout_s: float = WAIT_S) -> None:
        """Block until ``count`` windows have been answered since construction."""
        with self._condition:
            if not self._condition.wait_for(lambda: self.windows >= count, timeout=timeout_s):
                raise AssertionError(f"the node ran {self.windows} windows in {timeout_s} s, expected {count}")


class RunningNode:
    """The node under test, with ``pipeline`` as its network, spinning in its own executor thread."""

    def __init__(self, parameters: dict, pipeline) -> None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(startup_module, "create_pipeline", lambda config: pipeline)
            self.node = ReconstructionNode(
                parameter_overrides=[Parameter(name, value=value) for name, value in parameters.items()]
            )
        self.spinner = Spinner(self.node)

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()


# --------------------------------------------------------------------------------------------- messages in
def _stamped(msg, stamp_ns: int, frame_id: str):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, NANOSECONDS)
    msg.header.frame_id = frame_id
    return msg


def rgb_image(rgb: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    """An rgb8 sensor_msgs/Image of ``(H, W, 3)`` uint8 pixels."""
    height, width, _ = rgb.shape
    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=False, step=3 * width)
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return _stamped(msg, stamp_ns, frame_id)


def depth_image(depth_m: np.ndarray, stamp_ns: int, frame_id: str, encoding: str) -> Image:
    """A depth sensor_msgs/Image of ``(H, W)`` metres (NaN: no reading) as a driver sends it (REP 118): 16UC1
    millimetres with 0 for no reading, or 32FC1 metres (NaN stays NaN). Little-endian."""
    depth_m = np.asarray(depth_m, dtype=np.float64)
    if encoding == "16UC1":
        stored = np.where(np.isfinite(depth_m), np.round(depth_m * 1000.0), 0.0).astype("<u2")
    elif encoding == "32FC1":
        stored = depth_m.astype("<f4")
    else:
        raise ValueError(f"depth_image builds 16UC1 or 32FC1 images, not {encoding!r}")
    height, width = depth_m.shape
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=False, step=stored.itemsize * width)
    msg.data = stored.tobytes()
    return _stamped(msg, stamp_ns, frame_id)


# -------------------------------------------------------------------------------------------- messages out
def stamp_ns(msg) -> int:
    """The header stamp of ``msg`` (anything with a header) in nanoseconds."""
    return msg.header.stamp.sec * NANOSECONDS + msg.header.stamp.nanosec


def float_image(msg: Image) -> np.ndarray:
    """``(H, W)`` float32 values of a little-endian 32FC1 image with unpadded rows."""
    assert msg.encoding == "32FC1" and msg.step == 4 * msg.width and not msg.is_bigendian, (
        f"expected an unpadded little-endian 32FC1 image, got {msg.encoding} step {msg.step}"
    )
    return np.frombuffer(bytes(msg.data), dtype="<f4").reshape(msg.height, msg.width)


def transform_matrix(transform_stamped) -> np.ndarray:
    """``(4, 4)`` parent_from_child of a geometry_msgs/TransformStamped."""
    matrices, usable = matrices_from_transforms([transform_stamped.transform])
    assert usable[0], f"not a rigid transform: {transform_stamped.transform}"
    return matrices[0]


def pose_matrix(pose) -> np.ndarray:
    """``(4, 4)`` of a geometry_msgs/Pose (quaternion x, y, z, w)."""
    q = pose.orientation
    matrix = np.eye(4)
    matrix[:3, :3] = quaternion_to_rotation_matrix(np.array([q.x, q.y, q.z, q.w]))
    matrix[:3, 3] = (pose.position.x, pose.position.y, pose.position.z)
    return matrix


def cloud_xyz(msg: PointCloud2) -> np.ndarray:
    """``(N, 3)`` float64 x, y, z of a PointCloud2 of float32 fields, from its declared offsets; NaN rows dropped."""
    offsets = {field.name: field.offset for field in msg.fields}
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height * msg.width, msg.point_step)
    xyz = np.stack(
        [raw[:, offsets[name] : offsets[name] + 4].copy().view("<f4")[:, 0] for name in ("x", "y", "z")], axis=1
    ).astype(np.float64)
    return xyz[np.isfinite(xyz).all(axis=1)]


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """Angle of a ``(3, 3)`` rotation, degrees."""
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))


# ------------------------------------------------------------------------------------------------- robot
class RobotForTests:
    """The robot around the node (see the module docstring): publishes its sensors, records the node's outputs.

    ``outputs``: topic -> message type of the node's outputs to record (reliable); /tf, /tf_static and /rosout are
    always recorded. Depth publishers are created on first use, so until then a depth topic has no publisher at
    all (a depth camera that is not running).
    """

    def __init__(self, image_topics: Sequence[str], outputs: dict[str, type]) -> None:
        self.node = Node("robot_for_tests")
        self._condition = threading.Condition()
        self.received: dict[str, list] = {}
        self.output_subscriptions = [
            self.node.create_subscription(msg_type, name, self._recorder(name), RELIABLE)
            for name, msg_type in outputs.items()
        ]
        self.node.create_subscription(TFMessage, "/tf", self._recorder("/tf"), RELIABLE)
        self.node.create_subscription(TFMessage, "/tf_static", self._recorder("/tf_static"), LATCHED_READER)
        self.node.create_subscription(Log, "/rosout", self._recorder("/rosout"), RELIABLE)
        self.image_publishers = {name: self.node.create_publisher(Image, name, 10) for name in image_topics}
        self.depth_publishers: dict[str, object] = {}
        self._tf = self.node.create_publisher(TFMessage, "/tf", RELIABLE)
        self._tf_static = self.node.create_publisher(TFMessage, "/tf_static", LATCHED)
        self._static: dict[str, object] = {}  # child frame -> TransformStamped, all sent in each /tf_static message
        self.spinner = Spinner(self.node)

    def _recorder(self, name: str) -> Callable:
        def record(msg) -> None:
            with self._condition:
                self.received.setdefault(name, []).append(msg)
                self._condition.notify_all()

        return record

    def listen_late(self, topic: str, msg_type: type, key: str) -> None:
        """Subscribe to ``topic`` now, transient local (`LATCHED_READER`) like a listener that joins late (RViz, a
        tf2 buffer started later): it gets what the publishers kept for it. Recorded under ``key``."""
        self.node.create_subscription(msg_type, topic, self._recorder(key), LATCHED_READER)

    # ---------------------------------------------------------------------------------------- publishing
    def wait_connected(self) -> None:
        """Until the node subscribes to the images and publishes every recorded output."""
        self.wait_for(
            lambda: (
                all(s.get_publisher_count() > 0 for s in self.output_subscriptions)
                and all(p.get_subscription_count() > 0 for p in self.image_publishers.values())
            ),
            what="DDS discovery between the robot and the node",
        )

    def publish_image(self, topic: str, msg: Image) -> None:
        self.image_publishers[topic].publish(msg)

    def publish_depth(self, topic: str, msg: Image) -> None:
        """Publish on a depth topic, creating its publisher (and waiting for the node to match it) on first use."""
        if topic not in self.depth_publishers:
            publisher = self.depth_publishers[topic] = self.node.create_publisher(Image, topic, 10)
            self.wait_for(lambda: publisher.get_subscription_count() > 0, what=f"the node to subscribe to {topic}")
        self.depth_publishers[topic].publish(msg)

    def publish_tf(self, parent: str, child: str, stamp: int, parent_from_child: np.ndarray) -> None:
        self._tf.publish(messages.tf_message([messages.transform_stamped(parent, child, stamp, parent_from_child)]))

    def publish_static(self, parent: str, child: str, parent_from_child: np.ndarray) -> None:
        """Add a static transform; the latched /tf_static message carries all of them."""
        self._static[child] = messages.transform_stamped(parent, child, 0, parent_from_child)
        self._tf_static.publish(messages.tf_message(list(self._static.values())))

    # ----------------------------------------------------------------------------------------- recording
    def wait_for(self, predicate: Callable[[], object], timeout_s: float = WAIT_S, what: str = "a condition"):
        return wait_for(self._condition, predicate, timeout_s, what)

    def messages(self, topic: str) -> list:
        with self._condition:
            return list(self.received.get(topic, []))

    def at(self, topic: str, stamp: int):
        """The newest message on ``topic`` stamped ``stamp``, or None."""
        return next((m for m in reversed(self.messages(topic)) if stamp_ns(m) == stamp), None)

    def transforms(self, topic: str, parent: str, child: str) -> list:
        """Every TransformStamped ``parent`` -> ``child`` received on ``topic`` (/tf or /tf_static), oldest first."""
        return [
            t
            for msg in self.messages(topic)
            for t in msg.transforms
            if t.header.frame_id == parent and t.child_frame_id == child
        ]

    def logs(self, level: int, text: str) -> list[str]:
        """The node's /rosout lines of ``level`` that contain ``text``."""
        return [m.msg for m in self.messages("/rosout") if m.name == NODE_NAME and m.level == level and text in m.msg]

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()
