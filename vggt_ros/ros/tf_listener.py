# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The robot's transforms (/tf, /tf_static) as a `TransformLookup`: numpy matrices in, the same errors out.

`make_transform_buffer` picks the implementation once, at start-up:

* where tf2_ros is installed (every ROS 2 robot), `Tf2TransformLookup`: tf2_ros.Buffer and TransformListener,
  with their messages converted to ``(4, 4)`` matrices and their exceptions to `TransformLookupError`'s
  subclasses. Deliberately thin: it cannot be tested where tf2_ros is not installable.
* elsewhere, `TopicTransformListener`: vggt_ros' own `TransformBuffer`, fed by subscriptions with the QoS of
  tf2_ros' TransformListener (/tf_static transient local, so transforms latched before this node started still
  arrive).

Both are filled by the node's executor, so they only see transforms while the node spins.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

import numpy as np
import yaml
from geometry_msgs.msg import Transform, TransformStamped
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time
from tf2_msgs.msg import TFMessage

from vggt_ros.geometry import quaternion_to_rotation_matrix
from vggt_ros.live.stamps import ns_from_stamp
from vggt_ros.metric.tf_buffer import (
    DEFAULT_CACHE_TIME_S,
    ExtrapolationError,
    NoConnectionError,
    ParentLink,
    TransformBuffer,
    TransformLookup,
    TransformLookupError,
    UnknownFrameError,
)
from vggt_ros.ros import qos

# tf2 ignores a transform whose quaternion's squared norm is further than this from 1 (QUATERNION_NORMALIZATION_
# TOLERANCE); closer ones are normalised.
QUATERNION_SQUARED_NORM_TOLERANCE = 1e-2
# Repeated warnings about bad transforms are logged at most this often (a publisher repeats its mistake each cycle).
WARNING_PERIOD_S = 5.0


