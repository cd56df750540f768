"""From one network output to what the node publishes, as numpy: per-frame depth, confidence, cameras, and a cloud.

Three steps, each its own function so a caller can stop or step in between:

1. `decode_frames`: the pipeline's output dict -> per-frame depth ``(H, W)``, confidence ``(H, W)``, intrinsics
   for exactly the model-resolution image, and camera poses, all in the window's own frame (VGGT's world:
   the optical frame of the window's first image).
2. `express_in_world`: moves those frames into the published world with a world-from-window similarity
   ``[[s*R, t], [0, 0, 0, 1]]``. Depth is scaled by s along with the poses, so a published depth image, its
   CameraInfo and its TF still describe the same points. This is the one place where a window meets the world;
   the node currently passes the identity (each window is its own world) until windows are chained.
3. `build_cloud`: unprojects the (world-expressed) depth of chosen frames with their published cameras through
   `vggt_ros.geometry.unproject_depth`, so every cloud point is the published pixel's depth moved by the
   published TF. Then decimation, confidence filtering, and packing to ``[x, y, z, rgb, confidence]`` float32.

Depth, poses and points are up to scale: VGGT normalises each scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from vggt_ros.geometry import (
    decompose_similarity,
    invert_rigid,
    pose_encoding_to_extrinsics_intrinsics,
    unproject_depth,
)

# Bytes of one packed cloud point: x, y, z, rgb (packed into a float32), confidence.
POINT_FIELDS = ("x", "y", "z", "rgb", "confidence")


@dataclass(frozen=True)
class CloudConfig:
    """How the published cloud is thinned.

    Attributes:
        confidence_percentile: drop points below this percentile of depth confidence, 0..100 (0 = off),
            computed over all frames of the cloud together, as VGGT's demo does.
        confidence_threshold: drop points whose depth confidence is below this (0 = off; VGGT's is > 1).
        point_decimation: keep every n-th row and column of each depth map (1 = every pixel).
    """

    confidence_percentile: float = 0.0
    confidence_threshold: float = 0.0
    point_decimation: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence_percentile < 100.0:
            raise ValueError(f"confidence_percentile must be in [0, 100), got {self.confidence_percentile!r}")
        if not (math.isfinite(self.confidence_threshold) and self.confidence_threshold >= 0.0):
            raise ValueError(f"confidence_threshold must be a number >= 0, got {self.confidence_threshold!r}")
        if (
            isinstance(self.point_decimation, bool)
            or not isinstance(self.point_decimation, int)
            or self.point_decimation < 1
        ):
            raise ValueError(f"point_decimation must be an int >= 1, got {self.point_decimation!r}")

    @property
    def filters(self) -> bool:
        return self.confidence_percentile > 0.0 or self.confidence_threshold > 0.0


@dataclass(frozen=True)
class FrameProducts:
    """One image's products.

    Attributes:
        depth: ``(H, W)`` float32 depth along the optical axis at the model's resolution.
        confidence: ``(H, W)`` float32 depth confidence (> 1; larger is surer).
        intrinsics: ``(3, 3)`` float64 pinhole matrix of that ``H x W`` image (principal point at W/2, H/2).
        world_from_camera: ``(3, 4)`` float64 rigid [R | t]: the camera's OpenCV optical frame in the world.
    """

    depth: np.ndarray
    confidence: np.ndarray
    intrinsics: np.ndarray
    world_from_camera: np.ndarray

    @property
    def image_hw(self) -> tuple[int, int]:
        return int(self.depth.shape[0]), int(self.depth.shape[1])


@dataclass(frozen=True)
class PointCloud:
    """Packed points ready for a PointCloud2.

    Attributes:
        points: ``(N, 5)`` float32 rows [x, y, z, rgb, confidence]; rgb is 0x00RRGGBB stored in a float32's bits.
        height, width: layout. Without confidence filtering the cloud is organised: row r of frame f's
            decimated grid is cloud row ``f * ceil(H / d) + r``; with filtering it is one row (height 1).
    """

    points: np.ndarray
    height: int
    width: int


# Output ndim with the batch axis; the pipeline returns one sequence, with or without it.
_BATCHED_NDIM = {"pose_enc": 3, "depth": 5, "depth_conf": 4}


def _output_array(outputs: Mapping[str, Any], name: str) -> np.ndarray:
    value = outputs[name]
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    array = np.asarray(value, dtype=np.float32)
    if array.ndim == _BATCHED_NDIM[name]:
        if array.shape[0] != 1:
            raise ValueError(f"pipeline output {name} has batch size {array.shape[0]}; the node runs one sequence")
        array = array[0]
    return array


def decode_frames(outputs: Mapping[str, Any]) -> list[FrameProducts]:
    """Per-frame products in the window's frame from a pipeline output.

    Args:
        outputs: the pipeline's dict (torch or numpy) with ``pose_enc`` ``(1, S, 9)``, ``depth``
            ``(1, S, H, W, 1)`` and ``depth_conf`` ``(1, S, H, W)``; the leading batch axis may be absent.
    Returns:
        S `FrameProducts`, model order.
    Raises:
        KeyError: a needed output is missing. ValueError: shapes disagree, or a predicted field of view is
            unusable (outside (0, pi)), naming the frame.
    """
    missing = [key for key in ("pose_enc", "depth", "depth_conf") if key not in outputs]
    if missing:
        raise KeyError(f"pipeline output lacks {missing}; it must follow the VGGT output contract")
    pose_enc = _output_array(outputs, "pose_enc")
    depth = _output_array(outputs, "depth")
    confidence = _output_array(outputs, "depth_conf")
    if depth.ndim == 4 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if pose_enc.ndim != 2 or depth.ndim != 3 or depth.shape != confidence.shape or pose_enc.shape[0] != depth.shape[0]:
        raise ValueError(
            f"pipeline output shapes disagree: pose_enc {pose_enc.shape} (expected (S, 9)), depth {depth.shape} "
            f"(expected (S, H, W)), depth_conf {confidence.shape}"
        )
    image_hw = depth.shape[1:]
    extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(pose_enc.astype(np.float64), image_hw)
    world_from_camera = invert_rigid(extrinsics)
    return [
        FrameProducts(
            depth=depth[i], confidence=confidence[i], intrinsics=intrinsics[i], world_from_camera=world_from_camera[i]
        )
        for i in range(depth.shape[0])
    ]


def express_in_world(frames: Sequence[FrameProducts], world_from_window: np.ndarray) -> list[FrameProducts]:
    """Frames from the window's frame into the world, by the similarity ``world_from_window`` ``(4, 4)``.

    A window point p maps to s R p + t. Camera poses become [R R_c | s R t_c + t]; depth is multiplied by s
    so that unprojecting it with the (unchanged) intrinsics and the new pose gives the mapped points.
    """
    scale, rotation, translation = decompose_similarity(np.asarray(world_from_window, dtype=np.float64))
    scale = float(scale)
    moved = []
    for frame in frames:
        pose = frame.world_from_camera
        new_pose = np.concatenate(
            (rotation @ pose[:, :3], (scale * rotation @ pose[:, 3] + translation)[:, None]), axis=1
        )
        depth = frame.depth if scale == 1.0 else (frame.depth * np.float32(scale))
        moved.append(
            FrameProducts(
                depth=depth, confidence=frame.confidence, intrinsics=frame.intrinsics, world_from_camera=new_pose
            )
        )
    return moved


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 RGB -> ``(...)`` float32 whose bits are 0x00RRGGBB (PointCloud2's ``rgb`` field)."""
    c = colors.astype(np.uint32)
    return ((c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]).view(np.float32)


def build_cloud(frames: Sequence[FrameProducts], colors: Sequence[np.ndarray], config: CloudConfig) -> PointCloud:
    """Coloured, thinned world points of ``frames``.

    Args:
        frames: the frames to include (already in the world frame), all ``H x W``.
        colors: ``(H, W, 3)`` uint8 RGB per frame: the model-resolution images the depth belongs to.
        config: decimation and confidence filtering.
    Returns:
        A `PointCloud` (organised when no confidence filter is on).
    """
    if len(frames) == 0 or len(frames) != len(colors):
        raise ValueError(
            f"build_cloud needs at least one frame and one colour image per frame; got {len(frames)} and {len(colors)}"
        )
    image_hw = frames[0].image_hw
    for frame, color in zip(frames, colors):
        if frame.image_hw != image_hw or tuple(color.shape) != (*image_hw, 3):
            raise ValueError(
                f"every frame's depth and colour image must be {image_hw} (H, W) / {(*image_hw, 3)}; got depth "
                f"{frame.image_hw} and colours {tuple(color.shape)}"
            )
    step = config.point_decimation
    depth = np.stack([f.depth for f in frames])[:, ::step, ::step]
    confidence = np.stack([f.confidence for f in frames])[:, ::step, ::step]
    rgb = pack_rgb(np.stack(colors)[:, ::step, ::step])
    extrinsics = invert_rigid(np.stack([f.world_from_camera for f in frames]))
    # Decimating pixels is the same as decimating the image with intrinsics scaled by 1/step (integer pixel
    # coordinates, no half-pixel offset: pixel u of the decimated grid is pixel u*step of the full image).
    intrinsics = np.stack([f.intrinsics for f in frames]).copy()
    intrinsics[:, :2, :] /= step
    points = unproject_depth(depth, extrinsics, intrinsics).astype(np.float32, copy=False)

    count, rows, cols = depth.shape
    packed = np.empty((count, rows, cols, len(POINT_FIELDS)), dtype=np.float32)
    packed[..., :3] = points
    packed[..., 3] = rgb
    packed[..., 4] = confidence
    packed = packed.reshape(-1, len(POINT_FIELDS))
    if not config.filters:
        return PointCloud(points=packed, height=count * rows, width=cols)

    # A filtered cloud is unorganised, so points without a finite position or confidence (pixels the world
    # masked) are dropped too; they must not turn the percentile into NaN and switch the filter off.
    packed = packed[np.isfinite(packed[:, [0, 1, 2, 4]]).all(axis=1)]
    threshold = config.confidence_threshold
    if config.confidence_percentile > 0.0 and len(packed):
        threshold = max(threshold, float(np.percentile(packed[:, 4], config.confidence_percentile)))
    kept = packed[packed[:, 4] >= threshold]
    return PointCloud(points=kept, height=1, width=int(kept.shape[0]))
