# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""``~/save``: the live world written all or nothing.

The map and every camera's trajectory are copied under the world lock (so they describe one moment), the newest
keyframes' dataset exports (COLMAP, nerfstudio, images, depth, confidence) are written outside it (the worker
keeps integrating meanwhile), all into a staging folder that replaces the save's entries of ``directory`` only
once every file is written (`vggt_ros.files.staged_entries`). A failed save keeps the previous files exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vggt_ros.dataset.tum import FURTHER_TRAJECTORY_FILES
from vggt_ros.dataset.writer import DATASET_ENTRIES, DatasetWriter
from vggt_ros.files import staged_entries
from vggt_ros.live.reconstruction import LiveReconstruction


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
    """

    map_path: Optional[Path]
    map_points: int
    trajectories: dict[str, Optional[Path]]
    dataset_frames: int
    transforms_json: Optional[Path]
    dataset_poses_before_loops: bool = False
    segments_left_out: tuple[int, ...] = ()
    segment: int = 0

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
        if self.dataset_poses_before_loops:
            text += (
                "; loops moved the world, but some of those keyframes have no loop-corrected pose (the keyframe store "
                "dropped them: set trajectory_recent_keyframes >= save_dataset_frames), so the COLMAP model and "
                "transforms.json keep the poses from before the loops and name no point cloud"
            )
        return text


def save_world(live: LiveReconstruction, directory: Path, writer: Optional[str] = None) -> SavedWorld:
    """Write the live world into ``directory``, all or nothing; ``writer`` (the node's name) refuses a folder another
    writer saved into (`staged_entries`).

    Raises:
        OSError: a file could not be written (named by its final path); nothing in ``directory`` changed.
        EmptyMapError: there is nothing to save yet (no map point and no trajectory); nothing changed.
        FileExistsError: ``directory`` holds another writer's save, or entries of the save's names no save wrote.
    """
    directory = Path(directory)
    session = live.session
    entries = (*session.save_entries(), FURTHER_TRAJECTORY_FILES, *DATASET_ENTRIES)
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
    )
