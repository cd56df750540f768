"""One window in, one consistent world out: the core that the ROS node and the offline command both run.

    preprocessed images (S, 3, H, W) --Pipeline--> VGGT outputs --decode_frames--> per-frame products in the
    window's frame --World.integrate--> world-from-window Sim(3) (or a rejection) --express_in_world--> products
    in the world --build_cloud / GrowingMap--> the new frames' cloud and the map

No ROS here: the caller turns a `WindowOutput` into messages (node) or files (offline command).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Mapping, Optional, Sequence

import numpy as np
import torch

from .geometry import invert_rigid
from .mapping import GrowingMap, MapConfig, write_tum_trajectory
from .products import CloudConfig, FrameProducts, PointCloud, build_cloud, decode_frames, express_in_world
from .world import Trajectory, WindowResult, WindowStatus, World, WorldConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconstructionConfig:
    cloud: CloudConfig = field(default_factory=CloudConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    map: MapConfig = field(default_factory=MapConfig)


@dataclass(frozen=True)
class WindowOutput:
    """What one window produced.

    Attributes:
        status, reason: the world's verdict (`WindowStatus`); the reason is a sentence for the log.
        result: the world's full `WindowResult`, or None when the network output could not even be decoded
            (e.g. a predicted field of view outside (0, pi)); then status is REJECTED.
        frames: every image's products expressed in the world, model order (empty when rejected).
        colors: ``(H, W, 3)`` uint8 model-resolution image per frame (the colours of the cloud and the map).
        cloud: the new frames' points in the world (None when rejected).
        map_reset: a new segment started, so the map was emptied before this window was added.
    """

    status: WindowStatus
    reason: str
    result: Optional[WindowResult]
    frames: list[FrameProducts]
    colors: list[np.ndarray]
    cloud: Optional[PointCloud]
    map_reset: bool = False

    @property
    def merged(self) -> bool:
        return self.status is not WindowStatus.REJECTED


class Reconstructor:
    """Runs windows through the network and chains them into one world and one map. Call from one thread."""

    def __init__(self, pipeline, config: ReconstructionConfig = ReconstructionConfig()) -> None:
        self.pipeline = pipeline
        self.config = config
        self.world = World(config.world)
        self.map = GrowingMap(config.map)
        self.undecodable_windows = 0

    def reset(self) -> None:
        """Forget the world and the map: the next window defines a new world."""
        self.world.reset()
        self.map.reset()

    def trajectory(self) -> Trajectory:
        return self.world.trajectory()

    def process(
        self,
        images: torch.Tensor,
        frame_ids: Sequence[Hashable],
        timestamps: Sequence[float],
        num_new: int,
    ) -> WindowOutput:
        """Run one window through the network and into the world.

        Args:
            images: ``(S, 3, H, W)`` preprocessed model input in [0, 1].
            frame_ids: S ids that stay the same for the same image across windows, e.g. (stamp_ns, camera).
            timestamps: S capture times, seconds.
            num_new: how many of the last images were in no earlier window (their points form the cloud).
        """
        colors = list((images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        return self.integrate(self.pipeline(images), frame_ids, timestamps, colors, num_new)

    def integrate(
        self,
        outputs: Mapping[str, Any],
        frame_ids: Sequence[Hashable],
        timestamps: Sequence[float],
        colors: Sequence[np.ndarray],
        num_new: int,
    ) -> WindowOutput:
        """Chain one window's network outputs (the VGGT output dict) into the world and the map.

        ``colors``: ``(H, W, 3)`` uint8 model-resolution image per frame. See `process` for the rest.
        """
        colors = list(colors)
        try:
            frames = decode_frames(outputs)
        except ValueError as err:  # unusable cameras (e.g. a field of view of 0): nothing to align or publish
            self.undecodable_windows += 1
            return WindowOutput(WindowStatus.REJECTED, f"unusable network output: {err}", None, [], colors, None)
        result = self.world.integrate(
            frame_ids,
            invert_rigid(np.stack([f.world_from_camera for f in frames])),
            np.stack([f.intrinsics for f in frames]),
            np.stack([f.depth for f in frames]),
            np.stack([f.confidence for f in frames]),
            timestamps,
        )
        if not result.merged:
            return WindowOutput(result.status, result.reason, result, [], colors, None)
        in_world = express_in_world(frames, result.world_from_window)
        in_world = [_mask_invalid(frame, valid) for frame, valid in zip(in_world, result.valid)]
        map_reset = result.status is WindowStatus.NEW_SEGMENT
        if map_reset:
            self.map.reset()
        mapped = np.flatnonzero(result.map_frames)
        if mapped.size:
            self.map.add_frames([in_world[i] for i in mapped], [colors[i] for i in mapped], self.config.cloud)
        new = slice(len(in_world) - num_new, None)
        cloud = build_cloud(in_world[new], colors[new], self.config.cloud) if num_new else None
        return WindowOutput(result.status, result.reason, result, in_world, colors, cloud, map_reset)

    def save(self, directory: str | Path) -> tuple[Path, Path]:
        """Write the map (`map.ply`) and the keyframe trajectory (`trajectory.tum`); return both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        map_path, trajectory_path = directory / "map.ply", directory / "trajectory.tum"
        self.map.save_ply(map_path)
        trajectory = self.world.trajectory()
        write_tum_trajectory(trajectory_path, trajectory.timestamps, trajectory.camera_to_world, trajectory.segment)
        return map_path, trajectory_path


def _mask_invalid(frame: FrameProducts, valid: np.ndarray) -> FrameProducts:
    """Pixels the world found unusable (non-finite or non-positive depth) become NaN: never drawn, never mapped."""
    if valid.all():
        return frame
    depth = np.where(valid, frame.depth, np.float32(np.nan)).astype(np.float32)
    return FrameProducts(depth, frame.confidence, frame.intrinsics, frame.world_from_camera)
