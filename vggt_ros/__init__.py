# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""VGGT for ROS 2: the ROS-agnostic core (model, export, runtime, geometry, windowing, mapping) and a thin node."""
