# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's messages into an mcap rosbag2 recording, without DDS: what a live run would have published.

`BagWriter` takes the rclpy message objects the node publishes (built by `vggt_ros.ros.messages`) and stores
them as ``ros2 bag record`` would: CDR bytes from ``rclpy.serialization.serialize_message`` (the ROS client
library's own serialiser, no middleware started), one connection per topic whose type name comes from the
message class, with its message definition and type hash from rosbags' ROS 2 Kilted typestore so that readers
without the message packages (rosbags, Foxglove, ``ros2 bag`` itself) can decode it.

Each topic's offered QoS profile is recorded too, because ``ros2 bag play`` offers the recorded durability and
reliability: ``latched=True`` (for /tf_static and ~/map) records the node's transient-local profile (reliable,
keep last 1), so RViz started after the replay still gets the static frames and the map, as from the live node;
other topics record reliable, volatile, keep last `VOLATILE_DEPTH` (tf2_ros' broadcaster depth; the node's other
outputs keep 5, and depth does not affect which subscribers match).

The writer refuses to replace an existing bag. The bag folder is created at construction and made readable by
`close` (metadata.yaml and the mcap summary); leaving a ``with`` block closes it even on an exception, so what
was written before an error stays readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from rclpy.serialization import serialize_message
from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from vggt_ros.ros.messages import SerializedMessage

VOLATILE_DEPTH = 100
# RMW_DURATION_UNSPECIFIED: the middleware's default (no deadline, no lifespan), as rclpy's QoSProfile leaves them.
_UNSPECIFIED = QosTime(sec=0, nsec=0)


def _profile(depth: int, durability: QosDurability) -> Qos:
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE,
        durability=durability,
        deadline=_UNSPECIFIED,
        lifespan=_UNSPECIFIED,
        liveliness=QosLiveliness.SYSTEM_DEFAULT,
        liveliness_lease_duration=_UNSPECIFIED,
        avoid_ros_namespace_conventions=False,
    )


LATCHED_QOS = _profile(1, QosDurability.TRANSIENT_LOCAL)
VOLATILE_QOS = _profile(VOLATILE_DEPTH, QosDurability.VOLATILE)


def message_type_name(message: object) -> str:
    """ "package/msg/Name" of an rclpy message object or a `SerializedMessage` (e.g. sensor_msgs/msg/PointCloud2),
    from its class.

    Raises:
        TypeError: ``message`` is not an instance of a generated ROS 2 message class.
    """
    cls = message.msg_type if isinstance(message, SerializedMessage) else type(message)
    # Generated classes live in <package>.msg._<snake_case_name>.
    parts = cls.__module__.split(".")
    if len(parts) != 3 or parts[1] != "msg" or not parts[2].startswith("_"):
        raise TypeError(
            f"expected an rclpy message object (for example sensor_msgs.msg.PointCloud2), got {cls.__module__}."
            f"{cls.__qualname__}; build messages with vggt_ros.ros.messages"
        )
    return f"{parts[0]}/msg/{cls.__name__}"


class BagWriter:
    """An mcap rosbag2 recording at ``path`` (a folder that must not exist yet) of rclpy messages.

    Raises:
        FileExistsError: ``path`` exists (a bag is never overwritten).
    """

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(
                f"'{self.path}' already exists; choose a new bag folder (an existing bag is never overwritten)"
            )
        self._typestore = get_typestore(Stores.ROS2_KILTED)
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._open = True
        # topic -> (its connection, message type, latched), fixed by the topic's first message.
        self._topics: dict[str, tuple[Connection, str, bool]] = {}
        self.message_count = 0

    def write(self, topic: str, message: object, stamp_ns: int, latched: bool = False) -> None:
        """Record ``message`` on ``topic`` (fully qualified, e.g. /vggt/points) at log time ``stamp_ns``.

        Args:
            topic: the resolved topic name; its first message fixes its type and ``latched``.
            message: an rclpy message object, or a `SerializedMessage` (see `vggt_ros.ros.messages`).
            stamp_ns: the log time in nanoseconds (the node's output stamp, when replaying).
            latched: record a transient-local offer (/tf_static, the map), see the module docstring.
        Raises:
            ValueError: a closed writer, a relative topic name, a negative or non-integer stamp, a topic written
                before with another type or latching, or a type rosbags' Kilted typestore does not know.
            TypeError: ``message`` is not an rclpy message.
        """
        if not self._open:
            raise ValueError(f"bag '{self.path}' is closed; write before close() or inside the with block")
        if not isinstance(topic, str) or not topic.startswith("/") or len(topic) < 2:
            raise ValueError(f"topic must be a fully qualified name such as '/vggt/points', got {topic!r}")
        if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, int) or stamp_ns < 0:
            raise ValueError(f"stamp_ns must be an int >= 0 (nanoseconds), got {stamp_ns!r}")
        msgtype = message_type_name(message)
        known = self._topics.get(topic)
        if known is None:
            known = (self._add_connection(topic, msgtype, latched), msgtype, latched)
            self._topics[topic] = known
        connection, known_type, known_latched = known
        if (known_type, known_latched) != (msgtype, latched):
            raise ValueError(
                f"topic {topic} was first written as {known_type} (latched={known_latched}); got {msgtype} "
                f"(latched={latched}): a topic keeps one type and one QoS profile"
            )
        data = message.data if isinstance(message, SerializedMessage) else serialize_message(message)
        self._writer.write(connection, stamp_ns, data)
        self.message_count += 1

    def close(self) -> None:
        """Finish the bag (its index and metadata.yaml); later calls do nothing."""
        if self._open:
            self._open = False
            self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _add_connection(self, topic: str, msgtype: str, latched: bool) -> Connection:
        if msgtype not in self._typestore.fielddefs:
            raise ValueError(
                f"message type {msgtype} (topic {topic}) is not in rosbags' ROS 2 Kilted typestore, so its "
                "definition cannot be stored for readers; only standard ROS 2 message types can be recorded"
            )
        qos = LATCHED_QOS if latched else VOLATILE_QOS
        return self._writer.add_connection(topic, msgtype, typestore=self._typestore, offered_qos_profiles=[qos])
