# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Test support: camera-like frames from the fixture photographs that the tiny random-weight model answers with
usable cameras (at --image-size 154; it finds no usable field of view in some other inputs)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from conftest import IMAGES


def panned_photographs(count: int, size: tuple[int, int] = (120, 160)) -> list[np.ndarray]:
    """``count`` frames ``(H, W, 3)`` of ``size`` (H, W): one photograph panned 8 pixels per frame."""
    photo = np.asarray(Image.open(IMAGES / "chelsea.png").convert("RGB").resize((size[1] + 8 * count, size[0])))
    return [np.ascontiguousarray(photo[:, 8 * i : 8 * i + size[1]]) for i in range(count)]
