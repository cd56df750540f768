# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""From one window's network outputs to `WindowProducts`, on the pipeline's device, in torch.

`decode_window`: the pipeline's outputs -> every frame's pose ``window_from_camera`` and intrinsics (the pose encoding
is decoded and inverted once, on the host in float64: S small matrices), and the depth, confidence and uint8 colours of
the frames the depth head ran on ("dense" frames), left on the device. A pixel is usable
(`vggt_ros.numeric.usable_pixels`) with positive depth below `MAX_USABLE_DEPTH` and finite positive confidence; that
test runs only on the pixels something reads (a window's statistics on the placed grid, the alignment's samples, the
placed frames), never over every pixel of every frame. Pixels outside a frame's camera image (the white padding that
gives frames of different shapes one model size, `vggt_ros.preprocess.PixelMap.image_box`) are no observation: their
depth and confidence become NaN here, once, so the alignment, the cloud, the map, the published depth and the exports
all leave them out. The world places the products (`vggt_ros.world.placement`) and builds the cloud
(`vggt_ros.world.cloud`).

Depth, poses and points are up to scale (VGGT normalises each scene). Poses are rigid ``(..., 4, 4)``
``parent_from_child`` matrices named after the two frames; the optical frame follows OpenCV (x right, y down,
z forward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Mapping, Optional, Sequence

import numpy as np
import torch

from vggt_ros.geometry import apply_transform, homogeneous, invert_rigid, pose_encoding_to_extrinsics_intrinsics
from vggt_ros.numeric import usable_pixels


@dataclass(frozen=True)
class WindowProducts:
    """One window's decoded predictions, in the window's frame (VGGT's world: its first image's optical frame).

    Attributes:
        frame_ids: S ids, model order, stable across windows for the same image.
        stamps: ``(S,)`` float64 capture times, seconds.
        window_from_camera: ``(S, 4, 4)`` float64 rigid poses of every frame's optical frame (host).
        intrinsics: ``(S, 3, 3)`` float64 pinhole matrices of the ``H x W`` model images (host).
        dense: window indices of the D frames the depth head ran on, increasing.
        depth, confidence: ``(D, H, W)`` float32 on the device; confidence > 1, larger is surer; NaN outside the
            frame's camera image (padding).
        colors: ``(D, H, W, 3)`` uint8 RGB model-resolution images of the dense frames.
        image_boxes: per dense frame, the model pixels that show its camera image (top, bottom, left, right;
            half-open); None: every pixel of every frame.
    """

    frame_ids: tuple[Hashable, ...]
    stamps: np.ndarray
    window_from_camera: np.ndarray
    intrinsics: np.ndarray
    dense: tuple[int, ...]
    depth: torch.Tensor
    confidence: torch.Tensor
    colors: torch.Tensor
    image_boxes: Optional[tuple[tuple[int, int, int, int], ...]] = None

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

    def observed_grid(self, step: int) -> torch.Tensor:
        """``(D, h, w)`` bool: which pixels of `grid` (every ``step``-th row and column) show their frame's camera
        image, the only ones that observe anything (padding is no observation)."""
        count, (height, width) = len(self.dense), self.image_hw
        rows = torch.arange(0, height, step, device=self.depth.device)
        columns = torch.arange(0, width, step, device=self.depth.device)
        if self.image_boxes is None:
            return torch.ones((count, len(rows), len(columns)), dtype=torch.bool, device=self.depth.device)
        return _inside_boxes(self.image_boxes, rows, columns)

    def window_points(self, frame: int, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """``(P, 3)`` float64 window-frame points of flat pixel indices with the given depths."""
        width = self.image_hw[1]
        camera_points = _camera_points(pixels % width, pixels // width, depth, self.intrinsics[frame])
        return apply_transform(self.window_from_camera[frame], camera_points)


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
    image_boxes: Optional[Sequence[tuple[int, int, int, int]]] = None,
) -> WindowProducts:
    """Decode one window's outputs (`Pipeline.predict`: no batch axis) into `WindowProducts`.

    Args:
        outputs: ``pose_enc`` (S, 9), ``depth`` (D, H, W, 1), ``depth_conf`` (D, H, W), torch, any device.
        frame_ids, stamps: S ids and capture times (seconds), model order.
        dense: the D window indices the depth head ran on, increasing.
        colors: ``(D, H, W, 3)`` uint8 images of those frames (any device; moved to the depth's).
        image_boxes: per dense frame, the model pixels that show its camera image, (top, bottom, left, right)
            half-open (`PixelMap.image_box`); depth and confidence outside become NaN. None: every pixel shows it.
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
    window_from_camera = homogeneous(invert_rigid(camera_from_window).numpy())
    depth = depth.detach().float()
    confidence = confidence.detach().float()
    if image_boxes is not None:
        depth, confidence = _mask_padding(depth, confidence, image_boxes)
    return WindowProducts(
        frame_ids=tuple(frame_ids),
        stamps=np.asarray(stamps, dtype=np.float64),
        window_from_camera=window_from_camera,
        intrinsics=intrinsics.numpy(),
        dense=dense,
        depth=depth,
        confidence=confidence,
        colors=colors.to(depth.device),
        image_boxes=None if image_boxes is None else tuple(tuple(int(v) for v in box) for box in image_boxes),
    )


def _mask_padding(
    depth: torch.Tensor, confidence: torch.Tensor, image_boxes: Sequence[tuple[int, int, int, int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(D, H, W)`` depth and confidence with NaN outside each frame's image box (new tensors: the pipeline's
    outputs stay as the network gave them). Unchanged when every box covers the whole model image."""
    count, height, width = depth.shape
    if len(image_boxes) != count:
        raise ValueError(f"{len(image_boxes)} image boxes for {count} dense frames; give one per dense frame")
    if all(tuple(box) == (0, height, 0, width) for box in image_boxes):
        return depth, confidence
    inside = _inside_boxes(
        image_boxes, torch.arange(height, device=depth.device), torch.arange(width, device=depth.device)
    )
    nan = torch.tensor(math.nan, device=depth.device)
    return torch.where(inside, depth, nan), torch.where(inside, confidence, nan)


def _inside_boxes(
    image_boxes: Sequence[tuple[int, int, int, int]], rows: torch.Tensor, columns: torch.Tensor
) -> torch.Tensor:
    """``(D, len(rows), len(columns))`` bool: which of the pixels at model ``rows`` x ``columns`` lie inside each
    dense frame's image box (top, bottom, left, right; half-open)."""
    boxes = torch.as_tensor(image_boxes, dtype=torch.int64, device=rows.device)  # (D, 4)
    inside_rows = (rows >= boxes[:, :1]) & (rows < boxes[:, 1:2])
    inside_columns = (columns >= boxes[:, 2:3]) & (columns < boxes[:, 3:4])
    return inside_rows[:, :, None] & inside_columns[:, None, :]
