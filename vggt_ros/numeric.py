# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Small numeric helpers shared by the products, the world, the metric sources and the exports, in torch."""

from __future__ import annotations

import math

import torch


def usable_pixels(depth: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Bool mask, same shape: finite positive depth and finite positive confidence (NaN fails every comparison)."""
    return (depth > 0) & (depth < math.inf) & (confidence > 0) & (confidence < math.inf)


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
