# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's ROS-free live logic: input assembly (stamps, sync, depth pairing), health, the log policy, the
robot's placement and the save orchestration. The node (`vggt_ros.ros.node`) moves data between ROS and these."""
