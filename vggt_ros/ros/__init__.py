# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The ROS 2 layer: the `vggt` node, its parameters and message builders (the only rclpy code in the package)."""
