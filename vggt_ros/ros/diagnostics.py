# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's ``/diagnostics``: `vggt_ros.live.health`'s component health as a diagnostic_msgs/DiagnosticArray.

Only the message layout lives here; what is measured and when a component is WARN or ERROR is decided in
`vggt_ros.live.health`. The layout follows diagnostic_updater's conventions, so diagnostic_aggregator and
rqt_robot_monitor show the node like any other: one DiagnosticStatus per component, named ``<node name>:
<component>``, the levels OK / WARN / ERROR, and every value as a string under a key that carries its unit.
"""

from __future__ import annotations

from collections.abc import Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from vggt_ros.live.health import ComponentHealth
from vggt_ros.ros import messages

TOPIC = "/diagnostics"
# Once per second, as diagnostic_updater publishes by default.
PERIOD_S = 1.0


def diagnostic_array(
    node_name: str, node_path: str, components: Sequence[ComponentHealth], stamp_ns: int
) -> DiagnosticArray:
    """One DiagnosticStatus per component, stamped ``stamp_ns`` (the node's clock, nanoseconds).

    ``node_path``: the node's fully qualified name (e.g. /robot1/vggt), the hardware ID of the components that have
    no device or topic of their own, so that two robots' nodes of one name can be told apart.
    """
    array = DiagnosticArray()
    array.header.stamp = messages.stamp_from_ns(stamp_ns)
    array.status = [
        DiagnosticStatus(
            level=bytes([int(component.level)]),  # an octet field: rclpy wants a one-byte bytes value
            name=f"{node_name}: {component.name}",
            message=component.message,
            hardware_id=component.hardware_id or node_path,
            values=[KeyValue(key=key, value=value) for key, value in component.values],
        )
        for component in components
    ]
    return array
