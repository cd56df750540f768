# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Coloured point clouds as binary little-endian PLY files (what Open3D, MeshLab, CloudCompare and nerfstudio read).

Written with numpy rather than Open3D: Open3D's writer (RPly) reports a full disk only by printing "RPly: Failed
writing" lines on stdout and leaving a short file, while Python's file writes raise the error, so with
`vggt_ros.files.replace_atomically` a failed write never replaces a good file.

Layout: the header below, then one 15-byte record per point: x, y, z as float32, red, green, blue as uint8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vggt_ros.files import replace_atomically

VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def ply_header(count: int, comments: tuple[str, ...] = ()) -> bytes:
    """The header of a file of ``count`` `VERTEX` records."""
    lines = ["ply", "format binary_little_endian 1.0", *(f"comment {c}" for c in comments), f"element vertex {count}"]
    lines += [f"property {'float' if VERTEX[name] == np.float32 else 'uchar'} {name}" for name in VERTEX.names]
    return ("\n".join([*lines, "end_header"]) + "\n").encode("ascii")


def write_ply(path, points: np.ndarray, colors: np.ndarray, comments: tuple[str, ...] = ()) -> None:
    """Write ``(N, 3)`` points (stored as float32) and ``(N, 3)`` uint8 RGB colours to ``path``, atomically.

    Raises:
        ValueError: shapes or the colour type do not match. OSError naming ``path``: it could not be written (the
        previous file is kept).
    """
    points = np.asarray(points)
    colors = np.asarray(colors)
    if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape or colors.dtype != np.uint8:
        raise ValueError(
            f"need (N, 3) points and (N, 3) uint8 colours, got {points.shape} and {colors.dtype} {colors.shape}"
        )
    records = np.empty(len(points), VERTEX)
    for axis, name in enumerate(("x", "y", "z")):
        records[name] = points[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        records[name] = colors[:, channel]

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as file:
            file.write(ply_header(len(records), comments))
            file.write(records.tobytes())

    replace_atomically(path, write)
