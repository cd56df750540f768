# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Rotations written out here as the tests' own expectations (independent of `vggt_ros.geometry`, whose
conversions the code under test uses): a message's quaternion, and a robot's pose in the plane."""

import math

import numpy as np


def quaternion_matrix(q) -> np.ndarray:
    """``(3, 3)`` rotation of a unit quaternion with fields ``x, y, z, w`` (geometry_msgs/Quaternion)."""
    x, y, z, w = q.x, q.y, q.z, q.w
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def yaw_pose(yaw_deg: float = 0.0, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    """``(4, 4)`` rigid transform: rotation by ``yaw_deg`` degrees about z, then ``translation`` (metres)."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    matrix = np.eye(4)
    matrix[:2, :2] = [[c, -s], [s, c]]
    matrix[:3, 3] = translation
    return matrix
