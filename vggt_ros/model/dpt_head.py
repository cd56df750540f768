# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""DPT dense heads for depth and world points (the fourth and fifth engines)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import VGGTConfig


class ResidualConvUnit(nn.Module):
    """ReLU -> conv -> ReLU -> conv, plus a skip of ReLU(x).

    The reference implementation's first ReLU is in place, so its skip connection adds ReLU(x), not x.
    The trained weights expect that, so it is reproduced explicitly here.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FeatureFusionBlock(nn.Module):
    def __init__(self, features: int, has_residual: bool) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features) if has_residual else None
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int], skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class _Scratch(nn.Module):
    """Container whose attribute names match the checkpoint (`scratch.layer1_rn`, `scratch.refinenet1`, ...)."""

    def __init__(self, out_channels: tuple[int, ...], features: int, head_features_2: int, output_dim: int) -> None:
        super().__init__()
        for i, channels in enumerate(out_channels, start=1):
            setattr(self, f"layer{i}_rn", nn.Conv2d(channels, features, 3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(self, f"refinenet{i}", FeatureFusionBlock(features, has_residual=i != 4))
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, head_features_2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(head_features_2, output_dim, 1),
        )


def sincos_grid_embedding(height: int, width: int, channels: int, aspect_ratio: float, omega_0: float) -> torch.Tensor:
    """Sin/cos embedding of a centred UV grid, (channels, height, width), float32.

    The grid spans the image diagonal normalised to 1 (aspect from the input image, not the map);
    the first half of the channels encodes u (columns), the second half v (rows), each as [sin, cos].
    """
    diag = math.sqrt(aspect_ratio**2 + 1.0)
    span_x, span_y = aspect_ratio / diag, 1.0 / diag
    u = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width)
    v = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height)
    quarter = channels // 4
    omega = 1.0 / omega_0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)

    def encode(coord: torch.Tensor) -> torch.Tensor:
        angles = coord.double()[:, None] * omega
        return torch.cat((angles.sin(), angles.cos()), dim=-1)

    emb_u = encode(u)[None, :, :].expand(height, -1, -1)
    emb_v = encode(v)[:, None, :].expand(-1, width, -1)
    return torch.cat((emb_u, emb_v), dim=-1).float().permute(2, 0, 1).contiguous()


class DPTHead(nn.Module):
    """State-dict prefixes `depth_head` and `point_head`."""

    def __init__(self, config: VGGTConfig, output_dim: int, activation: str) -> None:
        super().__init__()
        cfg = config.dpt_head
        dim_in = 2 * config.embed_dim
        self.patch_size = config.patch_size
        self.patch_start_idx = config.patch_start_idx
        self.pos_embed_ratio = cfg.pos_embed_ratio
        self.omega_0 = cfg.pos_embed_omega_0
        self.activation = activation
        oc = cfg.out_channels
        self.norm = nn.LayerNorm(dim_in, eps=cfg.layernorm_eps)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, c, 1) for c in oc)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = _Scratch(oc, cfg.features, cfg.head_features_2, output_dim)

    def positional_embeddings(self, image_hw: tuple[int, int]) -> list[torch.Tensor]:
        """The five 0.1-scaled grid embeddings this head adds, for one input size (float32 constants).

        Four for the projected token maps (h x w each) and one for the full-resolution map.
        """
        height, width = image_hw
        h, w = height // self.patch_size, width // self.patch_size
        sizes = [(h, w, proj.out_channels) for proj in self.projects]
        sizes.append((height, width, self.scratch.output_conv1.out_channels))
        return [
            self.pos_embed_ratio * sincos_grid_embedding(mh, mw, c, width / height, self.omega_0) for mh, mw, c in sizes
        ]

    def forward(
        self, tapped: list[torch.Tensor], image_hw: tuple[int, int], pos_embeds: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tapped: the 4 aggregator layers, each (B, S, P, 2C); pos_embeds: `positional_embeddings(image_hw)`.

        Returns (prediction (B, S, H, W, D), confidence (B, S, H, W)). Frames are independent here, so all
        B*S frames run as one batch (no chunking: it would only trade speed for memory).
        """
        b, s = tapped[0].shape[:2]
        height, width = image_hw
        h, w = height // self.patch_size, width // self.patch_size
        maps = []
        for tokens, project, resize, pos in zip(tapped, self.projects, self.resize_layers, pos_embeds):
            x = self.norm(tokens[:, :, self.patch_start_idx :]).reshape(b * s, h, w, -1).permute(0, 3, 1, 2)
            maps.append(resize(project(x) + pos.to(x.dtype)))
        sc = self.scratch
        rn = [sc.layer1_rn(maps[0]), sc.layer2_rn(maps[1]), sc.layer3_rn(maps[2]), sc.layer4_rn(maps[3])]
        x = sc.refinenet4(rn[3], size=rn[2].shape[-2:])
        x = sc.refinenet3(x, size=rn[1].shape[-2:], skip=rn[2])
        x = sc.refinenet2(x, size=rn[0].shape[-2:], skip=rn[1])
        x = sc.refinenet1(x, size=(2 * rn[0].shape[-2], 2 * rn[0].shape[-1]), skip=rn[0])
        x = F.interpolate(sc.output_conv1(x), size=(height, width), mode="bilinear", align_corners=True)
        x = sc.output_conv2(x + pos_embeds[4].to(x.dtype))
        x = x.permute(0, 2, 3, 1).reshape(b, s, height, width, -1)
        return activate_dense(x[..., :-1], self.activation), 1.0 + torch.exp(x[..., -1])


def activate_dense(x: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "exp":
        return torch.exp(x)
    if activation == "inv_log":
        # sign(x) * (exp(|x|) - 1), written with exp rather than expm1: ONNX has no Expm1 operator
        return torch.sign(x) * (torch.exp(torch.abs(x)) - 1.0)
    raise ValueError(f"unknown DPT activation {activation!r}")
