# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Another publisher of the transforms this node sends on /tf. No ROS here.

A frame has one parent and one source: a localisation node's map -> odom beside the node's loop closure, the
robot's odometry beside ``publish_odom_tf``, or a second node without its ``frame_prefix`` make lookups jump between
two answers, and nothing on /tf says so. The node records each transform it sends; one heard on the same link at a
stamp the node never sent comes from another publisher.
"""

from __future__ import annotations

import threading
from collections import deque

# Stamps remembered per link: some seconds of the node's own transforms (map -> odom at 20 Hz, a camera's at its
# window rate), far more than DDS takes to deliver them back.
REMEMBERED_STAMPS = 256


class OwnTransformWatch:
    """The links (parent, child) this node sends on /tf and their recent stamps. Thread-safe: the worker and the
    executor record what they send, the executor checks what it hears."""

    def __init__(self, remembered: int = REMEMBERED_STAMPS) -> None:
        self._remembered = remembered
        self._sent: dict[tuple[str, str], tuple[deque, set]] = {}
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def sent(self, parent: str, child: str, stamp_ns: int) -> None:
        """The node sends ``parent`` -> ``child`` stamped ``stamp_ns``: call before publishing."""
        with self._lock:
            order, stamps = self._sent.setdefault((parent, child), (deque(), set()))
            if stamp_ns in stamps:
                return
            order.append(stamp_ns)
            stamps.add(stamp_ns)
            if len(order) > self._remembered:
                stamps.discard(order.popleft())

    def first_foreign(self, parent: str, child: str, stamp_ns: int) -> bool:
        """Whether ``parent`` -> ``child`` heard at ``stamp_ns`` is the first sign of another publisher of a link
        this node sends (a stamp it never sent); once per link."""
        link = (parent, child)
        with self._lock:
            sent = self._sent.get(link)
            if sent is None or stamp_ns in sent[1] or link in self._reported:
                return False
            self._reported.add(link)
            return True
