# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The RViz config the launch file opens (config/reconstruct.rviz) shows what the node publishes with its default
parameters: every display's topic is one of the node's outputs, with a QoS that the node's publisher offers (RViz
gets no message otherwise), the world's outputs (map, points, path) are all shown, and the fixed frame is the
node's parent_frame."""

from pathlib import Path

import yaml
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from vggt_ros.live.parameters import NodeParameters
from vggt_ros.ros.node import NODE_NAME
from vggt_ros.ros.outputs import Output, publisher_specs, topic

RVIZ_CONFIG = Path(__file__).resolve().parents[2] / "config" / "reconstruct.rviz"
# RViz's names of the QoS policies in a display's Topic section.
DURABILITY = {"Volatile": DurabilityPolicy.VOLATILE, "Transient Local": DurabilityPolicy.TRANSIENT_LOCAL}
RELIABILITY = {"Reliable": ReliabilityPolicy.RELIABLE, "Best Effort": ReliabilityPolicy.BEST_EFFORT}


def _displays() -> dict[str, dict]:
    """Topic -> the Topic section of each display that subscribes to one."""
    config = yaml.safe_load(RVIZ_CONFIG.read_text())
    displays = config["Visualization Manager"]["Displays"]
    return {d["Topic"]["Value"]: d["Topic"] for d in displays if "Topic" in d}


def _published() -> dict[str, QoSProfile]:
    """Topic -> QoS of every output the node publishes with its default parameters (a depth is rclpy's default
    profile: reliable, volatile)."""
    params = NodeParameters()
    published = {}
    for output, _, profile in publisher_specs(params, robot_frames=False):
        published[topic(params, output, f"/{NODE_NAME}/")] = (
            profile if isinstance(profile, QoSProfile) else QoSProfile(depth=profile)
        )
    return published


def test_every_display_shows_an_output_of_the_node_with_a_qos_it_offers():
    published = _published()
    for name, section in _displays().items():
        assert name in published, f"the RViz config shows {name}, which the node does not publish"
        offered = published[name]
        # A reliable subscription needs a reliable publisher, a transient-local one a transient-local publisher.
        if RELIABILITY[section["Reliability Policy"]] is ReliabilityPolicy.RELIABLE:
            assert offered.reliability is ReliabilityPolicy.RELIABLE, name
        if DURABILITY[section["Durability Policy"]] is DurabilityPolicy.TRANSIENT_LOCAL:
            assert offered.durability is DurabilityPolicy.TRANSIENT_LOCAL, name


def test_the_world_outputs_are_shown_in_the_parent_frame():
    params = NodeParameters()
    shown = _displays()
    for kind in ("map", "points", "path"):
        assert topic(params, Output(kind), f"/{NODE_NAME}/") in shown, f"the RViz config does not show ~/{kind}"
    # The map is latched: a transient-local display gets it even when RViz starts after the last publication.
    assert shown[f"/{NODE_NAME}/map"]["Durability Policy"] == "Transient Local"
    config = yaml.safe_load(RVIZ_CONFIG.read_text())
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == params.parent_frame
