# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The VGGT network: images -> cameras, depth and point maps, all in the first camera's frame."""

from __future__ import annotations

from os import PathLike

import torch
from torch import nn

from .aggregator import Aggregator
from .camera_head import CameraHead
from .config import VGGTConfig
from .dpt_head import DPTHead
from .stages import build_stages, run_stages, torch_stage_runner


def check_images(images: torch.Tensor, patch_size: int = VGGTConfig.patch_size) -> torch.Tensor:
    """Validate model input and return it as (B, S, 3, H, W).

    Accepts (S, 3, H, W) or (B, S, 3, H, W) float images in [0, 1]; H and W must be multiples of the patch size.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim == 4:
        images = images.unsqueeze(0)
    if images.ndim != 5:
        raise ValueError(f"images must be (S, 3, H, W) or (B, S, 3, H, W), got shape {tuple(images.shape)}")
    if images.shape[2] != 3:
        raise ValueError(
            f"images must have 3 (RGB) channels in dim -3, got {images.shape[2]} (shape {tuple(images.shape)})"
        )
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point in [0, 1], got {images.dtype}; divide uint8 images by 255")
    height, width = images.shape[-2:]
    if height % patch_size or width % patch_size or height == 0 or width == 0:
        raise ValueError(
            f"image size {height}x{width} (HxW) is not a positive multiple of the patch size {patch_size}; "
            "resize with vggt_ros.preprocess first"
        )
    if images.shape[0] == 0 or images.shape[1] == 0:
        raise ValueError(f"empty image batch, shape {tuple(images.shape)}")
    return images


class VGGT(nn.Module):
    """VGGT inference (no track head). State-dict names follow the official checkpoint.

    Stages: `aggregator.patch_embed` (DINOv2) -> `aggregator` (alternating attention, 4 tapped layers)
    -> `camera_head`, `depth_head`, `point_head`. `vggt_ros.export` wraps these same stages as engines.
    """

    def __init__(self, config: VGGTConfig | None = None) -> None:
        super().__init__()
        self.config = config or VGGTConfig()
        self.aggregator = Aggregator(self.config)
        self.camera_head = CameraHead(self.config)
        self.depth_head = DPTHead(self.config, output_dim=2, activation="exp")
        self.point_head = DPTHead(self.config, output_dim=4, activation="inv_log")

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: (S, 3, H, W) or (B, S, 3, H, W), float in [0, 1].

        Returns `pose_enc` (B, S, 9), `pose_enc_list` (iterations, B, S, 9), `depth` (B, S, H, W, 1),
        `depth_conf` (B, S, H, W), `world_points` (B, S, H, W, 3), `world_points_conf` (B, S, H, W).
        """
        images = check_images(images, self.config.patch_size)
        stages = build_stages(self, images.shape[-2:])
        run = torch_stage_runner(stages, self.config.tapped_layers)
        per_sequence = [run_stages(run, sequence, self.config.tapped_layers) for sequence in images]
        # pose_enc_list is (iterations, B, S, 9): its batch axis is dim 1
        return {
            k: torch.cat([out[k] for out in per_sequence], dim=1 if k == "pose_enc_list" else 0)
            for k in per_sequence[0]
        }

    @classmethod
    def from_pretrained(
        cls,
        source: str | PathLike = "facebook/VGGT-1B",
        config: VGGTConfig | str | PathLike | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> "VGGT":
        """Load weights from a Hugging Face id, a local folder or a file (see `vggt_ros.model.weights`)."""
        from .weights import build_model_from_checkpoint

        return build_model_from_checkpoint(cls, source, config, device, dtype)
