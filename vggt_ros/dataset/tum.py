# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Trajectories as TUM RGB-D files, one per camera.

A TUM file holds one sensor's path: evo refuses stamps that repeat or go back, and a hardware-synchronised pair
stamps both cameras alike. Camera 0 keeps ``trajectory.tum``; camera k > 0 gets ``trajectory_<name>.tum``. Stamps
are written exactly from the integer nanoseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from vggt_ros.files import replace_atomically
from vggt_ros.geometry import rotation_matrix_to_quaternion
from vggt_ros.world import Trajectory

# The first words of every trajectory file this module writes: `vggt_ros.output_folder` knows ours by them.
TUM_HEADER = "# vggt_ros keyframe trajectory"


# The files of the cameras after the first (`trajectory_file_name`), as a glob: what a save of fewer cameras removes.
FURTHER_TRAJECTORY_FILES = "trajectory_*.tum"


def trajectory_file_name(camera: int, name: str) -> str:
    """The file of camera ``camera`` (index) named ``name``."""
    return "trajectory.tum" if camera == 0 else f"trajectory_{name}.tum"


def write_camera_trajectories(
    directory: Path, trajectory: Trajectory, camera_names: Sequence[str], metric: bool
) -> dict[str, Optional[Path]]:
    """Write each camera's kept keyframes into its own file (`trajectory_file_name`) in ``directory``.

    ``trajectory``'s frame ids are the session's ``(stamp_ns, camera)``; its keyframes are in insertion order,
    which is time order for each camera. A camera without a kept keyframe gets no file (a TUM file without a pose
    is no trajectory to evo), and a file left by an earlier save is removed so the folder describes this save.
    ``metric``: the world is in metres (the files' headers say so).
    Returns camera name -> written path, or None for a camera without poses.
    """
    written: dict[str, Optional[Path]] = {}
    for camera, name in enumerate(camera_names):
        path = Path(directory) / trajectory_file_name(camera, name)
        rows = [i for i, (_, frame_camera) in enumerate(trajectory.frame_ids) if frame_camera == camera]
        if not rows:
            path.unlink(missing_ok=True)
            written[name] = None
            continue
        write_tum_trajectory(
            path,
            [int(trajectory.frame_ids[i].stamp_ns) for i in rows],
            trajectory.world_from_camera[rows],
            trajectory.segment[rows],
            metric,
        )
        written[name] = path
    return written


def write_tum_trajectory(
    path, stamps_ns: Sequence[int], world_from_camera, segments: Sequence[int] | None = None, metric: bool = False
) -> None:
    """Write poses in TUM RGB-D format: ``timestamp tx ty tz qx qy qz qw`` per line.

    Args:
        stamps_ns: ``(N,)`` integer nanoseconds, strictly increasing (one camera's poses: evo refuses a file whose
            stamps repeat or go back). Written exactly as seconds with 9 decimals (`tum_stamp`).
        world_from_camera: ``(N, 4, 4)`` or ``(N, 3, 4)`` rigid poses of the camera optical frames in the world.
        segments: optional ``(N,)`` segment ids; a comment line marks where each segment starts.
        metric: the world is in metres (a metric scale source set it), else in the first window's VGGT scale.
    The file is replaced atomically (`replace_atomically`). The header comments state the frame (the first image's
    OpenCV optical frame) and the unit. Tools such as evo skip '#' lines.
    """
    stamps = np.asarray(stamps_ns)
    poses = np.asarray(world_from_camera, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)) or stamps.shape != (poses.shape[0],):
        raise ValueError(
            f"need stamps_ns (N,) and world_from_camera (N, 4, 4) or (N, 3, 4); got {stamps.shape}, {poses.shape}"
        )
    if len(stamps) and not np.issubdtype(stamps.dtype, np.integer):
        raise ValueError(f"stamps_ns must be integer nanoseconds, got {stamps.dtype}")
    if (np.diff(stamps) <= 0).any():
        raise ValueError(f"{path}: stamps must strictly increase (one camera's poses), got {stamps.tolist()}")
    seg = None if segments is None else np.asarray(segments)
    if seg is not None and seg.shape != stamps.shape:
        raise ValueError(f"segments must be (N,) like stamps_ns, got {seg.shape}")
    quats = rotation_matrix_to_quaternion(poses[:, :3, :3]) if len(poses) else np.zeros((0, 4))
    lines = [
        TUM_HEADER + ", TUM format: timestamp tx ty tz qx qy qz qw (camera-to-world)",
        "# world frame: OpenCV optical frame of the first image (x right, y down, z forward); camera frames: optical",
        "# units: metres"
        if metric
        else "# units: the first window's VGGT-normalised scale (mean point distance 1), not metres",
    ]
    for i in range(len(poses)):
        if seg is not None and (i == 0 or seg[i] != seg[i - 1]):
            lines.append(f"# segment {int(seg[i])}")
        t = poses[i, :3, 3]
        q = quats[i]
        lines.append(
            f"{tum_stamp(int(stamps[i]))} {t[0]:.9g} {t[1]:.9g} {t[2]:.9g} {q[0]:.9g} {q[1]:.9g} {q[2]:.9g} {q[3]:.9g}"
        )

    replace_atomically(path, lambda temporary: temporary.write_text("\n".join(lines) + "\n"))


def tum_stamp(stamp_ns: int) -> str:
    """Integer nanoseconds as exact decimal seconds: 1700000000050000000 -> ``1700000000.050000000`` (a float
    would give ``1700000000.049999952``)."""
    sign = "-" if stamp_ns < 0 else ""
    seconds, nanoseconds = divmod(abs(stamp_ns), 1_000_000_000)
    return f"{sign}{seconds}.{nanoseconds:09d}"
