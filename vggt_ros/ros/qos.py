# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The QoS profiles the node and its TF listener share with tf2_ros and RViz.

tf2_ros' TransformBroadcaster and TransformListener use keep last 100, reliable, volatile on /tf; its
StaticTransformBroadcaster keeps the last message, reliable, transient local, so late listeners still get the
static frames; its listener keeps 100 of them. The latched profile also serves ~/map: RViz started later still
gets the current map.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

TF = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
TF_STATIC_LISTENER = QoSProfile(
    depth=100,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
