# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""From one window's network outputs to what the node publishes, on the pipeline's device, in torch.

Three steps, each computed once per window:

1. `decode_window`: the pipeline's outputs -> `WindowProducts`: every frame's pose ``window_from_camera`` and
   intrinsics (the pose encoding is decoded and inverted once, on the host in float64: S small matrices), and
   the depth, confidence and uint8 colours of the frames the depth head ran on ("dense" frames), left on the
   device. A pixel is usable (`usable_pixels`) with finite positive depth and confidence; that test runs only on
   the pixels something reads (a window's statistics on the placed grid, the alignment's samples, the placed
   frames), never over every pixel of every frame.
2. `cameras_in_world` and `place_in_world`: a world-from-window similarity ``[[s*R, t], [0, 0, 0, 1]]`` moves
   the poses into the world (``world_from_camera``), and chosen dense frames with them: depth multiplied by s
   once, and their pixels unprojected once. The
   world's alignment sample, the map and the published cloud all read these same points.
3. `build_cloud`: decimation, confidence filtering and packing of placed frames into PointCloud2 rows, on the
   device; only the kept points are copied to the host.

Colours stay uint8 from the input to the message. Depth, poses and points are up to scale (VGGT normalises
each scene). Poses are rigid ``(..., 4, 4)`` ``parent_from_child`` matrices named after the two frames; the
optical frame follows OpenCV (x right, y down, z forward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

import numpy as np
import torch

from vggt_ros.geometry import decompose_similarity, invert_rigid, pose_encoding_to_extrinsics_intrinsics

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
class WindowProducts:
    """One window's decoded predictions, in the window's frame (VGGT's world: its first image's optical frame).

    Attributes:
        frame_ids: S ids, model order, stable across windows for the same image.
        stamps: ``(S,)`` float64 capture times, seconds.
        window_from_camera: ``(S, 4, 4)`` float64 rigid poses of every frame's optical frame (host).
        intrinsics: ``(S, 3, 3)`` float64 pinhole matrices of the ``H x W`` model images (host).
        dense: window indices of the D frames the depth head ran on, increasing.
        depth, confidence: ``(D, H, W)`` float32 on the device; confidence > 1, larger is surer.
        colors: ``(D, H, W, 3)`` uint8 RGB model-resolution images of the dense frames.
    """

    frame_ids: tuple[Hashable, ...]
    stamps: np.ndarray
    window_from_camera: np.ndarray
    intrinsics: np.ndarray
    dense: tuple[int, ...]
    depth: torch.Tensor
    confidence: torch.Tensor
    colors: torch.Tensor

    @property
    def image_hw(self) -> tuple[int, int]:
        return int(self.depth.shape[1]), int(self.depth.shape[2])

    def slot(self, frame: int) -> int:
        """Row of window frame ``frame`` in the dense tensors."""
        try:
            return self.dense.index(frame)
        except ValueError:
            raise ValueError(f"window frame {frame} has no depth (the depth head ran on frames {self.dense})") from None

    def sample(self, frame: int, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Depth, confidence (float64) and validity at flat pixel indices ``(P,)`` of one dense frame (host)."""
        row = self.slot(frame)
        index = torch.from_numpy(pixels).to(self.depth.device)
        depth, confidence = (t[row].reshape(-1).index_select(0, index) for t in (self.depth, self.confidence))
        valid = usable_pixels(depth, confidence)
        return depth.cpu().numpy().astype(np.float64), confidence.cpu().numpy().astype(np.float64), valid.cpu().numpy()

    def grid(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Depth, confidence and usability ``(D, h, w)`` of every ``step``-th row and column (views + one mask)."""
        depth, confidence = self.depth[:, ::step, ::step], self.confidence[:, ::step, ::step]
        return depth, confidence, usable_pixels(depth, confidence)

    def window_points(self, frame: int, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """``(P, 3)`` float64 window-frame points of flat pixel indices with the given depths."""
        width = self.image_hw[1]
        camera_points = _camera_points(pixels % width, pixels // width, depth, self.intrinsics[frame])
        pose = self.window_from_camera[frame]
        return camera_points @ pose[:3, :3].T + pose[:3, 3]


@dataclass(frozen=True)
class PlacedFrames:
    """Dense frames moved into the world (see `place_in_world`); rows follow ``frames``.

    Attributes:
        frames: window indices.
        world_from_camera: ``(K, 4, 4)`` float64 poses in the world (host).
        intrinsics: ``(K, 3, 3)`` float64.
        depth: ``(K, H, W)`` float32 world-unit depth, NaN where the prediction was unusable (device).
        confidence: ``(K, H, W)`` float32 (device).
        colors: ``(K, H, W, 3)`` uint8 (device).
        step: the placed pixel grid: every ``step``-th row and column (pixel (i, j) of the grid is pixel
            (i * step, j * step) of the image), the published cloud's decimation.
        points: ``(K, h, w, 3)`` float32 world points of the grid's pixels, NaN where depth is NaN (device).
    """

    frames: tuple[int, ...]
    world_from_camera: np.ndarray
    intrinsics: np.ndarray
    depth: torch.Tensor
    confidence: torch.Tensor
    colors: torch.Tensor
    step: int
    points: torch.Tensor

    def select(self, rows: Sequence[int]) -> "PlacedFrames":
        index = torch.as_tensor(list(rows), dtype=torch.int64, device=self.depth.device)
        host = list(rows)
        return PlacedFrames(
            tuple(self.frames[i] for i in host),
            self.world_from_camera[host],
            self.intrinsics[host],
            self.depth.index_select(0, index),
            self.confidence.index_select(0, index),
            self.colors.index_select(0, index),
            self.step,
            self.points.index_select(0, index),
        )

    def grid(self, image: torch.Tensor) -> torch.Tensor:
        """The placed grid's pixels of per-frame ``(K, H, W, ...)`` images (a view)."""
        return image[:, :: self.step, :: self.step]


@dataclass(frozen=True)
class PointCloud:
    """Points ready for a PointCloud2 and the map (host).

    Attributes:
        points: ``(N, 5)`` float32 rows [x, y, z, rgb, confidence]; rgb is 0x00RRGGBB stored in a float32's bits.
        colors: ``(N, 3)`` uint8 RGB of the same rows (for the map, which averages colours).
        frames: ``(N,)`` int64 row of `PlacedFrames` each point comes from.
        height, width: layout. Without confidence filtering the cloud is organised: row r of frame f's
            decimated grid is cloud row ``f * ceil(H / d) + r``; with filtering it is one row (height 1).
    """

    points: np.ndarray
    colors: np.ndarray
    frames: np.ndarray
    height: int
    width: int


def usable_pixels(depth: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Bool mask, same shape: finite positive depth and finite positive confidence (NaN fails every comparison)."""
    return (depth > 0) & (depth < math.inf) & (confidence > 0) & (confidence < math.inf)


def _camera_points(u, v, depth, intrinsics):
    """Camera-frame points of pixels (u column, v row; integer coordinates, no +0.5, as VGGT) at ``depth``."""
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    return np.stack(((u - cx) * depth / fx, (v - cy) * depth / fy, depth), axis=-1)


def decode_window(
    outputs: Mapping[str, torch.Tensor],
    frame_ids: Sequence[Hashable],
    stamps: Sequence[float],
    dense: Sequence[int],
    colors: torch.Tensor,
) -> WindowProducts:
    """Decode one window's outputs (`Pipeline.predict`: no batch axis) into `WindowProducts`.

    Args:
        outputs: ``pose_enc`` (S, 9), ``depth`` (D, H, W, 1), ``depth_conf`` (D, H, W), torch, any device.
        frame_ids, stamps: S ids and capture times (seconds), model order.
        dense: the D window indices the depth head ran on, increasing.
        colors: ``(D, H, W, 3)`` uint8 images of those frames (any device; moved to the depth's).
    Raises:
        KeyError: an output is missing. ValueError: shapes disagree, ``dense`` is not increasing within the
            window, or a predicted field of view is unusable (outside (0, pi)), naming the frame.
    """
    missing = [key for key in ("pose_enc", "depth", "depth_conf") if key not in outputs]
    if missing:
        raise KeyError(f"pipeline output lacks {missing}; it must follow the VGGT output contract")
    pose_enc, depth, confidence = outputs["pose_enc"], outputs["depth"], outputs["depth_conf"]
    if depth.ndim == 4 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    count, dense = len(frame_ids), tuple(int(i) for i in dense)
    if list(dense) != sorted(set(dense)) or not all(0 <= i < count for i in dense):
        raise ValueError(f"dense frame indices must be increasing and within [0, {count}) (the window), got {dense}")
    if (
        tuple(pose_enc.shape) != (count, 9)
        or depth.ndim != 3
        or depth.shape != confidence.shape
        or depth.shape[0] != len(dense)
        or tuple(colors.shape) != (*depth.shape, 3)
        or len(stamps) != count
    ):
        raise ValueError(
            f"window outputs disagree: {count} frame ids, {len(stamps)} stamps, pose_enc {tuple(pose_enc.shape)} "
            f"(expected (S, 9)), depth {tuple(depth.shape)} and depth_conf {tuple(confidence.shape)} (expected "
            f"(D, H, W) for the D = {len(dense)} dense frames {dense}), colours {tuple(colors.shape)}"
        )
    image_hw = tuple(depth.shape[1:])
    camera_from_window, intrinsics = pose_encoding_to_extrinsics_intrinsics(
        pose_enc.detach().to("cpu", torch.float64), image_hw
    )
    window_from_camera = _homogeneous(invert_rigid(camera_from_window).numpy())
    depth = depth.detach().float()
    confidence = confidence.detach().float()
    return WindowProducts(
        frame_ids=tuple(frame_ids),
        stamps=np.asarray(stamps, dtype=np.float64),
        window_from_camera=window_from_camera,
        intrinsics=intrinsics.numpy(),
        dense=dense,
        depth=depth,
        confidence=confidence,
        colors=colors.to(depth.device),
    )


def _homogeneous(rigid: np.ndarray) -> np.ndarray:
    """``(..., 3, 4)`` -> ``(..., 4, 4)``."""
    out = np.zeros((*rigid.shape[:-2], 4, 4))
    out[..., :3, :] = rigid
    out[..., 3, 3] = 1.0
    return out


def cameras_in_world(world_from_window: np.ndarray, window_from_camera: np.ndarray) -> np.ndarray:
    """``(S, 4, 4)`` rigid world-from-camera poses under a world-from-window similarity ``(4, 4)``.

    A similarity moves a camera rigidly (rotation R R_c, centre s R c + t); its scale goes to the depth.
    """
    scale, rotation, translation = decompose_similarity(np.asarray(world_from_window, dtype=np.float64))
    poses = np.zeros_like(window_from_camera)
    poses[:, :3, :3] = rotation @ window_from_camera[:, :3, :3]
    poses[:, :3, 3] = scale * window_from_camera[:, :3, 3] @ rotation.T + translation
    poses[:, 3, 3] = 1.0
    return poses


def place_in_world(
    products: WindowProducts,
    world_from_camera: np.ndarray,
    depth_scale: float,
    frames: Sequence[int],
    step: int = 1,
) -> PlacedFrames:
    """Move dense ``frames`` (window indices) into the world.

    Args:
        world_from_camera: ``(S, 4, 4)`` every window frame's world pose (`cameras_in_world`).
        depth_scale: the world-from-window similarity's scale s: depth is multiplied by it once, so unprojecting
            it with the (unchanged) intrinsics and the world pose gives the moved points.
        step: unproject every ``step``-th row and column only (the cloud's decimation): nothing reads the others.
    Unusable pixels become NaN.
    """
    frames = tuple(int(i) for i in frames)
    device = products.depth.device
    slots = [products.slot(i) for i in frames]
    if slots and slots == list(range(slots[0], slots[0] + len(slots))):
        rows = slice(slots[0], slots[0] + len(slots))  # consecutive rows (the usual new frames): views, no copy
    else:
        rows = torch.as_tensor(slots, dtype=torch.int64, device=device)
    depth, confidence, colors = products.depth[rows], products.confidence[rows], products.colors[rows]
    depth = torch.where(usable_pixels(depth, confidence), depth * depth_scale, torch.tensor(math.nan, device=device))
    poses, intrinsics = world_from_camera[list(frames)], products.intrinsics[list(frames)]
    return PlacedFrames(
        frames=frames,
        world_from_camera=poses,
        intrinsics=intrinsics,
        depth=depth,
        confidence=confidence,
        colors=colors,
        step=step,
        points=unproject(depth, poses, intrinsics, step),
    )


def unproject(
    depth: torch.Tensor, world_from_camera: np.ndarray, intrinsics: np.ndarray, step: int = 1
) -> torch.Tensor:
    """``(K, h, w, 3)`` float32 world points of depth maps ``(K, H, W)`` seen from poses ``(K, 4, 4)``, at every
    ``step``-th row and column (h = ceil(H / step)).

    Same convention as `vggt_ros.geometry.depth_to_camera_points` (integer pixel coordinates, no +0.5), in float32
    on the depth's device: world coordinates of a scene stay far inside float32's precision.
    """
    depth = depth[:, ::step, ::step]
    count, rows, cols = depth.shape
    device = depth.device
    pose = torch.as_tensor(world_from_camera, dtype=torch.float32, device=device)
    k = torch.as_tensor(intrinsics, dtype=torch.float32, device=device)
    u = torch.arange(0, cols * step, step, dtype=torch.float32, device=device)
    v = torch.arange(0, rows * step, step, dtype=torch.float32, device=device)
    # Ray directions in the world at unit depth, (K, h, w, 3): R (x, y, 1) with x, y the normalised coordinates.
    x = (u[None, :] - k[:, 0, 2, None]) / k[:, 0, 0, None]  # (K, w)
    y = (v[None, :] - k[:, 1, 2, None]) / k[:, 1, 1, None]  # (K, h)
    rotation = pose[:, None, None, :3, :3]
    directions = rotation[..., 0] * x[:, None, :, None] + rotation[..., 1] * y[:, :, None, None] + rotation[..., 2]
    return torch.addcmul(pose[:, None, None, :3, 3], directions, depth[..., None])


def pack_rgb(colors: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` uint8 RGB -> ``(...)`` float32 whose bits are 0x00RRGGBB (PointCloud2's ``rgb`` field)."""
    c = colors.to(torch.int32)
    return ((c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]).view(torch.float32)


def percentile(values: torch.Tensor, q: float) -> float:
    """The q-th percentile (0..100) of a 1-D tensor with numpy's default (linear) interpolation, by selection."""
    count = values.numel()
    position = q / 100.0 * (count - 1)
    low = int(math.floor(position))
    lower = values.kthvalue(low + 1).values
    if position == low:
        return float(lower)
    upper = values.kthvalue(low + 2).values
    return float(lower + (upper - lower) * (position - low))


def build_cloud(placed: PlacedFrames, config: CloudConfig) -> PointCloud:
    """Coloured, filtered world points of placed frames' grids (see `PointCloud`); only kept points reach the host.

    The grid is the placement's (`place_in_world` with the cloud's decimation).
    """
    if len(placed.frames) == 0:
        raise ValueError("build_cloud needs at least one frame")
    count, rows, cols = placed.points.shape[:3]
    xyz = placed.points.reshape(-1, 3)
    confidence = placed.grid(placed.confidence).reshape(-1)
    colors = placed.grid(placed.colors).reshape(-1, 3)
    if config.filters:
        # A filtered cloud is unorganised, so masked pixels are dropped too (they must not turn the percentile into
        # NaN and switch the filter off): their points are NaN, and only pixels with finite confidence are not.
        keep = torch.isfinite(xyz[:, 2])
        threshold = config.confidence_threshold
        if config.confidence_percentile > 0.0 and bool(keep.any()):
            threshold = max(threshold, percentile(confidence[keep], config.confidence_percentile))
        index = torch.nonzero(keep & (confidence >= threshold))[:, 0]
        xyz, confidence, colors = xyz[index], confidence[index], colors[index]
        frames = index // (rows * cols)
        height, width = 1, int(index.numel())
    else:
        frames = torch.arange(count, device=xyz.device).repeat_interleave(rows * cols)
        height, width = count * rows, cols
    packed = torch.cat((xyz, pack_rgb(colors)[:, None], confidence[:, None]), dim=1)
    return PointCloud(
        points=packed.cpu().numpy(),
        colors=colors.cpu().numpy(),
        frames=frames.cpu().numpy(),
        height=height,
        width=width,
    )
