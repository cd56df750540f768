# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Metric scale and robot frames: what fixes VGGT's unit-less scale (depth sensor, camera rig, odometry) and
where the world sits among the robot's frames (REP 105). No ROS here."""
