# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Camera head: iterative refinement of the absT_quaR_FoV pose encoding (the third engine)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import VGGTConfig
from .layers import Block, Mlp

POSE_ENCODING_DIM = 9  # [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]


class CameraHead(nn.Module):
    """State-dict prefix `camera_head`. Reads the camera token of the last aggregator layer."""

    def __init__(self, config: VGGTConfig) -> None:
        super().__init__()
        cfg = config.camera_head
        dim = 2 * config.embed_dim
        self.num_iterations = cfg.num_iterations
        self.trunk = nn.Sequential(
            *(Block(dim, cfg.num_heads, cfg.mlp_ratio, cfg.layernorm_eps) for _ in range(cfg.trunk_depth))
        )
        self.token_norm = nn.LayerNorm(dim, eps=cfg.layernorm_eps)
        self.trunk_norm = nn.LayerNorm(dim, eps=cfg.layernorm_eps)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_ENCODING_DIM))
        self.embed_pose = nn.Linear(POSE_ENCODING_DIM, dim)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))
        self.adaln_norm = nn.LayerNorm(dim, eps=cfg.adaln_eps, elementwise_affine=False)
        self.pose_branch = Mlp(dim, dim // 2, POSE_ENCODING_DIM)

    def forward(self, camera_tokens: torch.Tensor) -> torch.Tensor:
        """camera_tokens: (B, S, 2C), token 0 of the last tapped layer.

        Returns the activated encoding after every iteration, (iterations, B, S, 9); the last is the answer.
        The loop is unrolled by tracing: iteration 0 starts from the learned empty pose, later ones from the
        raw (not activated) running estimate.
        """
        tokens = self.token_norm(camera_tokens)
        normed = self.adaln_norm(tokens)
        raw = None
        outputs = []
        for _ in range(self.num_iterations):
            pose_in = self.empty_pose_tokens.expand_as(tokens[..., :POSE_ENCODING_DIM]) if raw is None else raw
            shift, scale, gate = self.poseLN_modulation(self.embed_pose(pose_in)).chunk(3, dim=-1)
            z = gate * (normed * (1 + scale) + shift) + tokens
            delta = self.pose_branch(self.trunk_norm(self.trunk(z)))
            raw = delta if raw is None else raw + delta
            outputs.append(activate_pose_encoding(raw))
        return torch.stack(outputs)


def activate_pose_encoding(raw: torch.Tensor) -> torch.Tensor:
    """Translation and quaternion stay linear; the two fields of view go through ReLU."""
    return torch.cat((raw[..., :7], F.relu(raw[..., 7:])), dim=-1)
