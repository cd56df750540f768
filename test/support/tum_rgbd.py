# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Test and benchmark support for TUM RGB-D sequences: a synthetic sequence written in the published layout, and
the absolute trajectory error (ATE) as the TUM benchmark and evo score it.

* `write_tum_sequence`: the synthetic room (`support.synthetic`) rendered along a camera path and written as a TUM
  RGB-D folder is published: ``rgb.txt`` / ``depth.txt`` with the dataset's comment headers and six-decimal stamps,
  RGB PNGs, 16-bit depth PNGs at 5000 units per metre with 0 for holes, depth stamped apart from the colour
  images, and ``groundtruth.txt`` at 100 Hz with four-decimal stamps and values (the images at about 33 Hz).
* `trajectory_ate`: evo's TUM reader, its association (nearest stamps within ``max_diff``) and its Umeyama
  alignment (Sim(3), or SE(3) for a metric estimate), and the translation error of every associated pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from support.synthetic import SyntheticRoom, camera_path, default_intrinsics
from vggt_ros.geometry import invert_rigid, rotation_matrix_to_quaternion

GROUNDTRUTH_START_S = 1305031102.0  # fr1-like epoch seconds
GROUNDTRUTH_PERIOD_S = 0.01  # 100 Hz motion capture
IMAGE_EVERY = 3  # one colour image per 3 ground-truth poses (33 Hz)
RGB_OFFSET_S = 0.004321  # colour stamps fall between ground-truth stamps
DEPTH_OFFSET_S = 0.012345  # the depth camera is stamped apart from the colour camera (within 0.02 s)


@dataclass(frozen=True)
class WrittenSequence:
    """What `write_tum_sequence` wrote: the folder, each colour image's stamp text and ground-truth row index, the
    rendered depth ``(N, H, W)`` metres (0: a hole) and RGB ``(N, H, W, 3)``."""

    folder: Path
    rgb_stamps: tuple[str, ...]
    groundtruth_rows: tuple[int, ...]
    depth_m: np.ndarray
    rgb: np.ndarray


def write_tum_sequence(
    folder: Path,
    images: int = 12,
    image_hw: tuple[int, int] = (96, 128),
    path: str = "loop",
    photographs: Optional[np.ndarray] = None,
) -> WrittenSequence:
    """Render ``images`` colour and depth images along ``path`` (`support.synthetic.PATHS`, room units = metres)
    and write them with their ground truth in the TUM RGB-D layout under ``folder``.

    ``photographs``: ``(images, H, W, 3)`` colour images written instead of the renders (for the tiny
    random-weight model, which finds no usable camera in the renders); the depth is still rendered, at their size.
    """
    if photographs is not None:
        images, image_hw = len(photographs), photographs.shape[1:3]
    poses = images * IMAGE_EVERY
    extrinsics = camera_path(path, poses)  # camera-from-scene, OpenCV axes
    rows = tuple(range(0, poses, IMAGE_EVERY))
    depth, rgb = SyntheticRoom().render(extrinsics[list(rows)], default_intrinsics(image_hw), image_hw)
    rgb = rgb if photographs is None else photographs
    depth[:, :4, :4] = 0.0  # a hole in every depth image, as the sensor leaves them
    (folder / "rgb").mkdir(parents=True)
    (folder / "depth").mkdir()
    header = "# {kind}\n# file: 'rgbd_dataset_synthetic_room.bag'\n# timestamp filename\n"
    rgb_lines, depth_lines, rgb_stamps = [header.format(kind="color images")], [header.format(kind="depth maps")], []
    for index, row in enumerate(rows):
        time_s = GROUNDTRUTH_START_S + row * GROUNDTRUTH_PERIOD_S
        rgb_stamp, depth_stamp = f"{time_s + RGB_OFFSET_S:.6f}", f"{time_s + DEPTH_OFFSET_S:.6f}"
        Image.fromarray(rgb[index]).save(folder / "rgb" / f"{rgb_stamp}.png")
        Image.fromarray(np.round(depth[index] * 5000.0).astype(np.uint16)).save(folder / "depth" / f"{depth_stamp}.png")
        rgb_lines.append(f"{rgb_stamp} rgb/{rgb_stamp}.png\n")
        depth_lines.append(f"{depth_stamp} depth/{depth_stamp}.png\n")
        rgb_stamps.append(rgb_stamp)
    (folder / "rgb.txt").write_text("".join(rgb_lines))
    (folder / "depth.txt").write_text("".join(depth_lines))
    world_from_camera = invert_rigid(extrinsics)
    quaternions = rotation_matrix_to_quaternion(world_from_camera[:, :, :3])
    lines = ["# ground truth trajectory\n# file: 'rgbd_dataset_synthetic_room.bag'\n# timestamp tx ty tz qx qy qz qw\n"]
    for row in range(poses):
        values = (*world_from_camera[row, :, 3], *quaternions[row])
        stamp = GROUNDTRUTH_START_S + row * GROUNDTRUTH_PERIOD_S
        lines.append(f"{stamp:.4f} " + " ".join(f"{v:.4f}" for v in values) + "\n")
    (folder / "groundtruth.txt").write_text("".join(lines))
    return WrittenSequence(folder, tuple(rgb_stamps), rows, depth, rgb)


def trajectory_ate(groundtruth: Path, estimate: Path, max_diff: float = 0.02, correct_scale: bool = True) -> dict:
    """ATE of ``estimate`` against ``groundtruth`` (both TUM files), in the ground truth's unit (metres).

    evo's association (`evo.core.sync.associate_trajectories`, nearest stamps within ``max_diff`` s), its Umeyama
    alignment of the estimate onto the ground truth (Sim(3) with ``correct_scale``, else SE(3)) and its APE on the
    translation part. Returns rmse, mean, median, max, the associated pose count and the fitted scale.
    """
    from evo.core import metrics, sync
    from evo.tools import file_interface

    reference = file_interface.read_tum_trajectory_file(groundtruth)
    estimated = file_interface.read_tum_trajectory_file(estimate)
    # Only the estimate is checked: the published ground truth's four-decimal quaternions are unit to 1e-4 only.
    valid, details = estimated.check()
    if not valid:
        raise ValueError(f"evo refuses the estimate {estimate}: {details}")
    reference, estimated = sync.associate_trajectories(reference, estimated, max_diff=max_diff)
    _, _, scale = estimated.align(reference, correct_scale=correct_scale)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((reference, estimated))
    statistics = ape.get_all_statistics()
    return {
        "rmse_m": statistics["rmse"],
        "mean_m": statistics["mean"],
        "median_m": statistics["median"],
        "max_m": statistics["max"],
        "associated_poses": estimated.num_poses,
        "alignment": "Sim(3)" if correct_scale else "SE(3)",
        "scale": scale,
    }
