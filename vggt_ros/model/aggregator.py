# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Alternating frame / global attention over patch tokens (the second engine)."""

from __future__ import annotations

import torch
from torch import nn

from .config import VGGTConfig
from .encoder import DinoV2Encoder
from .layers import Block


class Aggregator(nn.Module):
    """State-dict prefix `aggregator`. Holds the encoder as `patch_embed` for checkpoint compatibility,
    but runs only the alternating attention: the encoder is its own stage (see `VGGT.forward`)."""

    def __init__(self, config: VGGTConfig) -> None:
        super().__init__()
        cfg, dim = config.aggregator, config.embed_dim
        self.patch_size = config.patch_size
        self.rope_freq = cfg.rope_freq
        self.tapped_layers = config.tapped_layers  # within the depth: VGGTConfig checks them
        self.patch_embed = DinoV2Encoder(config)
        block = dict(
            num_heads=cfg.num_heads,
            mlp_ratio=cfg.mlp_ratio,
            layernorm_eps=cfg.layernorm_eps,
            qk_norm=True,
            qk_norm_eps=cfg.qk_norm_eps,
        )
        self.frame_blocks = nn.ModuleList(Block(dim, **block) for _ in range(cfg.depth))
        self.global_blocks = nn.ModuleList(Block(dim, **block) for _ in range(cfg.depth))
        # index 0 of dim 1: the first (reference) frame; index 1: every other frame
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, dim))
        self.register_token = nn.Parameter(torch.zeros(1, 2, cfg.num_register_tokens, dim))

    def rope_tables(
        self, image_hw: tuple[int, int], device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of the 2-D rotary embedding for one frame's tokens, each (P, head_dim), float32.

        Special tokens sit at (0, 0), i.e. no rotation; patch (row, col) sits at (row + 1, col + 1).
        The first half of each head rotates with the row, the second with the column.
        Computed from the size alone (no read of tensor data), so it can be a constant of an engine.
        """
        h, w = image_hw[0] // self.patch_size, image_hw[1] // self.patch_size
        head_dim = self.frame_blocks[0].attn.head_dim
        half = head_dim // 2
        inv_freq = 1.0 / (self.rope_freq ** (torch.arange(0, half, 2, device=device).float() / half))
        rows = torch.arange(1, h + 1, device=device).repeat_interleave(w)
        cols = torch.arange(1, w + 1, device=device).repeat(h)
        num_special = self.camera_token.shape[2] + self.register_token.shape[2]
        zeros = torch.zeros(num_special, dtype=rows.dtype, device=device)
        positions = torch.stack((torch.cat((zeros, rows)), torch.cat((zeros, cols))), dim=-1).float()  # (P, 2)
        angles = positions[:, :, None] * inv_freq  # (P, 2, head_dim / 4)
        angles = torch.cat((angles, angles), dim=-1).flatten(1)  # (P, head_dim): [y: t, t | x: t, t]
        return angles.cos(), angles.sin()

    def special_tokens(self, num_frames: int, dtype: torch.dtype) -> torch.Tensor:
        """Camera + register tokens for every frame, (S, 5, C): the first frame gets its own set.

        Uses a select rather than slicing frames 1..S-1, so S = 1 creates no empty tensor.
        """
        tokens = torch.cat((self.camera_token, self.register_token), dim=2)[0]  # (2, 5, C)
        frame = torch.arange(num_frames, device=tokens.device)
        is_first = (frame == 0).view(-1, 1, 1)
        return torch.where(is_first, tokens[0], tokens[1]).to(dtype)

    def forward(self, patch_tokens: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        """patch_tokens: (B, S, h*w, C) from the encoder; rope: `rope_tables` for the image size.

        Returns the tapped layers only, each (B, S, P, 2C) = concat(frame-block out, global-block out).
        """
        b, s, n, c = patch_tokens.shape
        special = self.special_tokens(s, patch_tokens.dtype).expand(b, -1, -1, -1)
        x = torch.cat((special, patch_tokens), dim=2)
        p = x.shape[2]
        tapped = []
        for i, (frame_block, global_block) in enumerate(zip(self.frame_blocks, self.global_blocks)):
            frame_out = frame_block(x.reshape(b * s, p, c), rope)
            x = global_block(frame_out.reshape(b, s * p, c), rope).reshape(b, s, p, c)
            if i in self.tapped_layers:
                tapped.append(torch.cat((frame_out.reshape(b, s, p, c), x), dim=-1))
        return tapped
