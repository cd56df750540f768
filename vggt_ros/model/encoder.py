# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""DINOv2 ViT patch embed with register tokens: images -> patch tokens (the first engine)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import VGGTConfig
from .layers import Block


class _Patchify(nn.Module):
    """Holds the 14x14 stride-14 convolution; exists so the checkpoint name `patch_embed.proj` matches."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)


class DinoV2Encoder(nn.Module):
    """State-dict prefix in VGGT: `aggregator.patch_embed`."""

    def __init__(self, config: VGGTConfig) -> None:
        super().__init__()
        cfg, dim = config.encoder, config.embed_dim
        self.patch_size = config.patch_size
        self.grid = cfg.pos_embed_grid
        self.num_register_tokens = cfg.num_register_tokens
        self.image_mean = config.aggregator.image_mean
        self.image_std = config.aggregator.image_std
        self.patch_embed = _Patchify(config.patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.pos_embed_grid**2, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # unused at inference; kept for checkpoint keys
        self.blocks = nn.ModuleList(
            Block(dim, cfg.num_heads, cfg.mlp_ratio, cfg.layernorm_eps) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(dim, eps=cfg.layernorm_eps)

    def positional_embedding(self, image_hw: tuple[int, int]) -> torch.Tensor:
        """The positional table for one input size, (1, 1 + h*w, C), float32.

        The 37x37 table is resampled with antialiased bicubic (Keys a=-0.5, PIL-style) to the patch grid.
        It depends only on the size and the weights, so it is computed once per size, never inside an engine.
        """
        h, w = image_hw[0] // self.patch_size, image_hw[1] // self.patch_size
        table = self.pos_embed.float()
        if h == w == self.grid:
            return table
        cls_pos, patch_pos = table[:, :1], table[:, 1:]
        grid = patch_pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
        return torch.cat((cls_pos, grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)), dim=1)

    def forward(self, images: torch.Tensor, pos_embed: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) in [0, 1]; pos_embed: (1, 1 + h*w, C) from `positional_embedding`.

        Returns the normalised patch tokens (N, h*w, C); class and register outputs are dropped.
        """
        mean = images.new_tensor(self.image_mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.image_std).view(1, 3, 1, 1)
        x = self.patch_embed.proj((images - mean) / std).flatten(2).transpose(1, 2)
        n = x.shape[0]
        x = torch.cat((self.cls_token.expand(n, -1, -1), x), dim=1) + pos_embed.to(x.dtype)
        # Registers go in after the positional embedding, so they carry none.
        x = torch.cat((x[:, :1], self.register_tokens.expand(n, -1, -1), x[:, 1:]), dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 1 + self.num_register_tokens :]
