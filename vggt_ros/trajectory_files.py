# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""One TUM trajectory file per camera.

A TUM file holds one sensor's path: evo refuses stamps that repeat or go back, and a hardware-synchronised pair
stamps both cameras alike. Camera 0 keeps ``trajectory.tum``; camera k > 0 gets ``trajectory_<name>.tum``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from vggt_ros.mapping import write_tum_trajectory
from vggt_ros.world import Trajectory


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
