# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Poses of the images pycolmap reads back, across pycolmap versions."""

import numpy as np


def cam_from_world(image) -> np.ndarray:
    """``(3, 4)`` world -> camera pose of a pycolmap image (a method since pycolmap 3.12, a property before)."""
    pose = image.cam_from_world
    return np.asarray((pose() if callable(pose) else pose).matrix())
