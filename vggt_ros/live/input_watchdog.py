# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Which image topics have gone quiet: the node's check that images actually reach it.

No ROS here: the node tells the watchdog when an image arrives and, from a timer, asks which topics are quiet,
handing it each topic's current publisher count (``Node.count_publishers``).

A topic is quiet when no image has arrived for ``timeout_s`` seconds. The quiet spell starts at the node's
start, at the last image, or at the check that first sees the topic's publishers appear or all leave, whichever
came last, so a camera started after the node gets its full ``timeout_s``. Two cases look different and need
different fixes:

* publishers are matched but nothing arrives: typically large best-effort images that the transport drops
  (Fast DDS' default UDP transport loses camera-sized images on sensor-data QoS), or a driver that stopped;
* no publisher at all: the driver is not running or not discovered (Fast DDS processes with different
  ``FASTDDS_BUILTIN_TRANSPORTS`` settings do not discover each other);
* publishers of another message type only (a CompressedImage topic given as a raw one, compressed depth): they
  never match the subscription, and the warning names the types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class QuietTopic:
    """An image topic without images for at least the watchdog's timeout.

    Attributes:
        topic: the image topic.
        publishers: publishers currently on the topic (0: none discovered).
        quiet_s: seconds since the quiet spell started (see the module docstring).
    """

    topic: str
    publishers: int
    quiet_s: float


class InputWatchdog:
    """Per-topic arrival bookkeeping; times are seconds on any monotonic clock, passed in by the caller."""

    def __init__(self, topics: Sequence[str], timeout_s: float, now_s: float) -> None:
        if not timeout_s > 0.0:
            raise ValueError(f"input timeout must be > 0 seconds, got {timeout_s!r}")
        self._timeout_s = timeout_s
        self._quiet_since = dict.fromkeys(topics, now_s)
        self._published = dict.fromkeys(topics, False)

    def image_arrived(self, topic: str, now_s: float) -> None:
        self._quiet_since[topic] = now_s

    def quiet_topics(self, publisher_counts: Mapping[str, int], now_s: float) -> list[QuietTopic]:
        """The topics quiet for at least ``timeout_s`` at ``now_s``, given each topic's publisher count now."""
        quiet = []
        for topic, since in self._quiet_since.items():
            publishers = publisher_counts[topic]
            if (publishers > 0) != self._published[topic]:
                # Publishers appeared or all left: judge the topic afresh from now on.
                self._published[topic] = publishers > 0
                self._quiet_since[topic] = since = now_s
            if now_s - since >= self._timeout_s:
                quiet.append(QuietTopic(topic, publishers, now_s - since))
        return quiet


# Fast DDS' transports: images over about 512 kB need LARGE_DATA (or a larger shared-memory segment) on both sides
# of a best-effort subscription, and processes with different transports do not discover each other.
TRANSPORTS_VARIABLE = "FASTDDS_BUILTIN_TRANSPORTS"


# Fast DDS' default shared-memory segment: a larger sample needs LARGE_DATA (or a larger segment) to arrive whole.
DEFAULT_TRANSPORT_LIMIT_BYTES = 512 * 1024


def quiet_topic_warning(
    quiet: QuietTopic,
    transports: str,
    last_image_bytes: Optional[int],
    expected_type: str = "",
    other_types: Sequence[str] = (),
) -> str:
    """The warning for a quiet topic, naming the cause that applies and its fix.

    ``transports``: this process' value of `TRANSPORTS_VARIABLE` ("(unset)" when unset); ``last_image_bytes``: the
    size of the newest image that did arrive on the topic (None: none ever did). Publishers that are matched use
    compatible transports (processes with different ones do not discover each other), so the 512 kB limit explains
    the silence only where this process runs the default transports and the images are (or may be) that large.
    ``expected_type``: the message type the node reads on the topic; ``other_types``: the types of the topic's
    publishers that are not of it (``quiet.publishers`` counts only those of ``expected_type``).
    """
    if not quiet.publishers and other_types:
        return (
            f"no image on '{quiet.topic}' for {quiet.quiet_s:.1f} s: the node reads {expected_type} there, and the "
            f"topic's publishers send {', '.join(other_types)}, which never reach it. Fix: for colour images sent as "
            "sensor_msgs/msg/CompressedImage, give the raw topic's name and set image_transport: compressed; "
            "compressed depth (compressedDepth) is not read: republish it raw (image_transport's republish node)"
        )
    large_data = "LARGE_DATA" in transports
    where = (
        "the camera driver's environment too" if large_data else "both the camera driver's environment and this node's"
    )
    fix_transports = f"set {TRANSPORTS_VARIABLE}=LARGE_DATA in {where} (this node's value: {transports})"
    if not quiet.publishers:
        return (
            f"no publisher on '{quiet.topic}' for {quiet.quiet_s:.1f} s: is the camera driver running, on this "
            f"topic? If it is, it is not discovered: Fast DDS processes with different {TRANSPORTS_VARIABLE} "
            f"do not see each other. Fix: {fix_transports}"
        )
    may_be_large = last_image_bytes is None or last_image_bytes > DEFAULT_TRANSPORT_LIMIT_BYTES
    if not large_data and may_be_large:
        return (
            f"no image on '{quiet.topic}' for {quiet.quiet_s:.1f} s although {quiet.publishers} publisher(s) "
            "are matched: with Fast DDS' default transports, images over about 512 kB are lost on this "
            f"best-effort (sensor-data QoS) subscription. Fix: {fix_transports}; or check the driver's QoS and that "
            f"it publishes (ros2 topic hz {quiet.topic})"
        )
    if last_image_bytes is not None:
        return (
            f"no image on '{quiet.topic}' for {quiet.quiet_s:.1f} s although {quiet.publishers} publisher(s) are "
            f"matched and images ({last_image_bytes / 1024:.0f} kB) arrived before: the camera stopped publishing "
            f"or stalled. Fix: check the driver and that it publishes (ros2 topic hz {quiet.topic})"
        )
    return (
        f"no image on '{quiet.topic}' for {quiet.quiet_s:.1f} s although {quiet.publishers} publisher(s) are "
        "matched: the driver publishes nothing this best-effort (sensor-data QoS) subscription receives. Fix: check "
        f"the driver's QoS (ros2 topic info -v {quiet.topic}) and that it publishes (ros2 topic hz {quiet.topic})"
    )


def dds_loss_warning(topic: str, lost_now: int, lost_total: int, transports: str) -> str:
    """The warning for images DDS reported lost on ``topic`` (its message-lost event)."""
    return (
        f"DDS lost {lost_now} image(s) on '{topic}' "
        f"({lost_total} so far): with Fast DDS' default transports, images over about 512 kB are lost "
        f"on this best-effort subscription. Fix: set {TRANSPORTS_VARIABLE}=LARGE_DATA in the camera driver's "
        f"environment and this node's (this node's value: {transports})"
    )
