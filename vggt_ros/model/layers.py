# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Transformer building blocks shared by the DINOv2 encoder, the aggregator and the camera head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """Linear -> exact (erf) GELU -> Linear."""

    def __init__(self, dim: int, hidden_dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def rotate_halves(x: torch.Tensor) -> torch.Tensor:
    """The 2-D RoPE partner of each channel, (..., D) -> (..., D).

    The head vector is two halves (y, then x), and each half is two quarters (u, v) that rotate
    against each other: the partner of (u, v) is (-v, u). Channel j pairs with j + D/4 inside its half
    ("rotate-half" layout, not interleaved pairs).
    """
    quarters = x.unflatten(-1, (2, 2, -1))
    u, v = quarters.unbind(-2)
    return torch.stack((-v, u), dim=-2).flatten(-3)


class Attention(nn.Module):
    """Multi-head self-attention with optional per-head QK LayerNorm and 2-D rotary embedding.

    Attention itself goes through `scaled_dot_product_attention`, so fused kernels are used where available.
    """

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False, qk_norm_eps: float = 1e-5) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else None
        self.k_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else None

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x: (N, L, C). rope: (cos, sin), each (T, head_dim) with L a multiple of T (frames share positions)."""
        n, length, dim = x.shape
        # qkv channels are laid out (3, heads, head_dim): all of q, then k, then v.
        q, k, v = self.qkv(x).reshape(n, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (N, heads, L, D) by per-position tables (T, D); L = frames * T in global attention."""
    n, heads, length, dim = x.shape
    per_frame = x.reshape(n, heads, -1, cos.shape[0], dim)
    rotated = per_frame * cos.to(x.dtype) + rotate_halves(per_frame) * sin.to(x.dtype)
    return rotated.reshape(n, heads, length, dim)


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale: x + g1*Attn(LN(x)), then x + g2*MLP(LN(x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        layernorm_eps: float,
        qk_norm: bool = False,
        qk_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=layernorm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, qk_norm_eps=qk_norm_eps)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=layernorm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))