def matrices_from_transforms(transforms: list[Transform]) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 4, 4)`` parent_from_child matrices of geometry_msgs/Transforms and an ``(N,)`` bool mask of usable ones.

    Quaternions are (x, y, z, w), as `messages.transform_stamped` writes them. Rows whose quaternion is not
    unit length within `QUATERNION_SQUARED_NORM_TOLERANCE`, or with a non-finite value, are False in the mask
    (their matrices are identity). All rotations are converted in one call: a TFMessage often carries dozens.
    """
    quaternions = np.array([(t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w) for t in transforms])
    translations = np.array([(t.translation.x, t.translation.y, t.translation.z) for t in transforms])
    quaternions, translations = quaternions.reshape(-1, 4), translations.reshape(-1, 3)
    usable = (
        np.isfinite(quaternions).all(axis=1)
        & np.isfinite(translations).all(axis=1)
        & (np.abs((quaternions**2).sum(axis=1) - 1.0) <= QUATERNION_SQUARED_NORM_TOLERANCE)
    )
    matrices = np.tile(np.eye(4), (len(transforms), 1, 1))
    if usable.any():
        matrices[usable, :3, :3] = quaternion_to_rotation_matrix(quaternions[usable])
        matrices[usable, :3, 3] = translations[usable]
    return matrices, usable


class TopicTransformListener:
    """A `TransformBuffer` filled from /tf and /tf_static, for where tf2_ros is not installed."""

    def __init__(self, node: Node, cache_time_s: float = DEFAULT_CACHE_TIME_S) -> None:
        self.buffer = TransformBuffer(cache_time_s)
        self._logger = node.get_logger()
        self._two_parents: set[tuple[str, frozenset[str]]] = set()  # (child, its two parents) warned about
        self._subscriptions = [
            node.create_subscription(TFMessage, "/tf", self._on_tf, qos.TF),
            node.create_subscription(TFMessage, "/tf_static", self._on_tf_static, qos.TF_STATIC_LISTENER),
        ]

    def lookup_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> np.ndarray:
        return self.buffer.lookup_transform(target_frame, source_frame, stamp_ns)

    def can_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> bool:
        return self.buffer.can_transform(target_frame, source_frame, stamp_ns)

    def ancestors(self, frame: str) -> list[ParentLink]:
        return self.buffer.ancestors(frame)

    def clear(self) -> None:
        self.buffer.clear()

    def _on_tf(self, msg: TFMessage) -> None:
        self._store(msg.transforms, static=False)

    def _on_tf_static(self, msg: TFMessage) -> None:
        self._store(msg.transforms, static=True)

    def _store(self, transforms: list[TransformStamped], static: bool) -> None:
        """Add each transform to the buffer; a bad one is logged and skipped, the rest of the message still counts."""
        if not transforms:
            return
        matrices, usable = matrices_from_transforms([t.transform for t in transforms])
        for transform, parent_from_child, is_usable in zip(transforms, matrices, usable):
            parent, child = transform.header.frame_id, transform.child_frame_id
            before = self.buffer.ancestors(child)[:1]
            try:
                if not is_usable:
                    raise ValueError(f"a non-unit quaternion or a non-finite value: {transform.transform}")
                if static:
                    self.buffer.set_transform_static(parent, child, parent_from_child)
                elif not self.buffer.set_transform(
                    parent, child, ns_from_stamp(transform.header.stamp), parent_from_child
                ):
                    raise ValueError(
                        f"its stamp is more than {self.buffer.cache_time_s} s older than the link's newest transform "
                        "(a publisher with a lagging clock?)"
                    )
            except ValueError as error:
                topic = "/tf_static" if static else "/tf"
                self._logger.warning(
                    f"ignoring transform {parent!r} -> {child!r} from {topic}: {error}",
                    throttle_duration_sec=WARNING_PERIOD_S,
                )
                continue
            if before and before[0].parent != parent:
                self._warn_two_parents(child, before[0].parent, parent)

    def _warn_two_parents(self, child: str, earlier: str, parent: str) -> None:
        """Warn, once per frame and pair of parents, that ``child`` came under another parent: two publishers give
        it one each (a URDF's frame named as the node's, two odometry sources), and the tree flips between them."""
        key = (child, frozenset((earlier, parent)))
        if key in self._two_parents:
            return
        self._two_parents.add(key)
        self._logger.warning(
            f"frame {child!r} came under parent {parent!r}, after {earlier!r}: unless it is moved on purpose, two "
            "publishers send it, and a frame has one parent (lookups flip between them). Rename one: for the "
            "node's own frames, camera_names, world_frame or frame_prefix"
        )


class Tf2TransformLookup:
    """tf2_ros.Buffer and TransformListener behind the `TransformLookup` interface."""

    def __init__(self, node: Node, tf2_ros: ModuleType, cache_time_s: float = DEFAULT_CACHE_TIME_S) -> None:
        self._tf2_ros = tf2_ros
        self._buffer = tf2_ros.Buffer(cache_time=Duration(seconds=cache_time_s), node=node)
        self._listener = tf2_ros.TransformListener(self._buffer, node)

    def lookup_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> np.ndarray:
        tf2_ros = self._tf2_ros
        try:
            msg = self._buffer.lookup_transform(target_frame, source_frame, Time(nanoseconds=stamp_ns))
        except tf2_ros.LookupException as error:
            raise UnknownFrameError(str(error)) from error
        except tf2_ros.ConnectivityException as error:
            raise NoConnectionError(str(error)) from error
        except tf2_ros.ExtrapolationException as error:
            raise ExtrapolationError(str(error)) from error
        except tf2_ros.TransformException as error:
            raise TransformLookupError(str(error)) from error
        matrices, _ = matrices_from_transforms([msg.transform])
        return matrices[0]  # tf2 refuses non-unit quaternions on insertion, so what it returns is usable

    def can_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> bool:
        return self._buffer.can_transform(target_frame, source_frame, Time(nanoseconds=stamp_ns))

    def ancestors(self, frame: str) -> list[ParentLink]:
        links = links_from_tf2_yaml(self._buffer.all_frames_as_yaml())  # tf2's Python buffer has no other view
        chain: list[ParentLink] = []
        while (link := links.get(chain[-1].parent if chain else frame)) is not None and link not in chain:
            chain.append(link)
        return chain

    def clear(self) -> None:
        self._buffer.clear()


def links_from_tf2_yaml(text: str) -> dict[str, ParentLink]:
    """Each child frame's `ParentLink` in tf2's ``all_frames_as_yaml`` dump (``<frame>: {parent: '<parent>',
    most_recent_transform: <s>, ...}``; a static link's most recent transform is 0). Every scalar read as a string
    (frame ids such as ``1`` or ``yes``); a dump YAML cannot read gives none: this serves hints only."""
    try:
        frames = yaml.load(text, Loader=yaml.BaseLoader) or {}
    except yaml.YAMLError:
        return {}
    if not isinstance(frames, dict):  # "[]": no frames
        return {}
    links = {}
    for child, fields in frames.items():
        if isinstance(fields, dict) and fields.get("parent"):
            try:
                moving = float(fields.get("most_recent_transform", "0")) != 0.0
            except ValueError:
                moving = False
            links[child] = ParentLink(fields["parent"], moving)
    return links


def make_transform_buffer(node: Node, cache_time_s: float = DEFAULT_CACHE_TIME_S) -> TransformLookup:
    """The robot's transforms as seen by ``node``: through tf2_ros where it is installed, else our own buffer.

    A tf2_ros that is present but fails to import raises: a broken installation should not silently fall back.
    """
    if importlib.util.find_spec("tf2_ros") is None:
        node.get_logger().info("tf2_ros is not installed: robot frames come from vggt_ros' own /tf listener")
        return TopicTransformListener(node, cache_time_s)
    import tf2_ros

    return Tf2TransformLookup(node, tf2_ros, cache_time_s)
