# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""nerfstudio's transforms.json (its documented "nerfstudio data" format) for an exported dataset.

* ``camera_model`` "OPENCV" with per-frame ``fl_x fl_y cx cy w h`` and zero distortion (``k1 k2 p1 p2``): VGGT
  predicts intrinsics per image, so none is shared. They describe the CAMERA image (``w`` x ``h``), in the
  pixel-corner convention nerfstudio shares with COLMAP (its rays go through pixel index + 0.5), from
  `vggt_ros.dataset.frames.ExportFrame.corner_intrinsics`.
* ``transform_matrix`` is camera-to-world with nerfstudio's (OpenGL / Blender) camera axes: x right, y up, z
  back, i.e. ``world_from_camera_opencv @ diag(1, -1, -1, 1)``. The world frame is left as it is (nerfstudio's
  dataparser orients and centres the poses itself).
* ``applied_transform`` is the identity ``(3, 4)``: the file's world IS the original data's world (our world, the
  one ``colmap/sparse/0`` and ``map.ply`` are in). nerfstudio's dataparser reads it as the map from the original
  data's coordinates to the file's and composes it into its ``dataparser_transform``; without the key, a dataset with
  a ``colmap/sparse/0`` folder gets nerfstudio's legacy COLMAP axes ([[0, 1, 0], [1, 0, 0], [0, 0, -1]]) there, and
  everything mapped between our world and nerfstudio's (exported splats, the COLMAP points) lands elsewhere.
* ``depth_file_path`` points at the frame's depth at the image resolution (`vggt_ros.dataset.frame_files`):
  millimetre PNGs for metric runs, which nerfstudio reads with its default ``--depth-unit-scale-factor 0.001``;
  float32 .npy in VGGT world units otherwise, which need ``--depth-unit-scale-factor 1`` (nerfstudio multiplies
  .npy depth by that factor too). The factor to use is written down as ``depth_unit_scale_factor`` along with
  the units, for people and tools (nerfstudio itself takes it from the command line, not the file).
* Extra per-frame keys nerfstudio ignores: ``confidence_file_path``, ``colmap_im_id`` (the COLMAP image of the
  same frame), ``camera_index`` and ``stamp_ns``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from vggt_ros.dataset.frame_files import FrameFiles
from vggt_ros.dataset.frames import ExportFrame

# Right-multiplying a world-from-camera pose by this turns OpenCV camera axes into OpenGL ones (y and z flip).
OPENGL_FROM_OPENCV_AXES = np.diag([1.0, -1.0, -1.0, 1.0])

# nerfstudio's applied_transform: original data coordinates -> the file's; ours are the same world.
APPLIED_TRANSFORM = np.eye(4)[:3]

METRIC_UNITS = "metres"
WORLD_UNITS = "VGGT world units (not metric)"


def frame_entry(frame: ExportFrame, files: FrameFiles, colmap_image_id: int) -> dict:
    """One element of ``frames``: a small dict (the writer keeps one per frame until the end)."""
    intrinsics = frame.corner_intrinsics()
    height, width = frame.image_hw
    return {
        "file_path": files.image,
        "transform_matrix": (frame.world_from_camera.astype(np.float64) @ OPENGL_FROM_OPENCV_AXES).tolist(),
        "fl_x": float(intrinsics[0, 0]),
        "fl_y": float(intrinsics[1, 1]),
        "cx": float(intrinsics[0, 2]),
        "cy": float(intrinsics[1, 2]),
        "w": width,
        "h": height,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "depth_file_path": files.depth,
        "confidence_file_path": files.confidence,
        "colmap_im_id": colmap_image_id,
        "camera_index": int(frame.camera),
        "stamp_ns": int(frame.stamp_ns),
    }


def transforms_document(frames: list[dict], metric: bool, ply_file_path: Optional[str] = None) -> dict:
    """The whole transforms.json object: per-frame entries (`frame_entry`), the unit fields and the
    ``applied_transform``."""
    if metric:
        depth = {
            "depth_unit": "millimetres",
            "depth_unit_scale_factor": 0.001,
            "depth_format": "16-bit PNG at the image resolution (nearest neighbour from the model's), "
            "0 = no depth, 65535 = 65.535 m or farther (clamped)",
        }
    else:
        depth = {
            "depth_unit": WORLD_UNITS,
            "depth_unit_scale_factor": 1.0,
            "depth_format": "float32 .npy at the image resolution (nearest neighbour from the model's), 0 = no depth",
        }
    document = {
        "camera_model": "OPENCV",
        "units": METRIC_UNITS if metric else WORLD_UNITS,
        **depth,
        "confidence_format": "float32 .npy at the image resolution, VGGT depth confidence (> 1, larger is surer), "
        "0 where the model image does not cover the pixel",
        "applied_transform": APPLIED_TRANSFORM.tolist(),
    }
    if ply_file_path is not None:
        document["ply_file_path"] = ply_file_path
    document["frames"] = frames
    return document
