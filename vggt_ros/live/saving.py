# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""``~/save``: the live world written all or nothing.

The map and every camera's trajectory are copied under the world lock (so they describe one moment), the newest
keyframes' dataset exports (COLMAP, nerfstudio, images, depth, confidence) are written outside it (the worker
keeps integrating meanwhile), all into a staging folder that replaces the save's entries of ``directory`` only
once every file is written (`vggt_ros.files.staged_entries`). A failed save keeps the previous files exactly.

The files are in the world's frame; `PLACEMENT_FILE` says where that frame sits among the robot's frames (odom, or
map where the node closes loops) or under ``parent_frame``, so that the map can be used in them later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from vggt_ros.dataset.tum import FURTHER_TRAJECTORY_FILES
from vggt_ros.dataset.writer import DATASET_ENTRIES, DatasetWriter
from vggt_ros.files import staged_entries
from vggt_ros.geometry import rotation_matrix_to_quaternion
from vggt_ros.live.reconstruction import LiveReconstruction
from vggt_ros.live.stamps import NANOSECONDS

# The saved world's frame in its parent, as a geometry_msgs/TransformStamped in the YAML `ros2 topic echo` prints.
PLACEMENT_FILE = "world_placement.yaml"


@dataclass(frozen=True)
class WorldPlacement:
    """Where the world's frame sits: ``parent_from_world`` ``(4, 4)`` rigid takes ``world_frame`` coordinates (the
    saved files') to ``parent_frame``'s; ``origin_stamp_ns``: the stamp of the first image of the world it was made
    for (None: the same for every world, the world frame's fixed rotation under ``parent_frame``)."""

    parent_frame: str
    world_frame: str
    parent_from_world: np.ndarray
    origin_stamp_ns: Optional[int] = None


@dataclass(frozen=True)
class SavedWorld:
    """What a save wrote, at the paths it has in the target folder.

    Attributes:
        map_path: the map (`map.ply`; None: the map has no point, every merged point filtered out); map_points:
            its points.
        trajectories: camera name -> its TUM file, or None for a camera without a kept keyframe.
        dataset_frames: keyframes written as a COLMAP model and nerfstudio's transforms.json (0: none kept).
        transforms_json: nerfstudio's file (None without dataset frames).
        dataset_poses_before_loops: loops moved the world but some dataset frame has no loop-corrected pose
            (`ReconstructionSession.loop_corrected`), so the dataset keeps the poses its frames had when integrated
            and transforms.json names no point cloud (map.ply, loop-corrected, would not match its cameras).
        segments_left_out: the tracking segments the map leaves out (their place in this world is unknown: tracking
            was lost and no loop joined them to the current one); the trajectories keep them.
        segment: the current tracking segment.
        placement: `PLACEMENT_FILE`'s path and the placement it holds; None: the world is not placed yet.
    """

    map_path: Optional[Path]
    map_points: int
    trajectories: dict[str, Optional[Path]]
    dataset_frames: int
    transforms_json: Optional[Path]
    dataset_poses_before_loops: bool = False
    segments_left_out: tuple[int, ...] = ()
    segment: int = 0
    placement: Optional[tuple[Path, WorldPlacement]] = None

    def message(self) -> str:
        trajectories = ", ".join(str(path) for path in self.trajectories.values() if path is not None)
        if self.map_path is None:
            text = (
                f"saved the trajectories to {trajectories} and no map: every merged point was filtered out (low "
                "confidence: see confidence_threshold and confidence_percentile), so no map.ply"
            )
        else:
            text = f"saved {self.map_points} map points to {self.map_path}, the trajectories to {trajectories}"
        if self.map_path is not None and self.segments_left_out:
            text += (
                f"; map.ply holds tracking segment {self.segment} (with those loops joined to it) only: segments "
                f"{list(self.segments_left_out)} were left out when tracking was lost, their place in this world "
                "unknown; the trajectories keep every segment, each marked '# segment <k>'"
            )
        if self.dataset_frames:
            text += (
                f", and {self.dataset_frames} keyframes as a COLMAP model and nerfstudio's {self.transforms_json.name}"
            )
        if self.placement is not None:
            path, placement = self.placement
            text += f"; '{placement.world_frame}' in '{placement.parent_frame}' to {path}"
        else:
            text += (
                f"; no {PLACEMENT_FILE}: the world is not placed among the robot's frames yet (see /diagnostics' "
                "robot frames)"
            )
        if self.dataset_poses_before_loops:
            text += (
                "; loops moved the world, but some of those keyframes have no loop-corrected pose (the keyframe store "
                "dropped them: set trajectory_recent_keyframes >= save_dataset_frames), so the COLMAP model and "
                "transforms.json keep the poses from before the loops and name no point cloud"
            )
        return text


