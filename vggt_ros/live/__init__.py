# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The live (streaming) side of the node that needs no ROS: its parameters (and, as they move here, its input
assembly and health)."""
