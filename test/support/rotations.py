# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The rotation of a message's quaternion, written out here as the tests' own expectation (independent of
`vggt_ros.geometry`, whose conversions the messages were built with)."""

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