def save_world(
    live: LiveReconstruction,
    directory: Path,
    writer: Optional[str] = None,
    placement: Optional[WorldPlacement] = None,
) -> SavedWorld:
    """Write the live world into ``directory``, all or nothing; ``writer`` (the node's name) refuses a folder another
    writer saved into (`staged_entries`). ``placement``, where the world's frame sits (None: not placed yet), is
    written as `PLACEMENT_FILE` when it was made for the world saved.

    Raises:
        OSError: a file could not be written (named by its final path); nothing in ``directory`` changed.
        EmptyMapError: there is nothing to save yet (no map point and no trajectory); nothing changed.
        FileExistsError: ``directory`` holds another writer's save, or entries of the save's names no save wrote.
    """
    directory = Path(directory)
    session = live.session
    entries = (*session.save_entries(), FURTHER_TRAJECTORY_FILES, *DATASET_ENTRIES, PLACEMENT_FILE)
    with staged_entries(directory, entries, writer=writer) as staging:
        with live.world_lock:
            merged = live.merged_windows
            map_path, trajectories = session.save(staging)
            points = len(session.map)
            recent = list(live.recent_frames)
            moved = session.loop_corrected(recent)  # the poses the map and trajectories have, or None
            metric = session.world.metric
            world = session.world
            left_out = tuple(k for k in range(world.segment) if not world.joined_to_current(k))
            origin = world.origin
        # The worker places a new world after integrating its first window: a placement of another world is none.
        if placement is not None and (origin is None or placement.origin_stamp_ns not in (None, origin.stamp_ns)):
            placement = None
        if placement is not None:
            write_placement(staging / PLACEMENT_FILE, placement, origin.stamp_ns)
        written = None
        if recent:
            with DatasetWriter(staging, metric=metric) as writer:
                for frame, image in recent if moved is None else moved:
                    writer.add(frame, image)
                written = writer.finish(ply_path=None if moved is None or map_path is None else map_path.name)
    live.saved_windows = max(live.saved_windows, merged)  # a new world may have discarded more meanwhile

    def final(path: Optional[Path]) -> Optional[Path]:
        return None if path is None else directory / path.name

    return SavedWorld(
        map_path=final(map_path),
        map_points=points,
        trajectories={name: final(path) for name, path in trajectories.items()},
        dataset_frames=written.num_frames if written is not None else 0,
        transforms_json=final(written.transforms_json) if written is not None else None,
        dataset_poses_before_loops=bool(recent) and moved is None,
        segments_left_out=left_out,
        segment=world.segment,
        placement=None if placement is None else (directory / PLACEMENT_FILE, placement),
    )


def write_placement(path: Path, placement: WorldPlacement, stamp_ns: int) -> None:
    """Write ``placement`` as a geometry_msgs/TransformStamped in YAML (`ros2 topic echo`'s layout), stamped at the
    world's first image ``stamp_ns``."""
    parent_from_world = np.asarray(placement.parent_from_world, dtype=np.float64)
    x, y, z = (_yaml_float(v) for v in parent_from_world[:3, 3])
    qx, qy, qz, qw = (_yaml_float(v) for v in rotation_matrix_to_quaternion(parent_from_world[:3, :3]))
    sec, nanosec = divmod(int(stamp_ns), NANOSECONDS)
    parent, child = (json.dumps(name) for name in (placement.parent_frame, placement.world_frame))
    path.write_text(
        f"# Where the saved files' frame '{placement.world_frame}' sits in '{placement.parent_frame}': a point p of\n"
        f"# map.ply, the trajectories, the COLMAP model or transforms.json is R p + t in '{placement.parent_frame}'\n"
        "# (R: the rotation quaternion, t: the translation). After loops the files hold the loop-corrected world,\n"
        f"# which this places; the live /tf_static moves '{placement.world_frame}' (the chained world) by the newest\n"
        "# loop's correction as well. A dataset that the save's answer says kept its poses from before the loops is\n"
        "# in the chained world. Stamped at the world's first image; tf2_ros' static_transform_publisher republishes\n"
        "# it.\n"
        "header:\n"
        "  stamp:\n"
        f"    sec: {sec}\n"
        f"    nanosec: {nanosec}\n"
        f"  frame_id: {parent}\n"
        f"child_frame_id: {child}\n"
        "transform:\n"
        "  translation:\n"
        f"    x: {x}\n"
        f"    y: {y}\n"
        f"    z: {z}\n"
        "  rotation:\n"
        f"    x: {qx}\n"
        f"    y: {qy}\n"
        f"    z: {qz}\n"
        f"    w: {qw}\n"
    )


def _yaml_float(value: float) -> str:
    """``value`` as a YAML 1.1 float that reads back exactly: the shortest repr, with the point YAML 1.1 needs before
    an exponent (PyYAML reads ``1e-05`` as a string)."""
    text = repr(float(value))
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text
